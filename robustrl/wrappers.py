"""Perturbations of what an agent sees or does: Gymnasium wrappers a user puts on any environment, and the
batched transforms behind them, which the batched rollout on the vector env calls too (one implementation).

- :class:`ObservationNoise` / :class:`ObservationNoiseTransform`: the agent sees ``s + noise``, uniform in
  the ``eps``-ball scaled per dimension by ``scale`` or Gaussian with per-dimension std ``eps * scale``;
- :class:`RandomAction` / :class:`RandomActionTransform`: with probability ``p`` the environment executes a
  uniformly random action instead of the agent's (the protocol of RFQI: Panaganti, Xu, Kalathil,
  Ghavamzadeh, "Robust Reinforcement Learning using Offline Data", NeurIPS 2022);
- :class:`ActionNoise` / :class:`ActionNoiseTransform`: the environment executes the agent's continuous action
  plus Gaussian noise of std ``std`` times the half-width of the action space, clipped to the space (the action
  noise of Robust-Gymnasium, Gu et al. 2024, and of the action-robustness literature);
- :class:`ObservationAttack` / :class:`ObservationAttackTransform`: the agent sees the attacked state
  ``s~ = attack(s)`` (an attack of :mod:`robustrl.attacks` on the agent's Q-network, labels its greedy
  action), while the environment moves from the true ``s``;
- :class:`DomainRandomization`: the physics is drawn anew from a box at every reset (for training).

The environment, its rewards and its termination always use the true state. With ``eps = 0`` or ``p = 0``
a wrapped environment gives exactly the unwrapped one's observations and returns. Every random draw comes
from the transform's own generator, which the wrappers seed on ``reset(seed=...)`` from a stream of their
own (never the environment's ``np_random``, so the environment's own draws are those of the unwrapped env).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robustrl.checks import NORMS, check_choice, check_eps, check_probability

if TYPE_CHECKING:
    from robustrl.attacks import Attack, WorstOf

__all__ = [
    "NOISE_KINDS",
    "ActionNoise",
    "ActionNoiseTransform",
    "DomainRandomization",
    "ObservationAttack",
    "ObservationAttackTransform",
    "ObservationNoise",
    "ObservationNoiseTransform",
    "RandomAction",
    "RandomActionTransform",
    "check_ranges",
    "check_scale",
]

#: The distributions of :class:`ObservationNoise`.
NOISE_KINDS: tuple[str, ...] = ("uniform", "gaussian")
#: Stream keys mixed with a wrapper's reset seed, so that its draws are independent of the environment's.
_NOISE_STREAM, _ACTION_STREAM, _ATTACK_STREAM = 0x6E6F697365, 0x616374696F6E, 0x61747461636B
_ACTION_NOISE_STREAM = 0x616E6F697365
_PHYSICS_STREAM = 0x706879736963

Seed = int | Sequence[int] | None


def check_scale(scale: Any) -> np.ndarray:
    """A per-dimension scale of the noise: a number or a non-empty sequence of finite numbers >= 0 (0 leaves
    a dimension unperturbed), as a float array; else ``ValueError`` naming the value."""
    message = f"scale must be a number or a sequence of finite numbers >= 0, got scale={scale!r}"
    try:
        values = np.asarray(scale, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if values.ndim > 1 or values.size == 0 or not (np.isfinite(values) & (values >= 0)).all():
        raise ValueError(message)
    return values


class ObservationNoiseTransform:
    """Batched observation noise: ``observations + eps * scale * u`` (rows, or one observation).

    ``kind="uniform"``: ``u`` uniform in the unit ball of ``norm`` (``"linf"``: each coordinate U(-1, 1);
    ``"l2"``: over the last axis); ``kind="gaussian"``: ``u`` standard normal, so the std of dimension ``i``
    is ``eps * scale_i``. The result has the observations' dtype; with ``eps = 0`` it equals them exactly.
    """

    def __init__(self, eps: float, scale: Any = 1.0, kind: str = "uniform", norm: str = "linf",
                 seed: Seed = None) -> None:
        self.eps = check_eps(eps)
        self.scale = check_scale(scale)
        self.kind = check_choice(kind, NOISE_KINDS, "noise kind")
        self.norm = check_choice(norm, NORMS, "norm")
        self.seed(seed)

    def seed(self, seed: Seed) -> None:
        """Restart the generator from ``seed`` (``np.random.default_rng(seed)``; ``None``: fresh entropy)."""
        self.rng = np.random.default_rng(seed)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        """The noisy observations the agent sees (same shape and dtype)."""
        observations = np.asarray(observations)
        half_width = self.eps * self.scale
        if self.kind == "gaussian":
            u = self.rng.standard_normal(observations.shape)
        elif self.norm == "linf":
            u = self.rng.uniform(-1, 1, size=observations.shape)
        else:
            g = self.rng.standard_normal(observations.shape)
            radius = self.rng.uniform(size=observations.shape[:-1] + (1,)) ** (1.0 / observations.shape[-1])
            u = g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), np.finfo(float).tiny) * radius
        return (observations + half_width * u).astype(observations.dtype, copy=False)

    def __repr__(self) -> str:
        return f"ObservationNoiseTransform(eps={self.eps}, kind={self.kind!r}, norm={self.norm!r})"


class RandomActionTransform:
    """Batched random actions: each action is replaced, with probability ``p``, by one drawn uniformly from
    ``action_space`` (``Discrete`` or ``Box``). Takes one action or a batch (first axis); with ``p = 0`` the
    actions are returned unchanged."""

    def __init__(self, p: float, action_space: gym.Space, seed: Seed = None) -> None:
        self.p = check_probability(p)
        if not isinstance(action_space, (spaces.Discrete, spaces.Box)):
            raise TypeError(f"random actions need a Discrete or Box action space, got {action_space!r}")
        self.action_space = action_space
        self.seed(seed)

    def seed(self, seed: Seed) -> None:
        """Restart the generator from ``seed`` (``np.random.default_rng(seed)``; ``None``: fresh entropy)."""
        self.rng = np.random.default_rng(seed)

    def __call__(self, actions: Any) -> Any:
        """The actions the environment executes (same shape and dtype as ``actions``)."""
        chosen = np.asarray(actions)
        space = self.action_space
        batch_shape = chosen.shape[:chosen.ndim - len(space.shape)]
        replace = self.rng.random(batch_shape) < self.p
        if isinstance(space, spaces.Discrete):
            random = self.rng.integers(space.start, space.start + space.n, size=batch_shape)
        else:
            random = self.rng.uniform(space.low, space.high, size=batch_shape + space.shape)
            replace = replace.reshape(batch_shape + (1,) * len(space.shape))
        executed = np.where(replace, random, chosen).astype(chosen.dtype, copy=False)
        return executed if isinstance(actions, np.ndarray) else executed[()]

    def __repr__(self) -> str:
        return f"RandomActionTransform(p={self.p}, action_space={self.action_space!r})"


class ActionNoiseTransform:
    """Batched Gaussian action noise on a ``Box`` action space: ``clip(a + std * (high - low) / 2 * z, low, high)``
    with ``z`` standard normal per action dimension. Takes one action or a batch (first axis); with ``std = 0``
    the actions are returned unchanged (no draw is made)."""

    def __init__(self, std: float, action_space: gym.Space, seed: Seed = None) -> None:
        self.std = check_eps(std, "std")
        if not isinstance(action_space, spaces.Box) or not (
                np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()):
            raise ValueError(f"Gaussian action noise needs a bounded Box action space, got {action_space!r} "
                             "(for discrete actions use random actions)")
        self.action_space = action_space
        self.half_width = (action_space.high.astype(np.float64) - action_space.low) / 2
        self.seed(seed)

    def seed(self, seed: Seed) -> None:
        """Restart the generator from ``seed`` (``np.random.default_rng(seed)``; ``None``: fresh entropy)."""
        self.rng = np.random.default_rng(seed)

    def __call__(self, actions: Any) -> Any:
        """The actions the environment executes (same shape and dtype as ``actions``)."""
        if self.std == 0:
            return actions
        chosen = np.asarray(actions)
        noisy = chosen + self.std * self.half_width * self.rng.standard_normal(chosen.shape)
        executed = np.clip(noisy, self.action_space.low, self.action_space.high).astype(chosen.dtype, copy=False)
        return executed if isinstance(actions, np.ndarray) else executed[()]

    def __repr__(self) -> str:
        return f"ActionNoiseTransform(std={self.std}, action_space={self.action_space!r})"


class ObservationAttackTransform:
    """Batched observation attack: ``attack(states)`` with labels the model's greedy actions on the clean
    states, run in the model's dtype and returned in the observations' dtype (one observation or rows).

    The transform owns the attack's random generator (random starts): it replaces the generator of the
    attack (of every attack of a :class:`~robustrl.attacks.WorstOf`) with its own, seeded by :meth:`seed`.
    ``eps`` (optional, shape ``(n_rows,)``) gives every row of the batch its own budget, e.g. the levels of
    a robustness curve side by side in one vector env; :meth:`__call__` then takes ``rows``, the indices of
    the rows it is given (the rollout passes only the episodes still running).
    """

    def __init__(self, attack: Attack | WorstOf, seed: Seed = None, eps: Sequence[float] | None = None) -> None:
        import torch

        from robustrl.attacks import Attack, WorstOf

        if not isinstance(attack, (Attack, WorstOf)):
            raise TypeError(f"attack must be a robustrl.attacks Attack or WorstOf, got {attack!r}")
        self.attack = attack
        self.eps = None if eps is None else np.array([check_eps(e) for e in np.ravel(eps)])
        self.generator = torch.Generator(device=next(attack.model.parameters()).device)
        for member in attack.attacks if isinstance(attack, WorstOf) else [attack]:
            member.generator = self.generator
        self.seed(seed)

    def seed(self, seed: Seed) -> None:
        """Reseed the attack's generator from ``seed`` (through NumPy's seeding; ``None``: fresh entropy)."""
        self.generator.manual_seed(int(np.random.default_rng(seed).integers(2**63 - 1)))

    def __call__(self, observations: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The attacked observations the agent sees (same shape and dtype); ``rows``: which rows of the
        per-row budgets ``observations`` are (default all, in order)."""
        import torch

        observations = np.asarray(observations)
        parameter = next(self.attack.model.parameters())
        states = torch.as_tensor(observations, dtype=parameter.dtype, device=parameter.device)
        batch = states.reshape(-1, *states.shape[-1:]) if states.dim() == 1 else states
        eps = None
        if self.eps is not None:
            eps = self.eps if rows is None else self.eps[rows]
            if len(eps) != len(batch):
                raise ValueError(f"{len(batch)} observation(s) for {len(eps)} per-row budget(s); pass rows=")
        if len(batch) == 0:
            return observations
        attacked = self.attack(batch, eps=None if eps is None else torch.as_tensor(eps, dtype=parameter.dtype))
        return attacked.reshape(states.shape).cpu().numpy().astype(observations.dtype, copy=False)

    def __repr__(self) -> str:
        return f"ObservationAttackTransform({self.attack!r})"


