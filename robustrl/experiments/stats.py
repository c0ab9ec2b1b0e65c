"""Aggregate statistics across runs and tasks, after Agarwal et al., "Deep Reinforcement Learning at the Edge
of the Statistical Precipice" (NeurIPS 2021).

The data is a score matrix of shape ``(n_runs, n_tasks)``: one row per run (seed), one column per task (an
evaluation env id of a task), each entry the run's mean return on that task.
:func:`normalize` maps returns to ``[0, 1]`` by a task's return range (:attr:`robustrl.tasks.Task.return_range`).

Provided: the interquartile mean (IQM), mean, median and optimality gap, percentile confidence intervals
from the stratified bootstrap (runs resampled with replacement independently within each task), the
probability of improvement and performance profiles (run-score distributions), with a plot of the latter.

This is a numpy-only re-implementation of the parts of ``rliable`` (the paper's library) that we use:
``rliable`` pins ``arch==5.3.0``, which does not install cleanly beside our pins, so it is not a dependency.
The results follow ``rliable``'s definitions (the median is the median of the per-task mean scores).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from robustrl.checks import check_int
from robustrl.experiments.io import atomic_write_png

__all__ = [
    "aggregate",
    "iqm",
    "mean",
    "median",
    "normalize",
    "optimality_gap",
    "performance_profile",
    "performance_profile_ci",
    "plot_performance_profiles",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "stratified_bootstrap_ci",
]

_CHUNK_ELEMENTS = 1 << 22  # bootstrap resamples are drawn in chunks of at most about this many elements


# ---------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------

def _matrix(scores: np.ndarray, name: str) -> np.ndarray:
    """``scores`` as a finite float matrix ``(n_runs, n_tasks)``; ValueError naming ``name`` otherwise."""
    array = np.asarray(scores, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_runs, n_tasks), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); need at least one run and one task")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite entries")
    return array


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:  # also rejects NaN
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(level)


def _check_resamples(resamples: int) -> int:
    return check_int(resamples, "resamples", 1)


def _taus(taus: np.ndarray) -> np.ndarray:
    array = np.atleast_1d(np.asarray(taus, dtype=float))
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"taus must be a non-empty 1-D array of thresholds, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("taus contains NaN or infinite entries")
    return array


# ---------------------------------------------------------------------------------------------------------
# Point estimates
# ---------------------------------------------------------------------------------------------------------

def normalize(scores: np.ndarray, low: float, high: float) -> np.ndarray:
    """Normalized scores ``(scores - low) / (high - low)``: a task's :attr:`~robustrl.tasks.Task.return_range`
    maps its returns to [0, 1].

    :param scores: returns, any shape.
    :param low: the return mapped to 0.
    :param high: the return mapped to 1 (> ``low``).
    """
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise ValueError(f"need finite low < high, got low={low}, high={high}")
    return (np.asarray(scores, dtype=float) - low) / (high - low)


def _iqm_batch(batch: np.ndarray) -> np.ndarray:
    """IQM of each matrix in a stack ``(n_resamples, n_runs, n_tasks)``."""
    flat = np.sort(batch.reshape(batch.shape[0], -1), axis=1)
    cut = flat.shape[1] // 4  # int(0.25 * n), as scipy.stats.trim_mean
    return flat[:, cut:flat.shape[1] - cut].mean(axis=1)


def _mean_batch(batch: np.ndarray) -> np.ndarray:
    return batch.mean(axis=(1, 2))


def _median_batch(batch: np.ndarray) -> np.ndarray:
    return np.median(batch.mean(axis=1), axis=1)


def _optimality_gap_batch(batch: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    return np.maximum(gamma - batch, 0.0).mean(axis=(1, 2))


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean (Agarwal et al., 2021) over all entries of the ``(n_runs, n_tasks)`` matrix.

    The 25% trimmed mean as ``rliable`` computes it (``scipy.stats.trim_mean(scores.ravel(), 0.25)``):
    sort the ``n`` entries, drop ``floor(n / 4)`` from each end and average the rest.

    :param scores: score matrix ``(n_runs, n_tasks)``, usually normalized.
    """
    return float(_iqm_batch(_matrix(scores, "scores")[None])[0])


