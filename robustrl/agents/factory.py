"""Build regular and robust agents from the rl-zoo style YAML config."""

from __future__ import annotations

import copy
import inspect
import io
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import DQN, SAC, TD3

from robustrl.agents.hyperparameters import (
    AC_EXTRA_KEYS,
    OUTPUT_DQN_KEYS,
    ROBUST_KEYS,
    check_ac_kwargs,
    check_dqn_kwargs,
    check_robust_kwargs,
    check_tensorboard_log,
)
from robustrl.agents.robust_ac import PRMDPTD3, RobustSAC, RobustTD3
from robustrl.agents.robust_dqn import RobustDQN
from robustrl.agents.robust_target import ROBUST_TARGET_KEYS
from robustrl.agents.sa_dqn import SA_KEYS, SADQN, RobustSADQN, check_sa_kwargs
from robustrl.checks import check_int, check_option, load_yaml, read_yaml

__all__ = ["AGENT_CLASSES", "ALGORITHM_FAMILIES", "ROBUST_KEYS", "AgentConfig", "available_agents", "load_agent", "load_config", "make_agent"]

#: The classes an agent's ``algo`` (in the YAML config) names, by that name.
AGENT_CLASSES: dict[str, type[Any]] = {"DQN": DQN, "RobustDQN": RobustDQN, "SADQN": SADQN,
                                       "RobustSADQN": RobustSADQN, "SAC": SAC,
                                       "RobustSAC": RobustSAC, "TD3": TD3, "RobustTD3": RobustTD3,
                                       "PRMDPTD3": PRMDPTD3}
#: The algorithm families an env id's block can name (``algorithm:``, default DQN): the plain class and the robust
#: one of each.
ALGORITHM_FAMILIES = {"DQN": (DQN, RobustDQN), "SAC": (SAC, RobustSAC), "TD3": (TD3, RobustTD3)}
#: Keys RobustDQN and SADQN share (the others decide which of the two an agent is, or RobustSADQN with both).
_SHARED_KEYS = ("norm", "state_scale")
SELECTION_TIES = ("latest", "first", "margin")
_EXPERIMENT_KEYS = ("n_timesteps", "model_selection", "agents", "policy", "algorithm")
_DQN_DEFAULTS = {
    name: parameter.default for name, parameter in inspect.signature(DQN.__init__).parameters.items()
    if name not in ("self", "policy", "env", "seed", "device", "_init_setup_model")
}
_DQN_KEYS = tuple(_DQN_DEFAULTS)


def _defaults(cls: type) -> dict[str, Any]:
    return {name: parameter.default for name, parameter in inspect.signature(cls.__init__).parameters.items()
            if name not in ("self", "policy", "env", "seed", "device", "_init_setup_model")}


def load_config(path: str | Path | None = None, packaged: str = "dqn.yml") -> dict[str, Any]:
    """Read the YAML config keyed by env id: the file at ``path``, or the packaged ``configs/PACKAGED`` (a task's
    :attr:`~robustrl.tasks.Task.hyperparameters`; default ``dqn.yml``)."""
    if path is None:
        packaged = f"configs/{packaged}"
        config = load_yaml(resources.files("robustrl").joinpath(packaged).read_text(), packaged)
    else:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist")
        config = read_yaml(path)  # invalid YAML, a key given twice, not UTF-8: a ValueError naming the file
    if not isinstance(config, dict) or not config:
        raise ValueError(f"config file {path} must map env ids to hyperparameters")
    return config


def available_agents(config: dict[str, Any], env_id: str) -> list[str]:
    """Agent names configured for ``env_id``."""
    return list(_env_block(config, env_id).get("agents", {}))


def _family(env_id: str) -> Any:
    """The environment class registered for ``env_id`` (its parameter records: ``PARAMETERS``)."""
    import importlib

    import gymnasium as gym

    module, _, name = gym.spec(env_id).entry_point.partition(":")
    return getattr(importlib.import_module(module), name)


def _env_block(config: dict[str, Any], env_id: str) -> dict[str, Any]:
    if env_id not in config:
        raise ValueError(f"no hyperparameters for env id {env_id!r}; configured: {', '.join(config)}")
    return config[env_id]


