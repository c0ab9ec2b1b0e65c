"""Batched greedy evaluation on a task's vectorized environment, and nominal-env model selection."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import nn

from robustrl.agents.factory import SELECTION_TIES
from robustrl.checks import check_int, check_option
from robustrl.envs import check_env_id, make_vector_env
from robustrl.experiments.io import atomic_write_bytes, model_bytes
from robustrl.tasks import Task, get_task
from robustrl.wrappers import ObservationNoiseTransform

__all__ = [
    "EVALUATION_PRECISION",
    "EVALUATION_SEED",
    "PRECISIONS",
    "SELECTION_SEED",
    "NominalSelectionCallback",
    "greedy_actor_network",
    "greedy_critic",
    "greedy_policy",
    "greedy_q_network",
    "greedy_returns",
    "greedy_returns_by_id",
    "greedy_rollout",
    "mean_returns_over",
    "safety_margin",
]

#: Seeds of the evaluation and model-selection episodes; training seeds are small integers, so the
#: three sets never meet: no reported return comes from initial states the agent was trained or selected on.
EVALUATION_SEED = 2_000_003
#: The seed of the model-selection episodes (see :data:`EVALUATION_SEED`).
SELECTION_SEED = 1_000_003
#: The floating-point types a greedy policy can run its Q-network in (see :func:`greedy_policy`).
PRECISIONS: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
EVALUATION_PRECISION = "float64"

Policy = Callable[[np.ndarray], np.ndarray]
#: A batched map of observations (to what the policy sees) or of actions (to what the env executes).
Transform = Callable[[np.ndarray], np.ndarray]


def greedy_policy(model: BaseAlgorithm, precision: str = EVALUATION_PRECISION) -> Policy:
    """Batched greedy actions ``argmax_a Q(s, a)`` of an SB3 DQN (one forward pass per call); for SAC and TD3 the
    deterministic action of the actor (SAC: the squashed mean), in the action space's bounds.

    ``precision`` is the floating-point type the Q-network runs in. Evaluation uses ``"float64"`` (a copy of
    the network; the model is left alone): in float32 the last bits of a Q-value depend on the CPU's matrix
    kernels (SSE, AVX2, AVX-512) and on the batch size, so a near-tie between two actions can go either way
    and a long episode then ends differently on another machine; in float64 such ties are ~10^9 times rarer,
    and every machine gets the same returns. Model selection during training keeps the network's own
    ``"float32"``, as it was trained.
    """
    if not hasattr(model.policy, "q_net"):
        return _actor_policy(model, precision)
    q_values = greedy_q_network(model, precision)
    dtype = PRECISIONS[precision]

    def act(observations: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return q_values(_observations(model, observations, dtype)).argmax(dim=1).cpu().numpy()

    return act


def _observations(model: BaseAlgorithm, observations: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A batch of observations as the agent's networks take them (SB3's preprocessing), in ``dtype``."""
    obs = preprocess_obs(torch.as_tensor(observations, device=model.device), model.observation_space,
                         normalize_images=model.policy.normalize_images)  # type: ignore[attr-defined]
    return obs.to(dtype)


class _DeterministicActor(nn.Module):
    """An SB3 actor's deterministic action in [-1, 1] as one module (SAC: tanh of the Gaussian's mean; TD3: mu,
    which ends in tanh), its layers called one by one (the actor's own forward casts its input to float32)."""

    def __init__(self, actor: nn.Module) -> None:
        super().__init__()
        self.actor = actor
        self.squashed_mean = hasattr(actor, "latent_pi")

    def forward(self, observations: torch.Tensor) -> torch.Tensor:  # noqa: D102
        features = self.actor.features_extractor(observations)
        if self.squashed_mean:
            return torch.tanh(self.actor.mu(self.actor.latent_pi(features)))
        return self.actor.mu(features)