def mean(scores: np.ndarray) -> float:
    """Mean over all entries of the ``(n_runs, n_tasks)`` matrix (Agarwal et al., 2021).

    Equal to ``rliable``'s mean of the per-task mean scores, since every task has the same number of runs.

    :param scores: score matrix ``(n_runs, n_tasks)``.
    """
    return float(_matrix(scores, "scores").mean())


def median(scores: np.ndarray) -> float:
    """Median of the per-task mean scores (Agarwal et al., 2021; ``rliable``'s ``aggregate_median``).

    :param scores: score matrix ``(n_runs, n_tasks)``.
    """
    return float(np.median(_matrix(scores, "scores").mean(axis=0)))


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> float:
    """Optimality gap (Agarwal et al., 2021): mean of ``max(gamma - x, 0)`` over all entries.

    Equal to ``gamma - mean(min(x, gamma))``: how far the scores fall short of ``gamma``, with no credit for
    exceeding it. Lower is better.

    :param scores: normalized score matrix ``(n_runs, n_tasks)`` (see :func:`normalize`).
    :param gamma: the target normalized score (1 = the top of the task's return range).
    """
    if not np.isfinite(gamma):
        raise ValueError(f"gamma must be finite, got {gamma}")
    return float(_optimality_gap_batch(_matrix(scores, "scores")[None], float(gamma))[0])


def aggregate(scores: np.ndarray) -> dict[str, float]:
    """The four aggregate metrics of Agarwal et al. (2021): ``mean``, ``median``, ``iqm``, ``optimality_gap``.

    :param scores: normalized score matrix ``(n_runs, n_tasks)`` (the optimality gap uses ``gamma = 1``).
    """
    scores = _matrix(scores, "scores")
    return {"mean": mean(scores), "median": median(scores), "iqm": iqm(scores),
            "optimality_gap": optimality_gap(scores)}


# ---------------------------------------------------------------------------------------------------------
# Stratified bootstrap
# ---------------------------------------------------------------------------------------------------------

# Vectorized versions of the public statistics, used by the bootstrap instead of a loop over resamples.
_BATCHED: dict[Callable[..., float], Callable[[np.ndarray], np.ndarray]] = {
    iqm: _iqm_batch,
    mean: _mean_batch,
    median: _median_batch,
    optimality_gap: _optimality_gap_batch,
}


def _bootstrap(samples: Sequence[np.ndarray], batched: Callable[..., np.ndarray], resamples: int, seed: int,
               cost: int, by_run: bool = False) -> np.ndarray:
    """``batched`` applied to ``resamples`` stratified bootstrap resamples of every matrix in ``samples``.

    Each matrix is resampled independently: within each task (column), ``n_runs`` rows drawn with
    replacement (``rliable``'s ``StratifiedBootstrap``; several samples = ``StratifiedIndependentBootstrap``).
    ``batched`` takes one stack ``(count, n_runs, n_tasks)`` per sample and returns ``count`` results along
    axis 0. ``cost`` is the number of elements one resample needs; it sets the chunk size (memory bound).
    With ``by_run`` whole rows are drawn instead (a run keeps its scores on every task together).
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // max(cost, 1))
    results = []
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        stacks = []
        for sample in samples:
            if by_run:
                stacks.append(sample[rng.integers(0, sample.shape[0], size=(count, sample.shape[0]))])
            else:
                rows = rng.integers(0, sample.shape[0], size=(count, *sample.shape))
                stacks.append(sample[rows, np.arange(sample.shape[1])])
        results.append(np.asarray(batched(*stacks), dtype=float))
    return np.concatenate(results, axis=0)


def _percentile_interval(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha], axis=0)
    return lo, hi


def stratified_bootstrap_ci(scores: np.ndarray, statistic: Callable[[np.ndarray], float], level: float = 0.95,
                            resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile confidence interval of ``statistic(scores)`` by the stratified bootstrap (Agarwal et al.,
    2021): runs are resampled with replacement independently within each task (column).

    Deterministic for a given ``seed``. :func:`iqm`, :func:`mean`, :func:`median` and :func:`optimality_gap`
    are evaluated on all resamples at once; any other callable is called once per resample (same draws).

    :param scores: score matrix ``(n_runs, n_tasks)``.
    :param statistic: maps a ``(n_runs, n_tasks)`` matrix to a number, e.g. :func:`iqm`.
    :param level: confidence level in (0, 1).
    :param resamples: number of bootstrap resamples (>= 1).
    :param seed: seed of the resampling.
    """
    scores = _matrix(scores, "scores")
    level, resamples = _check_level(level), _check_resamples(resamples)
    batched = next((fast for public, fast in _BATCHED.items() if statistic is public), None)
    if batched is None:
        def batched(stack: np.ndarray) -> np.ndarray:
            return np.array([float(statistic(matrix)) for matrix in stack])
    values = _bootstrap([scores], batched, resamples, seed, cost=scores.size)
    lo, hi = _percentile_interval(values, level)
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------------------
# Probability of improvement
# ---------------------------------------------------------------------------------------------------------

