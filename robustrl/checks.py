"""Argument checks shared by every part of robustrl.

This module imports nothing of torch, gymnasium or Stable-Baselines3, so that the envs, the estimators,
the agents and the experiments can all use the same checks without importing each other.
"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["NORMS", "check_int", "is_int", "is_number", "is_of"]

#: The norms of the perturbation balls, shared by the robust agents and the supervised attacks (here, free
#: of torch, so that the command line can offer them without importing torch).
NORMS: tuple[str, ...] = ("linf", "l2")


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
