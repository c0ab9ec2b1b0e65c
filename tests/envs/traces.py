"""Comparing two environments step for step: what the families' tests share."""

from __future__ import annotations

import numpy as np


def assert_same_trace(a: list, b: list) -> None:
    """Two traces (observations, and ``(obs, reward, terminated, truncated)`` tuples) are exactly equal."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, tuple):
            assert np.array_equal(x[0], y[0]) and x[1:] == y[1:]
        else:
            assert np.array_equal(x, y)