def _pair_matrices(scores_x: np.ndarray, scores_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _matrix(scores_x, "scores_x"), _matrix(scores_y, "scores_y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"scores_x and scores_y must have the same number of tasks (columns), "
                         f"got {x.shape[1]} and {y.shape[1]}")
    return x, y


def _improvement_batch(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) for stacks ``x`` ``(count, n, tasks)`` and ``y`` ``(count, m, tasks)``: ``count`` results."""
    xi, yj = x[:, :, None, :], y[:, None, :, :]
    per_task = ((xi > yj) + 0.5 * (xi == yj)).mean(axis=(1, 2))
    return per_task.mean(axis=1)


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """Probability of improvement P(X > Y) (Agarwal et al., 2021), averaged over tasks.

    Per task: the fraction of run pairs ``(i, j)`` with ``x_i > y_j``, ties counting 1/2 (the Mann-Whitney
    U statistic divided by ``n * m``).

    :param scores_x: score matrix ``(n, n_tasks)`` of algorithm X.
    :param scores_y: score matrix ``(m, n_tasks)`` of algorithm Y (``m`` may differ from ``n``).
    """
    x, y = _pair_matrices(scores_x, scores_y)
    return float(_improvement_batch(x[None], y[None])[0])


def probability_of_improvement_ci(scores_x: np.ndarray, scores_y: np.ndarray, level: float = 0.95,
                                  resamples: int = 2000, seed: int = 0, by: str = "task") -> tuple[float, float]:
    """Percentile CI of :func:`probability_of_improvement` (Agarwal et al., 2021), with ``scores_x`` and
    ``scores_y`` resampled independently, each by the stratified bootstrap.

    :param scores_x: score matrix ``(n, n_tasks)`` of algorithm X.
    :param scores_y: score matrix ``(m, n_tasks)`` of algorithm Y.
    :param level: confidence level in (0, 1).
    :param resamples: number of bootstrap resamples (>= 1).
    :param seed: seed of the resampling.
    :param by: ``"task"`` (the stratified bootstrap, runs resampled within each task, as rliable) or ``"run"``
        (whole runs resampled, keeping each run's scores on all tasks together: the honest interval when the
        tasks are measurements of the same runs, such as the levels of one perturbation, which are correlated).
    """
    x, y = _pair_matrices(scores_x, scores_y)
    level, resamples = _check_level(level), _check_resamples(resamples)
    if by not in ("task", "run"):
        raise ValueError(f"by must be 'task' or 'run', got by={by!r}")
    cost = x.shape[0] * y.shape[0] * x.shape[1] + x.size + y.size
    values = _bootstrap([x, y], _improvement_batch, resamples, seed, cost=cost, by_run=by == "run")
    lo, hi = _percentile_interval(values, level)
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------------------
# Performance profiles
# ---------------------------------------------------------------------------------------------------------

def _profile_batch(batch: np.ndarray, taus: np.ndarray) -> np.ndarray:
    flat = batch.reshape(batch.shape[0], -1)
    return (flat[:, :, None] > taus).mean(axis=1)


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Performance profile (run-score distribution, Agarwal et al., 2021): for each threshold ``tau``, the
    fraction of all (run, task) entries with score ``> tau``.

    :param scores: score matrix ``(n_runs, n_tasks)``, usually normalized.
    :param taus: 1-D array of thresholds, in the units of ``scores``.
    :return: array of the shape of ``taus``, non-increasing in ``tau``.
    """
    scores, taus = _matrix(scores, "scores"), _taus(taus)
    return _profile_batch(scores[None], taus)[0]


def performance_profile_ci(scores: np.ndarray, taus: np.ndarray, level: float = 0.95, resamples: int = 2000,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile CIs of :func:`performance_profile` by the stratified bootstrap (Agarwal et al.,
    2021).

    :param scores: score matrix ``(n_runs, n_tasks)``.
    :param taus: 1-D array of thresholds.
    :param level: confidence level in (0, 1).
    :param resamples: number of bootstrap resamples (>= 1).
    :param seed: seed of the resampling.
    :return: ``(lo, hi)``, two arrays of the shape of ``taus``.
    """
    scores, taus = _matrix(scores, "scores"), _taus(taus)
    level, resamples = _check_level(level), _check_resamples(resamples)
    values = _bootstrap([scores], lambda stack: _profile_batch(stack, taus), resamples, seed,
                        cost=scores.size * (taus.size + 1))
    return _percentile_interval(values, level)


def plot_performance_profiles(profiles: Mapping[str, np.ndarray], path: str | Path,
                              taus: np.ndarray | None = None,
                              title: str = "Performance profiles (Agarwal et al., 2021)", level: float = 0.95,
                              resamples: int = 2000, seed: int = 0) -> Path:
    """Plot the performance profile of each agent with a stratified-bootstrap CI band; write a PNG atomically.

    :param profiles: ``{agent label: normalized score matrix (n_runs, n_tasks)}`` (see :func:`normalize`), one
        row per run (seed): the legend gives each agent's number of seeds, the colours are
        :func:`robustrl.experiments.plots.agent_palette`'s.
    :param path: output PNG path (the folder is created if needed).
    :param taus: thresholds on the x axis (default 101 points in [0, 1]).
    :param title: figure title; the CI level and resample count are appended.
    :param level: confidence level of the bands.
    :param resamples: bootstrap resamples per agent.
    :param seed: seed of the resampling.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend state, renders with Agg

    from robustrl.experiments.plots import agent_order, agent_palette, seeds_label

    if not profiles:
        raise ValueError("profiles is empty; need at least one agent")
    taus = np.linspace(0.0, 1.0, 101) if taus is None else np.sort(_taus(taus))
    level, resamples = _check_level(level), _check_resamples(resamples)
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for agent, colour in agent_palette(agent_order(profiles)).items():
        scores = _matrix(profiles[agent], f"profiles[{agent!r}]")
        lo, hi = performance_profile_ci(scores, taus, level, resamples, seed)
        ax.plot(taus, performance_profile(scores, taus), color=colour,
                label=seeds_label(agent, scores.shape[0]))
        ax.fill_between(taus, lo, hi, color=colour, alpha=0.2, lw=0)
    ax.set_xlabel("normalized return τ")
    ax.set_ylabel("fraction of runs with score > τ")
    if taus[-1] > taus[0]:
        ax.set_xlim(taus[0], taus[-1])
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{title}: {level:.0%} stratified bootstrap CIs ({resamples} resamples)")
    ax.legend()
    ax.grid(alpha=0.3)
    return atomic_write_png(path, fig, 130)
