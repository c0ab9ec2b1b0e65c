"""Argument checks shared by every part of robustrl.

This module imports nothing of torch, gymnasium or Stable-Baselines3, so that the envs, the estimators,
the agents and the experiments can all use the same checks without importing each other.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

__all__ = [
    "LINEAR_NORMS",
    "MAX_SEED",
    "NORMS",
    "check_choice",
    "check_eps",
    "check_int",
    "check_mapping",
    "check_name",
    "check_probability",
    "check_seed",
    "file_error",
    "is_int",
    "is_number",
    "is_of",
]

#: The norms of the perturbation balls, shared by the robust agents and the supervised attacks (here, free
#: of torch, so that the command line can offer them without importing torch).
NORMS: tuple[str, ...] = ("linf", "l2")
#: The norms of exact adversarial logistic regression (:mod:`robustrl.supervised.linear`): :data:`NORMS` and
#: ``"l1"``, whose worst case is closed-form for a linear model only.
LINEAR_NORMS: tuple[str, ...] = (*NORMS, "l1")
#: The largest seed NumPy's and Stable-Baselines3's seeding accept.
MAX_SEED = 2**32 - 1


def is_int(value: Any, minimum: int) -> bool:
    """Whether ``value`` is an integer (Python or NumPy, not a bool) that is ``>= minimum``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (Python or NumPy, int or float), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_of(value: Any, kind: type | tuple[type, ...]) -> bool:
    """``isinstance(value, kind)`` for a value read from a file, where a bool never counts (JSON ``true``
    is not a seed)."""
    return isinstance(value, kind) and not isinstance(value, bool)


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (bools rejected), else ``ValueError`` naming ``name`` and the value."""
    if not is_int(value, minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    return int(value)


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed: an integer in ``[0, 2**32 - 1]`` (what NumPy's and SB3's seeding accept), else ``ValueError``."""
    check_int(seed, name, 0)
    if seed > MAX_SEED:
        raise ValueError(f"{name} must be <= 2**32 - 1 = {MAX_SEED}, got {name}={seed!r}")
    return int(seed)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")


def check_name(value: Any, name: str) -> str:
    """A name that becomes part of a file name (a run's tag): letters, digits and ``._+=-``, not starting
    with a dot or a dash, so it can neither leave its folder (``/``, ``..``) nor hide (``.x``)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{name} must be letters, digits and . _ + = - (not first), got {name}={value!r}")
    return value


def check_eps(eps: Any, name: str = "eps") -> float:
    """A perturbation budget: a finite number ``>= 0``, else ``ValueError`` naming ``name`` and the value."""
    value = float(eps) if is_number(eps) else math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {name}={eps!r}")
    return value


def check_probability(p: Any, name: str = "p") -> float:
    """A probability: a number in ``[0, 1]`` (NaN refused), else ``ValueError`` naming ``name`` and the value."""
    value = float(p) if is_number(p) else math.nan
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {name}={p!r}")
    return value


def check_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of ``choices``, else ``ValueError`` naming it and listing the choices."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def file_error(source: str, path: str, problem: str) -> ValueError:
    """The error of a bad value in a configuration file: ``source: key.path: problem`` (one line)."""
    return ValueError(f"{source}: {path}: {problem}")


def check_mapping(source: str, path: str, data: Any, valid: tuple[str, ...]) -> dict[str, Any]:
    """``data`` if it is a mapping whose keys are all in ``valid``, else :func:`file_error` naming the key path."""
    if not isinstance(data, dict):
        raise file_error(source, path or "(top level)", f"expected a mapping, got {data!r}")
    for key in data:
        if key not in valid:
            raise file_error(source, f"{path}.{key}" if path else str(key), f"unknown key (valid: {', '.join(valid)})")
    return data