def greedy_actor_network(model: BaseAlgorithm, precision: str = EVALUATION_PRECISION) -> nn.Module:
    """The deterministic actor of an SB3 SAC or TD3 as one module from observations (in ``precision``) to actions
    in [-1, 1] (the policy's scaled actions), a copy unless ``precision`` is ``"float32"``: what the actor
    attacks of :class:`robustrl.attacks.ActorAttack` differentiate."""
    check_option(precision, tuple(PRECISIONS), "precision")
    actor = model.policy.actor  # type: ignore[attr-defined]
    if PRECISIONS[precision] != torch.float32:
        actor = copy.deepcopy(actor).to(PRECISIONS[precision])
    return _DeterministicActor(actor)


def greedy_critic(model: BaseAlgorithm, precision: str = EVALUATION_PRECISION) -> Callable[..., torch.Tensor]:
    """The first critic of an SB3 SAC or TD3, ``(states, actions in [-1, 1]) -> Q`` of shape ``(batch,)``, in
    ``precision`` (a copy unless float32): the critic attack's objective."""
    critic = model.policy.critic  # type: ignore[attr-defined]
    if PRECISIONS[precision] != torch.float32:
        critic = copy.deepcopy(critic).to(PRECISIONS[precision])
    return lambda states, actions: critic.q_networks[0](torch.cat([critic.features_extractor(states), actions],
                                                                  dim=1))[:, 0]


