"""Checks of every hyperparameter a config can set: a bad value fails before any run folder or model exists.

Each check raises ``ValueError`` naming the key and the value. Numbers must be numbers: strings and booleans
are refused (``True`` is not a learning rate). The robust keys get the messages :class:`RobustDQN` itself
gives, so a value fails the same way whether it comes from the config or from the constructor.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from robustrl.agents.robust_dqn import (
    check_eta_scale,
    check_perturbation,
    check_rho_ramp,
    check_state_scale,
    check_target_estimator,
    check_target_precision,
)
from robustrl.checks import check_int, is_int, is_number
from robustrl.estimators import check_eta, check_norm, check_rho

__all__ = ["AC_EXTRA_KEYS", "OUTPUT_DQN_KEYS", "ROBUST_KEYS", "TENSORBOARD_MISSING", "UNSUPPORTED_DQN_KEYS",
           "check_ac_kwargs", "check_dqn_kwargs", "check_robust_kwargs", "check_tensorboard_log"]

ROBUST_KEYS = ("rho", "eta", "n_samples", "norm", "state_scale", "estimator", "mlmc_level", "perturbation",
               "pgd_steps", "rho_ramp", "eta_scale", "target_precision", "state_scale_steps")

#: DQN keyword arguments robustrl does not let a config set, and why.
UNSUPPORTED_DQN_KEYS: dict[str, str] = {
    "replay_buffer_class": "a class cannot be written in the YAML config or saved in meta.json",
    "replay_buffer_kwargs": "robustrl trains with SB3's default replay buffer",
    "optimize_memory_usage": "SB3's replay buffer refuses it together with timeout handling",
    "verbose": "robustrl sets it",
}

#: DQN keyword arguments that say where a run writes, not how it trains: a config may set them, but
#: :class:`~robustrl.agents.AgentConfig` keeps them out of ``dqn_kwargs`` and out of the saved config, so a
#: run trained with or without them is the same run.
OUTPUT_DQN_KEYS = ("tensorboard_log",)
#: The error when TensorBoard logging is asked for and TensorBoard is not installed.
TENSORBOARD_MISSING = "TensorBoard logging needs the tensorboard package: pip install 'robustrl[tensorboard]'"


def check_tensorboard_log(value: Any) -> str | None:
    """Check a TensorBoard folder: None (no TensorBoard logging) or a non-empty path, returned as a string.

    A folder is refused, with :data:`TENSORBOARD_MISSING`, when TensorBoard is not installed (the optional
    extra ``robustrl[tensorboard]``), so that the run fails before any training rather than when SB3 sets up
    its logger.
    """
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"tensorboard_log must be a folder path, got tensorboard_log={value!r}")
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (what SB3's logger writes with)
    except ImportError:
        raise ValueError(TENSORBOARD_MISSING) from None
    return str(value)


def _real(name: str, value: Any, rule: str, ok: Callable[[float], bool]) -> None:
    if not is_number(value) or not ok(float(value)):
        raise ValueError(f"{name} must be {rule}, got {name}={value!r}")


def _unit(name: str, value: Any) -> None:
    _real(name, value, "a number in [0, 1]", lambda v: 0 <= v <= 1)


def _learning_rate(value: Any) -> None:
    if callable(value):
        raise ValueError("learning_rate must be a number > 0 (a schedule cannot be saved in the run's "
                         f"meta.json), got learning_rate={value!r}")
    _real("learning_rate", value, "a finite number > 0", lambda v: math.isfinite(v) and v > 0)


def _train_freq(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[1] not in ("step", "episode"):
            raise ValueError(f"train_freq must be an integer >= 1 or a pair [n, 'step' | 'episode'], "
                             f"got train_freq={value!r}")
        check_int(value[0], "train_freq", 1)
        return (value[0], value[1])
    check_int(value, "train_freq", 1)
    return value


def _gradient_steps(value: Any) -> None:
    if not (is_int(value, 1) or (is_int(value, -1) and value == -1)):
        raise ValueError("gradient_steps must be an integer >= 1, or -1 (as many as environment steps), "
                         f"got gradient_steps={value!r}")


def _policy_kwargs(value: Any) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(f"policy_kwargs must be a mapping such as {{net_arch: [64, 64]}}, "
                         f"got policy_kwargs={value!r}")
    for key in value:
        if key != "net_arch":
            raise ValueError(f"policy_kwargs.{key} is not supported (only net_arch can be set in a config)")
    net_arch = value.get("net_arch", [])
    if not isinstance(net_arch, (list, tuple)) or not all(is_int(n, 1) for n in net_arch):
        raise ValueError(f"policy_kwargs.net_arch must be a list of layer sizes (integers >= 1), "
                         f"got net_arch={net_arch!r}")


_DQN_CHECKS: dict[str, Callable[[Any], Any]] = {
    "learning_rate": _learning_rate,
    "buffer_size": lambda v: check_int(v, "buffer_size", 1),
    "learning_starts": lambda v: check_int(v, "learning_starts", 0),
    "batch_size": lambda v: check_int(v, "batch_size", 1),
    "tau": lambda v: _real("tau", v, "a number in (0, 1]", lambda x: 0 < x <= 1),
    "gamma": lambda v: _unit("gamma", v),
    "train_freq": _train_freq,
    "gradient_steps": _gradient_steps,
    "n_steps": lambda v: check_int(v, "n_steps", 1),
    "target_update_interval": lambda v: check_int(v, "target_update_interval", 1),
    "exploration_fraction": lambda v: _unit("exploration_fraction", v),
    "exploration_initial_eps": lambda v: _unit("exploration_initial_eps", v),
    "exploration_final_eps": lambda v: _unit("exploration_final_eps", v),
    "max_grad_norm": lambda v: _real("max_grad_norm", v, "a number > 0", lambda x: x > 0),
    "stats_window_size": lambda v: check_int(v, "stats_window_size", 1),
    "policy_kwargs": _policy_kwargs,
}


def _ent_coef(value: Any) -> None:
    if isinstance(value, str) and (value == "auto" or value.startswith("auto_")):
        if value != "auto":
            _real("ent_coef", _float_or_nan(value[5:]), "'auto', 'auto_<initial value>' or a number > 0",
                  lambda x: x > 0)
        return
    _real("ent_coef", value, "'auto', 'auto_<initial value>' or a number > 0", lambda x: math.isfinite(x) and x > 0)


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


#: The keyword arguments of SAC and TD3 a config can set, with their checks (the shared ones are DQN's).
_AC_CHECKS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "SAC": {**{k: _DQN_CHECKS[k] for k in ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau",
                                           "gamma", "train_freq", "gradient_steps", "policy_kwargs")},
            "ent_coef": _ent_coef,
            "target_update_interval": lambda v: check_int(v, "target_update_interval", 1),
            "action_noise_std": lambda v: _real("action_noise_std", v, "a number >= 0", lambda x: x >= 0)},
    "TD3": {**{k: _DQN_CHECKS[k] for k in ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau",
                                           "gamma", "train_freq", "gradient_steps", "policy_kwargs")},
            "policy_delay": lambda v: check_int(v, "policy_delay", 1),
            "target_policy_noise": lambda v: _real("target_policy_noise", v, "a number >= 0", lambda x: x >= 0),
            "target_noise_clip": lambda v: _real("target_noise_clip", v, "a number >= 0", lambda x: x >= 0),
            "action_noise_std": lambda v: _real("action_noise_std", v, "a number >= 0", lambda x: x >= 0)},
}
#: Keys of the actor-critic configs that are not SB3 keyword arguments: ``action_noise_std`` (the standard deviation
#: of Gaussian exploration noise on the actions, in units of the action range; SB3's ``action_noise`` object).
AC_EXTRA_KEYS = ("action_noise_std",)


def _check_buffer(merged: Mapping[str, Any]) -> None:
    """The replay buffer must hold a batch: ``buffer_size >= batch_size`` (SB3's defaults for unset keys)."""
    if merged["buffer_size"] < merged["batch_size"]:
        raise ValueError(f"buffer_size must be >= batch_size, got buffer_size={merged['buffer_size']!r} "
                         f"and batch_size={merged['batch_size']!r}")


def check_ac_kwargs(kwargs: dict[str, Any], family: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Check SAC's or TD3's (``family``) keyword arguments as :func:`check_dqn_kwargs` checks DQN's."""
    checks = _AC_CHECKS[family]
    checked = dict(kwargs)
    for key, value in kwargs.items():
        if key in OUTPUT_DQN_KEYS:
            raise ValueError(f"{key!r} is an output option, not a {family} hyperparameter")
        if key not in checks:
            raise ValueError(f"hyperparameter {key!r} is not supported for {family} by robustrl; valid: "
                             f"{', '.join(sorted(checks))}")
        result = checks[key](value)
        if key == "train_freq":
            checked[key] = result
    _check_buffer({**defaults, **checked})
    return checked


def check_dqn_kwargs(kwargs: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Check DQN keyword arguments; returns them with a ``train_freq`` pair as the tuple SB3 expects.

    ``defaults`` (SB3's defaults) stand in for unset keys in checks that relate two keys
    (``buffer_size >= batch_size``). A key SB3 accepts that robustrl does not check is refused, and so is an
    output option (:data:`OUTPUT_DQN_KEYS`), which is no hyperparameter.
    """
    checked = dict(kwargs)
    for key, value in kwargs.items():
        if key in OUTPUT_DQN_KEYS:
            raise ValueError(f"{key!r} is an output option, not a DQN hyperparameter: AgentConfig holds it "
                             f"apart from dqn_kwargs")
        if key in UNSUPPORTED_DQN_KEYS:
            raise ValueError(f"hyperparameter {key!r} is not supported: {UNSUPPORTED_DQN_KEYS[key]}")
        if key not in _DQN_CHECKS:
            raise ValueError(f"hyperparameter {key!r} is not supported by robustrl")
        result = _DQN_CHECKS[key](value)
        if key == "train_freq":
            checked[key] = result
    _check_buffer({**defaults, **checked})
    return checked


def check_robust_kwargs(kwargs: dict[str, Any], obs_size: int | None = None) -> dict[str, Any]:
    """Check :class:`RobustDQN`'s keyword arguments with its own checks (``obs_size``: for state_scale)."""
    checks: dict[str, Callable[[Any], Any]] = {
        "rho": check_rho,
        "eta": check_eta,
        "n_samples": lambda v: check_int(v, "n_samples", 1),
        "norm": check_norm,
        "state_scale": lambda v: check_state_scale(v, obs_size, allow_auto=True),
        "state_scale_steps": lambda v: check_int(v, "state_scale_steps", 1),
        "estimator": check_target_estimator,
        "mlmc_level": lambda v: check_int(v, "mlmc_level", 0),
        "perturbation": check_perturbation,
        "pgd_steps": lambda v: check_int(v, "pgd_steps", 1),
        "rho_ramp": check_rho_ramp,
        "eta_scale": check_eta_scale,
        "target_precision": check_target_precision,
    }
    for key, value in kwargs.items():
        if key not in ROBUST_KEYS:
            raise ValueError(f"unknown robust hyperparameter {key!r}; valid: {', '.join(ROBUST_KEYS)}")
        checks[key](value)
    return kwargs
