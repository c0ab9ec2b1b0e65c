"""Statistics of one agent over an uncertainty set, across its seeds: mean, worst case and CVaR, with CIs.

The data is a matrix of shape ``(n_seeds, n_settings)``: one row per run (seed) of the agent, one column per
setting of the set, each entry the run's mean greedy return at that setting
(:func:`robustrl.experiments.uncertainty.uncertainty_run`). Every statistic first averages over the seeds
at each setting, then summarizes the settings:

- :func:`set_mean`: the mean over the set;
- :func:`worst_case`: the minimum over settings of the seed-averaged return, the worst case RRLS reports
  beside the average (Zouitine et al., "RRLS: Robust Reinforcement Learning Suite", 2024);
- :func:`cvar`: the mean of the worst ``ceil(alpha * n_settings)`` settings (CVaR at level ``alpha``).

:func:`set_statistics` gives the three with percentile bootstrap confidence intervals over seeds: a resample
draws ``n_seeds`` rows with replacement (a seed keeps its whole row), and the statistic is computed again.
The worst case and CVaR of resampled averages are biased low (the minimum of noisy averages is lower than
that of their expectations): when many settings are about as bad as the worst, their interval can sit
below the estimate, and it is wider below than above. Numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from robustrl.checks import check_int

__all__ = [
    "CVAR_LEVEL",
    "SetStatistic",
    "batched_statistic",
    "cvar",
    "seed_bootstrap_ci",
    "seed_bootstrap_diff_ci",
    "set_mean",
    "set_statistics",
    "worst_case",
]

#: The CVaR level of the reports: the mean of the worst 10 % of settings.
CVAR_LEVEL = 0.1
_RESAMPLES = 10_000
_CHUNK_ELEMENTS = 1 << 22  # bootstrap resamples are drawn in chunks of at most about this many elements


class SetStatistic(NamedTuple):
    """A statistic over an uncertainty set and its bootstrap confidence interval over seeds."""

    value: float
    ci_low: float
    ci_high: float


def _matrix(returns: np.ndarray) -> np.ndarray:
    matrix = np.asarray(returns, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
        raise ValueError(f"returns must be a (n_seeds, n_settings) matrix with at least one entry, "
                         f"got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("returns must be finite")
    return matrix


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got alpha={alpha!r}")
    return float(alpha)


def _worst_count(alpha: float, n_settings: int) -> int:
    # rounded first: 0.1 * 30 is 3.0000000000000004 in floating point, and its ceil must be 3
    return max(1, math.ceil(round(alpha * n_settings, 9)))


def _mean_over(seed_means: np.ndarray) -> np.ndarray:
    return seed_means.mean(axis=-1)


def _worst_over(seed_means: np.ndarray) -> np.ndarray:
    return seed_means.min(axis=-1)


def _cvar_over(seed_means: np.ndarray, alpha: float) -> np.ndarray:
    count = _worst_count(alpha, seed_means.shape[-1])
    return np.sort(seed_means, axis=-1)[..., :count].mean(axis=-1)


def batched_statistic(name: str, alpha: float = CVAR_LEVEL) -> Callable[[np.ndarray], np.ndarray]:
    """The statistic ``"mean"``, ``"worst"`` or ``"cvar"`` (at level ``alpha``) as a function of returns of
    shape ``(..., n_settings)`` to shape ``(...)``: of seed-averaged returns, or of each seed's own row."""
    if name == "mean":
        return _mean_over
    if name == "worst":
        return _worst_over
    if name == "cvar":
        alpha = _check_alpha(alpha)
        return lambda m: _cvar_over(m, alpha)
    raise ValueError(f"statistic must be one of ('mean', 'worst', 'cvar'), got {name!r}")


def set_mean(returns: np.ndarray) -> float:
    """The mean over the set's settings of the seed-averaged return."""
    return float(_mean_over(_matrix(returns).mean(axis=0)))


