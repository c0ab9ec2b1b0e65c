"""Robustness surfaces: greedy return over dense grids of each physical parameter and of pairs of them.

Every grid is one batched rollout on the vectorized CartPole (one sub-environment per (value, episode)),
so a 15-point curve with 10 episodes per point is a single 150-env rollout. Results are cached per run in
``surfaces.json``; plots show, per agent, the mean across seeds with a 95% bootstrap band (curves) or the
mean across seeds (pair heatmaps).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from robustrl.envs import NOMINAL_ID, NOMINAL_PARAMETERS
from robustrl.envs.cartpole import PHYSICAL_PARAMETERS, check_physical_parameters
from robustrl.experiments.evaluation import EVALUATION_SEED, greedy_policy, greedy_returns, mean_returns_over
from robustrl.experiments.io import atomic_write_json, read_cached, read_json
from robustrl.experiments.plots import PARAMETER_LABELS, save_figure
from robustrl.experiments.tables import agent_label, bootstrap_ci

__all__ = [
    "SURFACE_GRID",
    "SURFACE_PAIRS",
    "collect_surfaces",
    "plot_surface_curves",
    "plot_surface_pairs",
    "surface_run",
]

#: Dense grids around the nominal value of every CartPole parameter (nominal value included).
SURFACE_GRID: dict[str, list[float]] = {
    "masspole": [0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0],
    "length": [0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0],
    "gravity": [2.5, 5.0, 9.8, 12.5, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 60.0, 70.0, 80.0],
    "masscart": [0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0],
    "force_mag": [2.0, 3.0, 4.0, 5.0, 6.0, 7.5, 10.0, 12.5, 15.0, 20.0, 25.0, 30.0],
    "tau": [0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05, 0.06],
}
#: Pairs evaluated on the product of their grids (the three perturbations of the reward table).
SURFACE_PAIRS: list[list[str]] = [["masspole", "length"], ["masspole", "gravity"], ["length", "gravity"]]

_PAIR_POINTS = 8  # values per axis of a pair surface (sub-sampled from the 1-D grid)


def _pair_values(values: Sequence[float]) -> list[float]:
    if len(values) <= _PAIR_POINTS:
        return list(values)
    index = np.unique(np.linspace(0, len(values) - 1, _PAIR_POINTS).round().astype(int))
    return [values[i] for i in index]


def surface_run(
    run_dir: str | Path,
    grid: dict[str, list[float]] | None = None,
    pairs: Iterable[Sequence[str]] | None = None,
    episodes: int = 10,
    seed: int = EVALUATION_SEED,
    checkpoint: str = "best",
) -> dict[str, Any]:
    """Mean greedy return of one run's model over each 1-D grid and each pair grid; cached.

    :param grid: parameter -> values (default :data:`SURFACE_GRID`); the other parameters stay nominal.
    :param pairs: pairs of parameters of ``grid`` evaluated on the product of (up to 8 of) their values
        (default :data:`SURFACE_PAIRS` restricted to ``grid``).
    :param episodes: episodes per grid point, initial states from ``seed``.
    :returns: ``{"curves": {p: {"values", "mean_returns"}}, "pairs": {"p|q": {"x", "y", "mean_returns"}}}``
        (``mean_returns[i][j]`` at ``x[i]``, ``y[j]``), also saved as ``surfaces.json`` in the run.
    """
    from robustrl.experiments.training import load_run_model

    grid = dict(grid or SURFACE_GRID)
    for parameter, values in grid.items():
        if parameter not in PHYSICAL_PARAMETERS:
            raise ValueError(f"unknown CartPole parameter {parameter!r}; valid: {list(PHYSICAL_PARAMETERS)}")
        check_physical_parameters({parameter: values}, num_envs=len(values))
    if pairs is None:
        pairs = [p for p in SURFACE_PAIRS if p[0] in grid and p[1] in grid]
    pairs = [list(p) for p in pairs]
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1] or not all(p in grid for p in pair):
            raise ValueError(f"a pair must name two different parameters of the grid, got {pair!r}")
    run_dir = Path(run_dir)
    cache = run_dir / "surfaces.json"
    request = {"grid": grid, "pairs": pairs, "episodes": episodes, "seed": seed, "checkpoint": checkpoint}
    saved = read_cached(cache, request)
    if saved is not None:
        return saved
    policy = greedy_policy(load_run_model(run_dir, checkpoint))
    curves = {}
    for parameter, values in grid.items():
        curves[parameter] = {
            "values": list(values),
            "mean_returns": mean_returns_over(policy, parameter, values, episodes, seed).round(3).tolist(),
        }
    surfaces = {}
    for first, second in pairs:
        xs, ys = _pair_values(grid[first]), _pair_values(grid[second])
        points = np.array(list(itertools.product(xs, ys)), dtype=float)
        per_env = np.repeat(points, episodes, axis=0)
        returns = greedy_returns(
            policy, NOMINAL_ID, len(per_env), seed, **{first: per_env[:, 0], second: per_env[:, 1]}
        )
        means = returns.reshape(len(xs), len(ys), episodes).mean(2).round(3)
        surfaces[f"{first}|{second}"] = {"x": xs, "y": ys, "mean_returns": means.tolist()}
    result = {"run": run_dir.name, "request": request, "curves": curves, "pairs": surfaces}
    atomic_write_json(cache, result)
    return result


def collect_surfaces(run_dirs: Iterable[str | Path], label: str = "agent") -> dict[str, list[dict[str, Any]]]:
    """``surfaces.json`` of each run, grouped by agent label (``agent`` or ``agent-tag``)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        path = run_dir / "surfaces.json"
        if not path.is_file():
            continue
        meta = read_json(run_dir / "meta.json")
        name = agent_label(meta["agent"], meta.get("tag") if label == "agent-tag" else "")
        grouped.setdefault(name, []).append(read_json(path))
    return grouped