def _actor_policy(model: BaseAlgorithm, precision: str) -> Policy:
    """The deterministic action of an actor-critic agent (:func:`greedy_actor_network`), in ``precision``, mapped
    to the action space's bounds."""
    network, dtype = greedy_actor_network(model, precision), PRECISIONS[precision]

    def act(observations: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            actions = network(_observations(model, observations, dtype))
        return model.policy.unscale_action(actions.cpu().numpy().astype(np.float32))  # type: ignore[attr-defined]

    return act


def greedy_q_network(model: BaseAlgorithm, precision: str = EVALUATION_PRECISION) -> nn.Module:
    """The Q-network of an SB3 DQN as one module from observations (in ``precision``) to Q-values.

    The features extractor and the Q-value head of ``model.policy.q_net``, a copy in ``precision`` unless it is
    ``"float32"`` (see :func:`greedy_policy`, which acts greedily on it). This is the model the observation
    attacks of :mod:`robustrl.attacks` differentiate, e.g. ``PGD(greedy_q_network(model), eps, clip=None)``.
    """
    check_option(precision, tuple(PRECISIONS), "precision")
    dtype = PRECISIONS[precision]
    q_net = model.policy.q_net  # type: ignore[attr-defined]
    if dtype != torch.float32:
        q_net = copy.deepcopy(q_net).to(dtype)
    return nn.Sequential(q_net.features_extractor, q_net.q_net)


def safety_margin(venv: Any, observations: np.ndarray) -> np.ndarray:
    """The environment's safety margin of each row of ``observations`` (its ``safety_margin`` method: 1 far from
    termination, 0 at its edge), or zeros for a family that defines none (model selection then breaks ties by
    the latest checkpoint)."""
    margin = getattr(venv, "safety_margin", None)
    return np.zeros(len(observations)) if margin is None else margin(observations)


def greedy_rollout(policy: Policy, env_id: str, n_episodes: int, seed: int, *, max_episode_steps: int | None = None,
                   observation_noise: np.ndarray | float | None = None, noise_seed: int = 0,
                   observation_transform: Transform | None = None, action_transform: Transform | None = None,
                   transform_running_only: bool = False, **parameters: Any) -> tuple[np.ndarray, np.ndarray]:
    """Returns and mean safety margins of ``n_episodes`` greedy episodes run side by side on ``env_id``.

    The margin of an episode is the mean of :func:`safety_margin` over the states the policy acted in;
    it tells apart policies that all reach the step limit (one that drifts to the edge of termination
    from one that keeps well inside it). ``max_episode_steps`` is the registered limit unless given.
    ``parameters`` override the physics; arrays of shape ``(n_episodes,)`` give each episode its own value.
    The initial states come from ``seed``, one per sub-environment (:func:`~robustrl.envs.make_vector_env`:
    ``reset(seed=seed + i)`` for sub-environment ``i``, or row ``i`` of one draw where the family has a vector
    env), so episodes in different blocks of one batch (two physics, two noise levels) start from different
    states, while every policy run with the same ``seed`` and batch layout starts from the same ones
    (comparisons of agents on one condition are paired by initial state).
    ``observation_noise`` (a per-dimension half-width) shows the policy ``s + noise * u`` with ``u``
    uniform in [-1, 1]^d drawn from ``noise_seed``, while the env, the margin and the return use ``s``.
    More generally, ``observation_transform`` maps the batch of true states to what the policy sees and
    ``action_transform`` the policy's actions to the ones the env executes (the batched transforms of
    :mod:`robustrl.wrappers`: noise, attacks, random actions); ``observation_noise`` is the uniform
    :class:`~robustrl.wrappers.ObservationNoiseTransform` and cannot be combined with an observation transform.
    With ``transform_running_only`` the observation transform sees only the rows of the episodes still
    running, called as ``observation_transform(obs[rows], rows=rows)`` (an attack then costs nothing for
    episodes that have ended; see :class:`~robustrl.wrappers.ObservationAttackTransform`).
    """
    check_int(n_episodes, "n_episodes", 1)
    if observation_noise is not None:
        if observation_transform is not None:
            raise ValueError("give observation_noise or observation_transform, not both")
        observation_transform = ObservationNoiseTransform(1.0, observation_noise, seed=noise_seed)
    venv = make_vector_env(env_id, n_episodes, max_episode_steps=max_episode_steps, **parameters)
    obs, _ = venv.reset(seed=seed)
    returns = np.zeros(n_episodes)
    margins = np.zeros(n_episodes)
    steps = np.zeros(n_episodes)
    running = np.ones(n_episodes, dtype=bool)
    while running.any():
        if observation_transform is None:
            seen = obs
        elif transform_running_only:
            rows = np.flatnonzero(running)
            seen = obs.copy()
            seen[rows] = observation_transform(obs[rows], rows=rows)
        else:
            seen = observation_transform(obs)
        margins += running * safety_margin(venv, obs)
        steps += running
        actions = policy(seen.astype(np.float32))
        obs, rewards, terminated, truncated, _ = venv.step(actions if action_transform is None
                                                           else action_transform(actions))
        returns += rewards * running
        running &= ~(terminated | truncated)
    venv.close()
    return returns, margins / steps


def greedy_returns(policy: Policy, env_id: str, n_episodes: int, seed: int, **parameters: Any) -> np.ndarray:
    """Return of ``n_episodes`` episodes run side by side on ``env_id`` (one sub-env per episode).

    ``parameters`` override the physics; arrays of shape ``(n_episodes,)`` give each episode its own
    value, so a whole parameter sweep is one batched rollout. The initial states come from ``seed``.
    """
    return greedy_rollout(policy, env_id, n_episodes, seed, **parameters)[0]


def greedy_returns_by_id(policy: Policy, env_ids: tuple[str, ...], n_episodes: int, seed: int) -> dict[str, np.ndarray]:
    """Returns on several registered ids of one family from one batched rollout (``n_episodes`` sub-envs per id).

    The ids differ only in their physics (the keyword arguments of their registrations), so one vector env with
    per-env parameter arrays runs them all at once: sub-envs ``[k * n_episodes, (k + 1) * n_episodes)`` have the
    physics of ``env_ids[k]``. Initial states come from ``seed`` as in :func:`greedy_rollout`: each id's block
    has its own initial states, the same for every policy.
    """
    import gymnasium as gym

    env_ids = tuple(check_env_id(env_id) for env_id in env_ids)
    check_int(n_episodes, "n_episodes", 1)
    specs = [gym.spec(env_id) for env_id in env_ids]
    if len({(s.entry_point, s.max_episode_steps) for s in specs}) > 1:
        raise ValueError(f"ids of one family and step limit are evaluated together, got {list(env_ids)}")
    nominal = _family_nominal(env_ids[0])
    names = sorted({name for s in specs for name in s.kwargs if name in nominal})
    physics = {name: np.repeat([s.kwargs.get(name, nominal[name]) for s in specs], n_episodes) for name in names}
    returns = greedy_returns(policy, env_ids[0], n_episodes * len(env_ids), seed, **physics)
    return {env_id: returns[k * n_episodes:(k + 1) * n_episodes] for k, env_id in enumerate(env_ids)}


def _family_nominal(env_id: str) -> dict[str, float]:
    """The nominal parameters of ``env_id``'s family (its class's :class:`~robustrl.envs.params.Parameter` records)."""
    import gymnasium as gym

    module, _, name = gym.spec(env_id).entry_point.partition(":")
    import importlib

    return getattr(importlib.import_module(module), name).nominal_params()


def mean_returns_over(policy: Policy, parameter: str, values: Any, episodes: int, seed: int,
                      task: Task | str | None = None) -> np.ndarray:
    """Mean greedy return at each value of one physical parameter, the rest nominal (one batched rollout on the
    task's nominal id; default task: :data:`robustrl.tasks.DEFAULT_TASK`)."""
    per_env = np.repeat(np.asarray(values, dtype=float), episodes)
    returns = greedy_returns(policy, get_task(task).nominal_id, len(per_env), seed, **{parameter: per_env})
    return returns.reshape(-1, episodes).mean(axis=1)


class NominalSelectionCallback(BaseCallback):
    """Every ``eval_freq`` steps, evaluate greedily on the nominal env and keep the best checkpoint.

    Model selection only ever looks at the nominal env, never at a perturbed one: the perturbed ids are the
    test conditions, and picking checkpoints by them would tune the agent on its test. The best
    model is saved atomically to ``best_path``; ``curve`` holds ``(timesteps, mean, std)`` rows.
    With ``ties="latest"`` (the default) a checkpoint replaces the best one when its mean is at least as
    high: checkpoints often tie at the maximum return, and the later one has trained on more data.
    ``ties="first"`` is SB3's ``EvalCallback`` rule (strictly higher only). ``ties="margin"`` breaks
    ties of the mean return by the mean :func:`safety_margin` of the same episodes, then by the latest.
    With ``checkpoint_dir``, every evaluated model is also saved there as ``{timesteps:07d}`` with the
    suffix of ``best_path``. ``serialize`` turns the model into the bytes of a file (default: the
    Stable-Baselines3 ``.zip``; training passes the compact checkpoint of :mod:`robustrl.agents.checkpoint`).
    """

    def __init__(self, best_path: str | Path, eval_freq: int = 2500, n_episodes: int = 20,
                 seed: int = SELECTION_SEED, env_id: str | None = None, ties: str = "latest",
                 checkpoint_dir: str | Path | None = None,
                 serialize: Callable[[BaseAlgorithm], bytes] = model_bytes) -> None:
        super().__init__()
        self.ties = check_option(ties, SELECTION_TIES, "ties")
        self.best_path = Path(best_path)
        self.eval_freq = eval_freq
        self.n_episodes = n_episodes
        self.seed = seed
        self.env_id = get_task().nominal_id if env_id is None else check_env_id(env_id)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.serialize = serialize
        self.best_mean = -np.inf
        self.best_margin = -np.inf
        self.best_timesteps = 0
        self.curve: list[tuple[int, float, float]] = []

    def evaluate_now(self) -> None:
        """Evaluate the current model and save it if it is the best so far."""
        returns, margins = greedy_rollout(greedy_policy(self.model, "float32"), self.env_id, self.n_episodes, self.seed)
        mean, margin = float(returns.mean()), float(margins.mean())
        self.curve.append((int(self.num_timesteps), mean, float(returns.std())))
        self.logger.record("eval/nominal_mean_return", mean)
        self.logger.record("eval/nominal_safety_margin", margin)
        data = None  # the model serialized at most once, for the checkpoint and the best file
        if self.checkpoint_dir is not None:
            data = self.serialize(self.model)
            atomic_write_bytes(self.checkpoint_dir / f"{int(self.num_timesteps):07d}{self.best_path.suffix}", data)
        if self.ties == "first":
            better = mean > self.best_mean
        elif self.ties == "latest":
            better = mean >= self.best_mean
        else:
            better = (mean, margin) >= (self.best_mean, self.best_margin)
        if better:
            self.best_mean, self.best_margin, self.best_timesteps = mean, margin, int(self.num_timesteps)
            atomic_write_bytes(self.best_path, data if data is not None else self.serialize(self.model))

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq == 0:
            self.evaluate_now()
        return True