def worst_case(returns: np.ndarray) -> float:
    """The worst case over the set: the minimum over settings of the seed-averaged return (as in RRLS,
    Zouitine et al., 2024). Averaging first means one seed's failure at a setting is not the worst case
    unless it drags that setting's seed average below every other's."""
    return float(_worst_over(_matrix(returns).mean(axis=0)))


def cvar(returns: np.ndarray, alpha: float = CVAR_LEVEL) -> float:
    """CVaR at level ``alpha``: the mean of the worst ``ceil(alpha * n_settings)`` seed-averaged returns."""
    return float(_cvar_over(_matrix(returns).mean(axis=0), _check_alpha(alpha)))


def seed_bootstrap_ci(returns: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], level: float = 0.95,
                      resamples: int = _RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI over seeds of a statistic of the seed-averaged returns.

    :param returns: ``(n_seeds, n_settings)`` matrix.
    :param statistic: maps seed-averaged returns of shape ``(..., n_settings)`` to shape ``(...)``
        (vectorized over the resamples), e.g. ``lambda m: m.min(axis=-1)``.
    :param level: confidence level in (0, 1).
    :param resamples: number of resamples (>= 1); deterministic for a given ``seed``.
    """
    matrix = _matrix(returns)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got level={level!r}")
    check_int(resamples, "resamples", 1)
    rng = np.random.default_rng(seed)
    n_seeds = matrix.shape[0]
    chunk = max(1, _CHUNK_ELEMENTS // matrix.size)
    values = []
    for start in range(0, resamples, chunk):
        rows = rng.integers(0, n_seeds, size=(min(chunk, resamples - start), n_seeds))
        values.append(np.asarray(statistic(matrix[rows].mean(axis=1)), dtype=float))
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(np.concatenate(values), [alpha, 1.0 - alpha])
    return float(low), float(high)


def seed_bootstrap_diff_ci(returns_a: np.ndarray, returns_b: np.ndarray,
                           statistic: Callable[[np.ndarray], np.ndarray], level: float = 0.95,
                           resamples: int = _RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic(a) - statistic(b)`` over the seed-averaged returns of two agents
    on the same settings, each agent's seeds (rows) resampled independently (see :func:`seed_bootstrap_ci`)."""
    a, b = _matrix(returns_a), _matrix(returns_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"both agents need the same settings, got {a.shape[1]} and {b.shape[1]} columns")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got level={level!r}")
    check_int(resamples, "resamples", 1)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // (a.size + b.size))
    values = []
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        rows_a = rng.integers(0, a.shape[0], size=(count, a.shape[0]))
        rows_b = rng.integers(0, b.shape[0], size=(count, b.shape[0]))
        values.append(np.asarray(statistic(a[rows_a].mean(axis=1)), dtype=float)
                      - np.asarray(statistic(b[rows_b].mean(axis=1)), dtype=float))
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(np.concatenate(values), [alpha, 1.0 - alpha])
    return float(low), float(high)


def set_statistics(returns: np.ndarray, alpha: float = CVAR_LEVEL, level: float = 0.95,
                   resamples: int = _RESAMPLES, seed: int = 0) -> dict[str, SetStatistic]:
    """The mean, worst case (RRLS, Zouitine et al., 2024) and CVaR of one agent over an uncertainty set.

    :param returns: ``(n_seeds, n_settings)`` mean returns, one row per seed.
    :param alpha: CVaR level (default 10 %).
    :returns: ``{"mean", "worst", "cvar"}`` -> :class:`SetStatistic` with a bootstrap CI over seeds
        (:func:`seed_bootstrap_ci`; the three share the resamples' seed).
    """
    matrix = _matrix(returns)
    alpha = _check_alpha(alpha)
    seed_means = matrix.mean(axis=0)
    batched = {name: batched_statistic(name, alpha) for name in ("mean", "worst", "cvar")}
    return {name: SetStatistic(float(statistic(seed_means)),
                               *seed_bootstrap_ci(matrix, statistic, level, resamples, seed))
            for name, statistic in batched.items()}