def _stream(seed: int, key: int) -> list[int]:
    return [int(seed), key]


class ObservationNoise(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Shows the agent noisy observations; the environment moves from the true state.

    ## Description
    Each observation the agent receives is ``s + eps * scale * u`` (:class:`ObservationNoiseTransform`):
    ``u`` uniform in the unit ball of ``norm`` (``kind="uniform"``) or standard normal (``"gaussian"``).
    Rewards, termination and ``info`` are the environment's.

    ## Parameters
    - ``eps``: the noise level (>= 0), in units of ``scale``; ``eps = 0`` gives the unwrapped observations.
    - ``scale``: per-dimension scale (a number or one per observation dimension), e.g. an agent's
      ``state_scale``.
    - ``kind``: ``"uniform"`` or ``"gaussian"``; ``norm``: the ball of the uniform noise, ``"linf"`` or ``"l2"``.

    ## Randomness
    The noise comes from the wrapper's own generator, seeded by ``reset(seed=...)`` (independently of the
    environment's ``np_random``).

    ## Version History
    - v0: first version.
    """

    def __init__(self, env: gym.Env, eps: float, scale: Any = 1.0, kind: str = "uniform",
                 norm: str = "linf") -> None:
        self.transform = ObservationNoiseTransform(eps, scale, kind, norm)
        gym.utils.RecordConstructorArgs.__init__(self, eps=eps, scale=scale, kind=kind, norm=norm)
        gym.ObservationWrapper.__init__(self, env)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset the environment; with ``seed``, also restart the noise from a stream derived from it."""
        if seed is not None:
            self.transform.seed(_stream(seed, _NOISE_STREAM))
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The noisy observation the agent sees."""
        return self.transform(observation)


class _TransformedActions(gym.ActionWrapper):
    """An action wrapper whose :attr:`transform` maps the agent's action to the executed one, its generator
    restarted on ``reset(seed=...)`` from a stream of the wrapper's own (:attr:`_STREAM`)."""

    transform: RandomActionTransform | ActionNoiseTransform
    _STREAM: int

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset the environment; with ``seed``, also restart the wrapper's draws from a derived stream."""
        if seed is not None:
            self.transform.seed(_stream(seed, self._STREAM))
        return super().reset(seed=seed, options=options)

    def action(self, action: Any) -> Any:
        """The action the environment executes."""
        return self.transform(action)


class RandomAction(_TransformedActions, gym.utils.RecordConstructorArgs):
    """With probability ``p`` the environment executes a uniformly random action instead of the agent's.

    ## Description
    The protocol of RFQI (Panaganti et al., NeurIPS 2022): at every step, independently, the agent's action
    is replaced by one drawn uniformly from the action space (:class:`RandomActionTransform`).

    ## Parameters
    - ``p``: the probability of a random action, in [0, 1]; ``p = 0`` gives the unwrapped environment.

    ## Randomness
    The draws come from the wrapper's own generator, seeded by ``reset(seed=...)`` (independently of the
    environment's ``np_random`` and of the action space's own generator).

    ## Version History
    - v0: first version.
    """

    _STREAM = _ACTION_STREAM

    def __init__(self, env: gym.Env, p: float) -> None:
        self.transform = RandomActionTransform(p, env.action_space)
        gym.utils.RecordConstructorArgs.__init__(self, p=p)
        _TransformedActions.__init__(self, env)


class ActionNoise(_TransformedActions, gym.utils.RecordConstructorArgs):
    """The environment executes the agent's continuous action plus Gaussian noise, clipped to the action space.

    ## Description
    At every step the action ``a`` becomes ``clip(a + std * (high - low) / 2 * z, low, high)``, ``z`` standard
    normal per dimension (:class:`ActionNoiseTransform`): Robust-Gymnasium's action noise (Gu et al. 2024), with
    ``std`` in units of the action space's half-width so that one level means the same on every task.

    ## Parameters
    - ``std``: the noise's standard deviation in units of the half-width, >= 0; ``std = 0`` gives the unwrapped
      environment. The action space must be a bounded ``Box`` (``ValueError`` otherwise).

    ## Randomness
    The draws come from the wrapper's own generator, seeded by ``reset(seed=...)`` (independently of the
    environment's ``np_random``).

    ## Version History
    - v0: first version.
    """

    _STREAM = _ACTION_NOISE_STREAM

    def __init__(self, env: gym.Env, std: float) -> None:
        self.transform = ActionNoiseTransform(std, env.action_space)
        gym.utils.RecordConstructorArgs.__init__(self, std=std)
        _TransformedActions.__init__(self, env)


class ObservationAttack(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Shows the agent the attacked state ``s~ = attack(s)``; the environment moves from the true ``s``.

    ## Description
    ``attack`` is an attack of :mod:`robustrl.attacks` built on the agent's Q-network (the white-box threat
    model of Huang et al. 2017 and SA-DQN, Zhang et al., NeurIPS 2020), e.g.
    ``WorstOf.over_losses(PGD, q_net, eps, steps=20, restarts=2, scale=state_scale, clip=None)``; its
    labels are the Q-network's greedy actions on the true state (:class:`ObservationAttackTransform`).

    ## Parameters
    - ``attack``: the attack (it holds the Q-network); ``eps = 0`` gives the unwrapped observations.

    ## Randomness
    The attack's random starts come from the wrapper's own torch generator, seeded by ``reset(seed=...)``.

    ## Version History
    - v0: first version.
    """

    def __init__(self, env: gym.Env, attack: Attack | WorstOf) -> None:
        self.transform = ObservationAttackTransform(attack)
        gym.utils.RecordConstructorArgs.__init__(self, attack=attack)
        gym.ObservationWrapper.__init__(self, env)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset the environment; with ``seed``, also reseed the attack's random starts from a derived stream."""
        if seed is not None:
            self.transform.seed(_stream(seed, _ATTACK_STREAM))
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The attacked observation the agent sees."""
        return self.transform(observation)



def check_ranges(ranges: Any, parameters: Mapping[str, Any] | None = None,
                 family: str = "CartPole") -> dict[str, tuple[float, float]]:
    """Domain-randomization ranges: a non-empty mapping of physical parameter -> ``[low, high]``, finite,
    ``low <= high``, both inside the parameter's valid range; ``ValueError`` naming the parameter and the value.

    ``parameters`` are the family's :class:`~robustrl.envs.params.Parameter` records (default: CartPole's), named
    ``family`` in messages."""
    from robustrl.checks import is_number
    from robustrl.envs.params import Parameter

    if parameters is None:
        from robustrl.envs.cartpole import PARAMETERS as parameters
    if not isinstance(ranges, dict) or not ranges:
        raise ValueError(f"domain randomization needs a mapping of parameter -> [low, high], got {ranges!r}")
    checked = {}
    for name, bounds in ranges.items():
        if name not in parameters:
            raise ValueError(f"unknown {family} parameter {name!r} in the randomization ranges; valid: "
                             f"{', '.join(parameters)}")
        record: Parameter = parameters[name]
        if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2 and all(is_number(b) for b in bounds)
                and record.admits(np.asarray(bounds, dtype=float)).all() and bounds[0] <= bounds[1]):
            raise ValueError(f"{name}: the range must be [low, high] with low <= high, finite and "
                             f"{record.bound}, got {bounds!r}")
        checked[name] = (float(bounds[0]), float(bounds[1]))
    return checked


class DomainRandomization(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Resamples the environment's physics at every reset, uniformly from a box (domain randomization).

    ## Description
    At each ``reset`` every parameter named in ``ranges`` is drawn uniformly from ``[low, high]`` and set
    through the environment's parameter API (``env.unwrapped.set_params``, which keeps the derived
    quantities consistent; any robustrl environment); the parameters it does not name keep their values. The draw is in ``info["physics"]``.
    Tobin et al., "Domain Randomization for Transferring Deep Neural Networks from Simulation to the Real
    World", IROS 2017 (ranges such as those of Packer et al., "Assessing Generalization in Deep Reinforcement
    Learning", 2018).

    ## Parameters
    - ``ranges``: parameter -> ``(low, high)``, e.g. ``{"masspole": (0.05, 0.5), "length": (0.25, 0.75)}``.

    ## Randomness
    The draws come from the wrapper's own generator, seeded by ``reset(seed=...)`` (independently of the
    environment's ``np_random``) and continued by the resets without a seed, so a seeded training run
    sees the same sequence of physics every time.

    ## Version History
    - v0: first version.
    """

    def __init__(self, env: gym.Env, ranges: dict[str, Sequence[float]]) -> None:
        if not hasattr(env.unwrapped, "set_params"):
            raise TypeError(f"domain randomization needs an env with a parameter API (set_params), "
                            f"got {env.unwrapped!r}")
        self.ranges = check_ranges(ranges, env.unwrapped.PARAMETERS, env.unwrapped.FAMILY)
        gym.utils.RecordConstructorArgs.__init__(self, ranges=ranges)
        gym.Wrapper.__init__(self, env)
        self.rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Draw new physics (restarting the draws from a stream of ``seed`` when given), then reset."""
        if seed is not None:
            self.rng = np.random.default_rng(_stream(seed, _PHYSICS_STREAM))
        physics = {name: float(self.rng.uniform(low, high)) for name, (low, high) in self.ranges.items()}
        self.env.unwrapped.set_params(**physics)
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {**info, "physics": physics}
