"""Plots of the robustness suite: return against the level of each channel, and the uncertainty sets' summaries.

Bands are 95 % percentile bootstrap CIs of the mean across seeds (so they stay within the range of possible
returns, with no clipping), error bars 95 % bootstrap CIs over seeds of each set statistic; every agent has
its colour of :func:`robustrl.experiments.plots.agent_color`, the same in these and the project's other plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from robustrl.experiments.plots import (
    BAND_NOTE,
    add_caption,
    agent_order,
    agent_palette,
    outside_note,
    save_figure,
    seed_band,
    seeds_label,
    set_return_limits,
)
from robustrl.experiments.set_stats import set_statistics
from robustrl.experiments.suite import CHANNELS
from robustrl.experiments.suite_table import SET_STATISTICS, SuiteResults
from robustrl.tasks import Task, get_task

__all__ = ["agent_colours", "plot_suite_curves", "plot_suite_sets"]

_LEVEL_LABELS = {"eps": "eps (units of state_scale)", "p": "probability of a random action",
                 "std": "std (units of the action half-width)"}


def agent_colours(agents: list[str], baseline: str = "regular") -> dict[str, str]:
    """One matplotlib colour per agent (:func:`~robustrl.experiments.plots.agent_palette`: the same colour as
    in every other plot), ordered with the baseline first and the others sorted (the order of the legend
    and of the bars)."""
    return agent_palette(agent_order(agents, baseline))


def plot_suite_curves(grouped: SuiteResults, suite: Any, path: str | Path, checkpoint: str = "best",
                      task: Task | str | None = None) -> Path:
    """Mean return against the level of every channel of ``suite`` (one panel each), per agent, with a band
    of the 95 % bootstrap CI of the mean over seeds (:func:`~robustrl.experiments.plots.seed_band`); saved
    as a PNG at ``path``. ``task`` (default :data:`robustrl.tasks.DEFAULT_TASK`) gives the return range."""
    task = get_task(task)
    channels = list(suite.channels)
    if not channels:
        raise ValueError("the suite has no channel with levels to plot")
    colours = agent_colours(list(grouped))
    columns = min(3, len(channels))
    rows = -(-len(channels) // columns)
    fig = Figure(figsize=(4.6 * columns, 3.9 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, sharey=True, squeeze=False)).ravel()
    seed_returns = []
    for ax, channel in zip(axes, channels):
        levels = suite.channels[channel]
        for agent, colour in colours.items():
            data = grouped[agent].get(checkpoint, {}).get("channels", {}).get(channel)
            if data is None:
                continue
            mean, low, high = seed_band(data)
            ax.plot(levels, mean, marker="o", ms=3, color=colour, label=seeds_label(agent, len(data)))
            ax.fill_between(levels, low, high, color=colour, alpha=0.2, lw=0)
            seed_returns.append(data)
        ax.set_title(f"{channel}: {CHANNELS[channel].description}", fontsize=9)
        ax.set_xlabel(_LEVEL_LABELS[CHANNELS[channel].level])
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(levels, [f"{v:g}" for v in levels])
        ax.grid(alpha=0.3)
    outside = set_return_limits(axes[0], *seed_returns, low=task.return_range[0], high=task.return_range[1])
    for ax in axes[len(channels):]:
        ax.set_visible(False)
    for ax in axes[::columns]:
        ax.set_ylabel(f"greedy return ({checkpoint} checkpoint)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Robustness suite {suite.name}: greedy return against the level of each channel")
    add_caption(fig, f"{BAND_NOTE} ({suite.episodes} episodes per level and seed)" + outside_note(outside, task))
    return save_figure(fig, Path(path), dpi=80)  # six panels of seven agents' bands: a file under 300 KB, still readable


def plot_suite_sets(grouped: SuiteResults, suite: Any, path: str | Path, checkpoint: str = "best",
                    task: Task | str | None = None) -> Path:
    """Bars of the mean, worst case and CVaR 10 % over each uncertainty set of ``suite``, per agent, with
    their 95 % bootstrap CIs over seeds as error bars (drawn from the interval's ends as they are, even if
    it does not contain the estimate); saved as a PNG at ``path``. ``task`` (default
    :data:`robustrl.tasks.DEFAULT_TASK`) gives the return range."""
    task = get_task(task)
    if not suite.sets:
        raise ValueError("the suite has no uncertainty set to plot")
    colours = agent_colours(list(grouped))
    fig = Figure(figsize=(5.5 * len(suite.sets), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(suite.sets), sharey=True, squeeze=False)).ravel()
    width = 0.8 / max(1, len(colours))
    drawn: list[np.ndarray] = []
    for ax, uncertainty_set in zip(axes, suite.sets):
        for i, (agent, colour) in enumerate(colours.items()):
            matrix = grouped[agent].get(checkpoint, {}).get("sets", {}).get(uncertainty_set.name)
            if matrix is None:
                continue
            stats = set_statistics(matrix)
            values = [stats[key] for key in SET_STATISTICS.values()]
            x = np.arange(len(values)) + (i - (len(colours) - 1) / 2) * width
            heights = np.array([v.value for v in values])
            lows, highs = np.array([v.ci_low for v in values]), np.array([v.ci_high for v in values])
            ax.bar(x, heights, width, color=colour, label=seeds_label(agent, len(matrix)))
            # Centred on the interval, so that its ends are drawn as they are (yerr cannot be negative).
            ax.errorbar(x, (lows + highs) / 2, yerr=(highs - lows) / 2, fmt="none", ecolor="k", lw=1,
                        capsize=2)
            drawn += [heights, lows, highs]
        ax.set_xticks(range(len(SET_STATISTICS)), ["mean", "worst case", "CVaR 10%"])
        settings = len(uncertainty_set.settings())
        ax.set_title(f"set {uncertainty_set.name} ({settings} settings: {', '.join(uncertainty_set.parameters)})",
                     fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    outside = set_return_limits(axes[0], *drawn, low=task.return_range[0], high=task.return_range[1])
    axes[0].set_ylabel(f"greedy return ({checkpoint} checkpoint)")
    axes[-1].legend(fontsize=8, loc="upper right")  # the last panel's worst-case bars are low: room for it
    fig.suptitle("Uncertainty sets: mean, worst case and CVaR 10 % over the settings of the seed-averaged "
                 "return")
    add_caption(fig, "bar: the statistic over the settings of the mean over seeds; error bar: its 95 % "
                     "percentile bootstrap CI over seeds (whole seeds resampled; for the worst case and CVaR it "
                     "may lie below the bar)" + outside_note(outside, task))
    return save_figure(fig, Path(path))
