"""Plots of robustness surfaces: greedy return over dense grids of each physical parameter and of pairs of them.

The surfaces are computed and cached by :func:`robustrl.experiments.curves.surface_run` (re-exported here),
in the same per-run cache as the reward table's robustness curves. Every grid is one batched rollout on the
task's vectorized environment, so a 15-point curve with 10 episodes per point is a single 150-env rollout. The plots
show, per agent, the mean across seeds with a band of its 95 % bootstrap CI (curves, each agent in its colour
of :func:`robustrl.experiments.plots.agent_color`) or the mean across seeds (pair heatmaps).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from robustrl.experiments.curves import read_views, surface_run
from robustrl.experiments.plots import (
    BAND_NOTE,
    add_caption,
    agent_order,
    agent_palette,
    check_views,
    outside_note,
    save_figure,
    seed_band,
    seeds_label,
    set_return_limits,
)
from robustrl.experiments.records import read_meta
from robustrl.experiments.tables import agent_label
from robustrl.tasks import Task, get_task

__all__ = [
    "collect_surfaces",
    "plot_surface_curves",
    "plot_surface_pairs",
    "surface_run",
]


def collect_surfaces(run_dirs: Iterable[str | Path], label: str = "agent") -> dict[str, list[dict[str, Any]]]:
    """The cached surfaces (:func:`surface_run`) of each run, grouped by agent label (``agent`` or ``agent-tag``).

    A ``ValueError`` names the runs whose surfaces are not computed or were computed from other model files.
    """
    views, left_out = read_views(run_dirs, "surfaces")
    check_views(left_out, "surfaces", "robustrl surfaces")
    grouped: dict[str, list[dict[str, Any]]] = {}
    for run_dir, surfaces in views.items():
        meta = read_meta(run_dir)
        name = agent_label(meta["agent"], meta.get("tag") if label == "agent-tag" else "")
        grouped.setdefault(name, []).append(surfaces)
    return grouped


def plot_surface_curves(
    surfaces: dict[str, list[dict[str, Any]]],
    out_path: str | Path,
    title: str = "Return versus each physical parameter",
    task: Task | str | None = None,
) -> Path:
    """One panel per parameter: per agent, the mean return over seeds and a band of its 95 % bootstrap CI
    (:func:`~robustrl.experiments.plots.seed_band`, 2,000 resamples); ``title`` heads the figure. Saved as a
    PNG at ``out_path``. ``task`` (default :data:`robustrl.tasks.DEFAULT_TASK`) gives the labels, the nominal
    values and the return range."""
    if not surfaces:
        raise ValueError("no surfaces to plot (no run has cached surfaces; run robustrl surfaces first)")
    task = get_task(task)
    order = list(task.surface_grid)
    parameters = sorted(
        next(iter(surfaces.values()))[0]["curves"], key=lambda p: order.index(p) if p in order else len(order)
    )
    cols = min(3, len(parameters))
    rows = -(-len(parameters) // cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    colours = agent_palette(agent_order(surfaces))
    outside = False
    for ax, parameter in zip(axes.flat, parameters):
        seed_returns = []
        for agent, colour in colours.items():
            runs = surfaces[agent]
            values = runs[0]["curves"][parameter]["values"]
            matrix = np.array([run["curves"][parameter]["mean_returns"] for run in runs])
            mean, low, high = seed_band(matrix, resamples=2000)
            ax.plot(values, mean, marker=".", color=colour, label=seeds_label(agent, len(runs)))
            ax.fill_between(values, low, high, color=colour, alpha=0.2, lw=0)
            seed_returns.append(matrix)
        ax.axvline(task.nominal_params()[parameter], color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ticks = values[:: max(1, len(values) // 5)]
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax.set_xlabel(task.parameter_labels.get(parameter, parameter) + " (log scale; dotted: nominal)")
        ax.set_ylabel("greedy return")
        low, high = task.return_range
        outside = set_return_limits(ax, *seed_returns, low=low, high=high) or outside
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(parameters) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    add_caption(fig, BAND_NOTE + outside_note(outside, task))
    return save_figure(fig, Path(out_path), dpi=90)  # six panels of seven agents' bands: under 300 KB


def plot_surface_pairs(surfaces: dict[str, list[dict[str, Any]]], out_path: str | Path,
                       task: Task | str | None = None) -> Path:
    """Heatmaps of mean return (across seeds) over each pair of parameters; a row per pair, a column per agent
    (``task``, default :data:`robustrl.tasks.DEFAULT_TASK`, gives the labels and the colour range)."""
    if not surfaces:
        raise ValueError("no surfaces to plot (no run has cached surfaces; run robustrl surfaces first)")
    task = get_task(task)
    known = ["|".join(pair) for pair in task.surface_pairs]
    pairs = sorted(next(iter(surfaces.values()))[0]["pairs"], key=lambda p: known.index(p) if p in known else 99)
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
            image = ax.imshow(mean.T, origin="lower", vmin=task.return_range[0], vmax=task.return_range[1],
                              cmap="viridis", aspect="auto")
            ax.set_xticks(range(len(data["x"])), [f"{v:g}" for v in data["x"]], fontsize=7, rotation=45)
            ax.set_yticks(range(len(data["y"])), [f"{v:g}" for v in data["y"]], fontsize=7)
            ax.set_xlabel(task.parameter_labels.get(first, first), fontsize=8)
            ax.set_ylabel(task.parameter_labels.get(second, second), fontsize=8)
            ax.set_title(seeds_label(agent, len(runs)), fontsize=9)
    fig.subplots_adjust(hspace=0.55, wspace=0.45)
    fig.colorbar(image, ax=axes, shrink=0.6, label="mean greedy return")
    fig.suptitle("Return over pairs of physical parameters (mean across seeds)")
    return save_figure(fig, Path(out_path), dpi=90)