@dataclass
class AgentConfig:
    """Everything needed to train one agent: algorithm, its keyword arguments and the budget.

    ``dqn_kwargs`` are the SB3 algorithm's keyword arguments (DQN's, or SAC's or TD3's when the env id's block
    says ``algorithm: SAC`` or ``TD3``; the name is kept so that saved configurations stay comparable)."""

    env_id: str
    agent: str
    algo: str
    policy: str
    n_timesteps: int
    eval_freq: int
    eval_episodes: int
    selection_ties: str = "latest"
    dqn_kwargs: dict[str, Any] = field(default_factory=dict)
    robust_kwargs: dict[str, Any] = field(default_factory=dict)
    #: parameter -> [low, high]: the training env's physics is drawn from this box at every reset
    #: (:class:`robustrl.wrappers.DomainRandomization`); empty for training on the nominal physics only.
    domain_randomization: dict[str, list[float]] = field(default_factory=dict)
    #: folder SB3 writes TensorBoard event files into (a subfolder per run), or None: an output option, not
    #: a hyperparameter, so it is left out of :meth:`to_dict` (the saved config): a run is the same without it.
    tensorboard_log: str | None = None

    @classmethod
    def resolve(
        cls, config: dict[str, Any], env_id: str, agent: str, overrides: dict[str, Any] | None = None
    ) -> AgentConfig:
        """Resolve ``agent`` for ``env_id``; ``overrides`` (e.g. ``{"eta": 0.1}``) win over the file.

        Every value is checked here (:mod:`robustrl.agents.hyperparameters`), so a bad one raises
        ``ValueError`` naming the key and the value before any folder or model is created. ``tensorboard_log``
        (in the env's block of the file or in ``overrides``) goes to :attr:`tensorboard_log`, not to
        ``dqn_kwargs``; asking for it without TensorBoard installed is such a ``ValueError``.
        """
        block = copy.deepcopy(_env_block(config, env_id))
        outputs = {key: block.pop(key) for key in OUTPUT_DQN_KEYS if key in block}
        agents = block.get("agents", {})
        if agent not in agents:
            raise ValueError(f"unknown agent {agent!r}; valid: {', '.join(agents)}")
        robust = dict(agents[agent] or {})
        # An agent may name its own algorithm family and its kwargs (e.g. TD3 beside SAC on one env id).
        family = robust.pop("algorithm", block.get("algorithm", "DQN"))
        check_option(family, tuple(ALGORITHM_FAMILIES), "algorithm")
        plain_class = ALGORITHM_FAMILIES[family][0]
        kwarg_keys = _DQN_KEYS if family == "DQN" else (*_defaults(plain_class), *AC_EXTRA_KEYS)
        randomization = robust.pop("domain_randomization", None)
        own = {k: robust.pop(k) for k in list(robust) if family != "DQN" and k in kwarg_keys}
        dqn = {**{k: v for k, v in block.items() if k not in _EXPERIMENT_KEYS}, **own}
        selection = dict(block.get("model_selection", {}))
        budget = {"n_timesteps": block.get("n_timesteps", 50_000), **selection}
        for key, value in (overrides or {}).items():
            if key in ROBUST_KEYS or key in SA_KEYS or key == "pr_alpha":
                robust[key] = value
            elif key in ("n_timesteps", "eval_freq", "eval_episodes", "ties"):
                budget[key] = value
            elif key in OUTPUT_DQN_KEYS:
                outputs[key] = value
            elif key in kwarg_keys:
                dqn[key] = value
            else:
                valid = sorted({*ROBUST_KEYS, *SA_KEYS, *kwarg_keys, "n_timesteps", "eval_freq", "eval_episodes",
                                "ties", *OUTPUT_DQN_KEYS})
                raise ValueError(f"unknown hyperparameter {key!r}; valid: {', '.join(valid)}")
        for key in ("n_timesteps", "eval_freq", "eval_episodes"):
            value = budget.get(key, 1)
            check_int(value, key, 1)
        ties = check_option(budget.get("ties", "latest"), SELECTION_TIES, "ties")
        policy = check_option(block.get("policy", "MlpPolicy"), tuple(plain_class.policy_aliases), "policy")
        if family == "DQN":
            dqn = check_dqn_kwargs(dqn, _DQN_DEFAULTS)
        else:
            dqn = check_ac_kwargs(dqn, family, _defaults(plain_class))
        tensorboard_log = check_tensorboard_log(outputs.get("tensorboard_log"))
        if family == "DQN":
            algo = _algorithm(agent, robust)
            check_sa_kwargs(robust)
        elif family == "TD3" and "pr_alpha" in robust:  # the action-robust baseline (PR-MDP)
            other = sorted(k for k in robust if k != "pr_alpha")
            if other:
                raise ValueError(f"agent {agent!r}: pr_alpha (PR-MDP) does not combine with {', '.join(other)}")
            from robustrl.checks import check_probability

            check_probability(robust["pr_alpha"], "pr_alpha")
            algo = "PRMDPTD3"
        else:
            other = sorted(k for k in robust if k not in ROBUST_TARGET_KEYS)
            if other:
                raise ValueError(f"agent {agent!r}: {', '.join(other)} not available for {family}; its robust "
                                 f"target takes {', '.join(ROBUST_TARGET_KEYS)}")
            algo = ALGORITHM_FAMILIES[family][1].__name__ if robust else family
        check_robust_kwargs({k: v for k, v in robust.items() if k not in SA_KEYS and k != "pr_alpha"},
                            None if robust.get("state_scale") is None else _observation_size(env_id))
        if randomization is not None:
            from robustrl.wrappers import check_ranges

            try:
                family = _family(env_id)
                randomization = {k: list(v) for k, v in check_ranges(randomization, family.PARAMETERS,
                                                                      family.FAMILY).items()}
            except ValueError as err:
                raise ValueError(f"agents.{agent}.domain_randomization: {err}") from None
        return cls(
            env_id=env_id,
            agent=agent,
            algo=algo,
            policy=policy,
            n_timesteps=int(budget["n_timesteps"]),
            eval_freq=int(budget.get("eval_freq", 2500)),
            eval_episodes=int(budget.get("eval_episodes", 20)),
            selection_ties=ties,
            dqn_kwargs=dqn,
            robust_kwargs=robust,
            domain_randomization=randomization or {},
            tensorboard_log=tensorboard_log,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, for saving beside a run (without ``domain_randomization`` when it is empty, so
        that the configs of runs saved before it existed still compare equal, and never with
        ``tensorboard_log``, which says where a run logs, not what it is)."""
        data = asdict(self)
        del data["tensorboard_log"]
        if not data["domain_randomization"]:
            del data["domain_randomization"]
        return data

    def make_training_env(self) -> gym.Env:
        """The env the agent trains on: ``env_id``, its physics resampled at every reset if
        ``domain_randomization`` names a box."""
        env = gym.make(self.env_id)
        if self.domain_randomization:
            from robustrl.wrappers import DomainRandomization

            env = DomainRandomization(env, self.domain_randomization)
        return env


def _algorithm(agent: str, kwargs: dict[str, Any]) -> str:
    """``"RobustSADQN"`` if the agent sets SA-DQN keys and robust-target keys, ``"SADQN"`` if only SA-DQN keys,
    ``"RobustDQN"`` if only others, else ``"DQN"``."""
    sa = any(k in SA_KEYS for k in kwargs)
    robust = any(k not in SA_KEYS and k not in _SHARED_KEYS for k in kwargs)
    if sa and robust:
        return "RobustSADQN"
    return "SADQN" if sa else "RobustDQN" if kwargs else "DQN"


def _observation_size(env_id: str) -> int | None:
    """Size of ``env_id``'s observations, or None for an id Gymnasium does not know."""
    if env_id not in gym.registry:
        return None
    env = gym.make(env_id)
    try:
        return int(np.prod(env.observation_space.shape))
    finally:
        env.close()


def make_agent(cfg: AgentConfig, env: gym.Env | Any, seed: int, **kwargs: Any) -> Any:
    """Instantiate the agent of ``cfg`` on ``env`` with ``seed`` (extra ``kwargs`` go to SB3, and win over
    ``cfg.tensorboard_log``, which is SB3's ``tensorboard_log`` when it is set). ``action_noise_std`` (SAC, TD3)
    becomes SB3's ``NormalActionNoise`` with that standard deviation on every action dimension."""
    cls = AGENT_CLASSES[cfg.algo]
    outputs = {} if cfg.tensorboard_log is None else {"tensorboard_log": cfg.tensorboard_log}
    algorithm_kwargs = copy.deepcopy(dict(cfg.dqn_kwargs))  # SB3 writes into policy_kwargs (use_sde)
    robust_kwargs = dict(cfg.robust_kwargs)
    if cfg.algo == "PRMDPTD3":
        robust_kwargs["alpha"] = robust_kwargs.pop("pr_alpha")
    if "action_noise_std" in algorithm_kwargs:
        from stable_baselines3.common.noise import NormalActionNoise

        size = int(np.prod(env.action_space.shape))
        std = float(algorithm_kwargs.pop("action_noise_std"))
        algorithm_kwargs["action_noise"] = NormalActionNoise(np.zeros(size), std * np.ones(size))
    return cls(cfg.policy, env, seed=seed, **algorithm_kwargs, **robust_kwargs, **{**outputs, **kwargs})


def load_agent(path: str | Path, algo: str = "DQN", device: str = "cpu") -> DQN:
    """Load a saved agent, with an error naming the file if it is missing or corrupted."""
    path = Path(path)
    if algo not in AGENT_CLASSES:
        raise ValueError(f"unknown algorithm {algo!r}; valid: {', '.join(AGENT_CLASSES)}")
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        data = io.BytesIO(path.read_bytes())
        return AGENT_CLASSES[algo].load(data, device=device)
    except (zipfile.BadZipFile, KeyError, EOFError, RuntimeError, ValueError, AssertionError) as err:
        # the loader's own message names the in-memory buffer, not the file: keep only the error type
        raise ValueError(
            f"model file {path} is corrupted or not a {algo} model ({type(err).__name__})"
        ) from None