def plot_surface_curves(
    surfaces: dict[str, list[dict[str, Any]]],
    out_path: str | Path,
    title: str = "Return versus each physical parameter",
) -> Path:
    """One panel per parameter: mean return across seeds per agent, with a 95% bootstrap band."""
    if not surfaces:
        raise ValueError("no surfaces to plot (no run has surfaces.json)")
    order = list(SURFACE_GRID)
    parameters = sorted(
        next(iter(surfaces.values()))[0]["curves"], key=lambda p: order.index(p) if p in order else len(order)
    )
    cols = min(3, len(parameters))
    rows = -(-len(parameters) // cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, parameter in zip(axes.flat, parameters):
        for agent, runs in surfaces.items():
            values = runs[0]["curves"][parameter]["values"]
            matrix = np.array([run["curves"][parameter]["mean_returns"] for run in runs])
            mean = matrix.mean(0)
            bands = np.array([bootstrap_ci(matrix[:, i], resamples=2000) for i in range(matrix.shape[1])])
            ax.plot(values, mean, marker=".", label=f"{agent} (n={len(runs)})")
            ax.fill_between(values, bands[:, 0], bands[:, 1], alpha=0.2)
        ax.axvline(NOMINAL_PARAMETERS[parameter], color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ticks = values[:: max(1, len(values) // 5)]
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax.set_xlabel(PARAMETER_LABELS.get(parameter, parameter) + " (log scale; dotted: nominal)")
        ax.set_ylabel("greedy return")
        ax.set_ylim(0, 520)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(parameters) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{title}: mean across seeds, 95% bootstrap band")
    fig.tight_layout()
    return save_figure(fig, Path(out_path))


def plot_surface_pairs(surfaces: dict[str, list[dict[str, Any]]], out_path: str | Path) -> Path:
    """Heatmaps of mean return (across seeds) over each pair of parameters; a row per pair, a column per agent."""
    if not surfaces:
        raise ValueError("no surfaces to plot (no run has surfaces.json)")
    pairs = sorted(
        next(iter(surfaces.values()))[0]["pairs"],
        key=lambda p: SURFACE_PAIRS.index(p.split("|")) if p.split("|") in SURFACE_PAIRS else 99,
    )
    if not pairs:
        raise ValueError("the surfaces hold no pair grids")
    agents = list(surfaces)
    fig = Figure(figsize=(3.8 * len(agents), 3.3 * len(pairs)))
    axes = fig.subplots(len(pairs), len(agents), squeeze=False)
    image = None
    for row, pair in enumerate(pairs):
        first, second = pair.split("|")
        for col, agent in enumerate(agents):
            runs = surfaces[agent]
            data = runs[0]["pairs"][pair]
            mean = np.mean([run["pairs"][pair]["mean_returns"] for run in runs], axis=0)
            ax = axes[row, col]
            image = ax.imshow(mean.T, origin="lower", vmin=0, vmax=500, cmap="viridis", aspect="auto")
            ax.set_xticks(range(len(data["x"])), [f"{v:g}" for v in data["x"]], fontsize=7, rotation=45)
            ax.set_yticks(range(len(data["y"])), [f"{v:g}" for v in data["y"]], fontsize=7)
            ax.set_xlabel(PARAMETER_LABELS.get(first, first), fontsize=8)
            ax.set_ylabel(PARAMETER_LABELS.get(second, second), fontsize=8)
            ax.set_title(f"{agent} (n={len(runs)})", fontsize=9)
    fig.subplots_adjust(hspace=0.55, wspace=0.45)
    fig.colorbar(image, ax=axes, shrink=0.6, label="mean greedy return")
    fig.suptitle("Return over pairs of physical parameters (mean across seeds)")
    return save_figure(fig, Path(out_path))
