"""Plots of the robustness suite: return against the level of each channel, and the uncertainty sets' summaries.

Bands and error bars are 95 % percentile bootstrap CIs of the mean across seeds (so they stay within the
range of possible returns); one colour per agent, the same in both figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from robustrl.experiments.plots import save_figure
from robustrl.experiments.set_stats import set_statistics
from robustrl.experiments.suite import CHANNELS
from robustrl.experiments.suite_table import SET_STATISTICS, SuiteResults
from robustrl.experiments.tables import bootstrap_ci

__all__ = ["agent_colours", "plot_suite_curves", "plot_suite_sets"]

_LEVEL_LABELS = {"eps": "eps (units of state_scale)", "p": "probability of a random action"}


def agent_colours(agents: list[str], baseline: str = "regular") -> dict[str, str]:
    """One matplotlib colour per agent, the baseline first (``C0``), the others in sorted order."""
    order = sorted(agents, key=lambda a: (a != baseline, a))
    return {agent: f"C{i % 10}" for i, agent in enumerate(order)}


def plot_suite_curves(grouped: SuiteResults, suite: Any, path: str | Path, checkpoint: str = "best") -> Path:
    """Mean return against the level of every channel of ``suite`` (one panel each), per agent, with 95 %
    bootstrap bands across seeds."""
    channels = list(suite.channels)
    if not channels:
        raise ValueError("the suite has no channel with levels to plot")
    colours = agent_colours(list(grouped))
    columns = min(3, len(channels))
    rows = -(-len(channels) // columns)
    fig = Figure(figsize=(4.6 * columns, 3.9 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, sharey=True, squeeze=False)).ravel()
    for ax, channel in zip(axes, channels):
        levels = suite.channels[channel]
        for agent, colour in colours.items():
            data = grouped[agent].get(checkpoint, {}).get("channels", {}).get(channel)
            if data is None:
                continue
            mean = data.mean(axis=0)
            low, high = np.array([bootstrap_ci(data[:, k]) for k in range(len(levels))]).T
            ax.plot(levels, mean, marker="o", ms=3, color=colour, label=f"{agent} (n={len(data)})")
            ax.fill_between(levels, low, high, color=colour, alpha=0.2, lw=0)
        ax.set_title(f"{channel}: {CHANNELS[channel].description}", fontsize=9)
        ax.set_xlabel(_LEVEL_LABELS[CHANNELS[channel].level])
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(levels, [f"{v:g}" for v in levels])
        ax.set_ylim(-10, 510)
        ax.grid(alpha=0.3)
    for ax in axes[len(channels):]:
        ax.set_visible(False)
    for ax in axes[::columns]:
        ax.set_ylabel(f"greedy return ({checkpoint} checkpoint)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Robustness suite {suite.name}: mean across seeds, band = 95% bootstrap CI of the mean "
                 f"({suite.episodes} episodes per level and seed)")
    return save_figure(fig, Path(path), dpi=90)  # six panels of overlapping bands: a smaller file, still sharp


def plot_suite_sets(grouped: SuiteResults, suite: Any, path: str | Path, checkpoint: str = "best") -> Path:
    """Bars of the mean, worst case and CVaR 10 % over each uncertainty set of ``suite``, per agent, with
    95 % bootstrap CIs over seeds."""
    if not suite.sets:
        raise ValueError("the suite has no uncertainty set to plot")
    colours = agent_colours(list(grouped))
    fig = Figure(figsize=(5.5 * len(suite.sets), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(suite.sets), sharey=True, squeeze=False)).ravel()
    width = 0.8 / max(1, len(colours))
    for ax, uncertainty_set in zip(axes, suite.sets):
        for i, (agent, colour) in enumerate(colours.items()):
            matrix = grouped[agent].get(checkpoint, {}).get("sets", {}).get(uncertainty_set.name)
            if matrix is None:
                continue
            stats = set_statistics(matrix)
            values = [stats[key] for key in SET_STATISTICS.values()]
            x = np.arange(len(values)) + (i - (len(colours) - 1) / 2) * width
            heights = np.array([v.value for v in values])
            errors = np.array([[v.value - v.ci_low for v in values], [v.ci_high - v.value for v in values]])
            ax.bar(x, heights, width, color=colour, label=f"{agent} (n={len(matrix)})")
            ax.errorbar(x, heights, yerr=np.clip(errors, 0, None), fmt="none", ecolor="k", lw=1, capsize=2)
        ax.set_xticks(range(len(SET_STATISTICS)), ["mean", "worst case", "CVaR 10%"])
        settings = len(uncertainty_set.settings())
        ax.set_title(f"set {uncertainty_set.name} ({settings} settings: {', '.join(uncertainty_set.parameters)})",
                     fontsize=9)
        ax.set_ylim(0, 510)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel(f"greedy return ({checkpoint} checkpoint)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Uncertainty sets: statistic of the seed-averaged return over the settings, 95% bootstrap CI over seeds")
    return save_figure(fig, Path(path))
