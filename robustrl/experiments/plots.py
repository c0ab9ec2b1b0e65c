"""Training curves and robustness curves from saved runs (matplotlib), and what every plot of agents shares.

Figures are built as bare :class:`matplotlib.figure.Figure` objects, not through pyplot: saving a PNG then
renders with Agg whatever the session's backend is, and the user's backend choice and pyplot's list of
open figures are left untouched.

Shared by every plot of agents in :mod:`robustrl.experiments`: one colour per agent (:func:`agent_color`,
:func:`agent_palette`), legend entries with the number of seeds (:func:`seeds_label`), the band of a curve
over seeds (:func:`seed_band`: the 95 % percentile bootstrap CI of the mean over seeds, which lies within
the seeds' values at each point and so within the task's return range, with no clipping), y limits
that show every value even outside the task's return range (:func:`set_return_limits`) and a caption (:func:`add_caption`).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import offset_copy

from robustrl.experiments.curves import NOT_COMPUTED, read_views
from robustrl.experiments.io import atomic_write_png
from robustrl.experiments.records import complete_runs, read_meta
from robustrl.experiments.tables import BOOTSTRAP_RESAMPLES, agent_label, bootstrap_ci_columns
from robustrl.experiments.run_files import runs_task
from robustrl.tasks import Task, get_task

__all__ = [
    "AGENT_COLORS",
    "BAND_NOTE",
    "FALLBACK_COLORS",
    "add_caption",
    "agent_color",
    "agent_order",
    "agent_palette",
    "check_views",
    "outside_note",
    "plot_robustness_curves",
    "plot_training_curves",
    "robustness_curves_figure",
    "save_figure",
    "seed_band",
    "seeds_label",
    "set_return_limits",
    "training_curves_figure",
]

#: The colour of each known agent, the same in every plot (matplotlib's tab10, baseline first).
AGENT_COLORS: dict[str, str] = {
    "regular": "#1f77b4",
    "domain-randomization": "#ff7f0e",
    "robust": "#2ca02c",
    "robust-hard": "#d62728",
    "robust-mean": "#9467bd",
    "robust-pgd": "#8c564b",
    "sa-dqn": "#e377c2",
    "robust-sa": "#000000",
}
#: Colours of other labels (sweep settings such as ``robust-eta0.1``), none of them a known agent's.
FALLBACK_COLORS: tuple[str, ...] = (
    "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31",
    "#843c39", "#7b4173", "#e7ba52", "#6b6ecf", "#b5cf6b", "#ce6dbd",
)
#: What the lines and bands of curves over seeds are, for captions.
BAND_NOTE = "line: mean over seeds; band: 95 % bootstrap CI of the mean over seeds"



def _meta_label(meta: dict) -> str:
    return agent_label(meta["agent"], meta.get("tag"))


def save_figure(fig: Figure, path: str | Path, dpi: int = 130) -> Path:
    """Save ``fig`` as a palette PNG (``dpi``, tight box) to ``path`` atomically
    (:func:`~robustrl.experiments.io.atomic_write_png`); returns the path."""
    return atomic_write_png(path, fig, dpi)


def agent_color(label: str) -> str:
    """The colour of agent ``label`` in every plot: fixed for the known agents (:data:`AGENT_COLORS`), and
    for any other label one of :data:`FALLBACK_COLORS` chosen by a checksum of the label (the same in every
    session and on every machine)."""
    if label in AGENT_COLORS:
        return AGENT_COLORS[label]
    return FALLBACK_COLORS[zlib.crc32(label.encode()) % len(FALLBACK_COLORS)]


def agent_order(labels: Iterable[str], baseline: str = "regular") -> list[str]:
    """The labels in the order of every legend: the baseline first, then the others sorted (each once)."""
    return sorted(dict.fromkeys(labels), key=lambda label: (label != baseline, label))


def agent_palette(labels: Iterable[str]) -> dict[str, str]:
    """``{label: colour}`` for the agents of one figure, in the order given: :func:`agent_color` of each,
    except that a label whose fallback colour is already taken in the figure gets the next free one of
    :data:`FALLBACK_COLORS` (labels are served in sorted order, so the result depends only on the set of
    labels). Known agents always keep their colour."""
    labels = list(dict.fromkeys(labels))
    colours = {label: AGENT_COLORS[label] for label in labels if label in AGENT_COLORS}
    for label in sorted(set(labels) - set(colours)):
        start = FALLBACK_COLORS.index(agent_color(label))
        free = [FALLBACK_COLORS[(start + k) % len(FALLBACK_COLORS)] for k in range(len(FALLBACK_COLORS))
                if FALLBACK_COLORS[(start + k) % len(FALLBACK_COLORS)] not in colours.values()]
        colours[label] = free[0] if free else agent_color(label)
    return {label: colours[label] for label in labels}


def seeds_label(agent: str, seeds: int) -> str:
    """The legend entry of an agent: ``"robust (10 seeds)"`` (``"(1 seed)"`` for one)."""
    return f"{agent} ({seeds} seed{'' if seeds == 1 else 's'})"


def seed_band(returns: np.ndarray, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, low, high)`` at each x of ``returns`` ``(n_seeds, n_points)``: the mean over seeds and its
    percentile bootstrap CI (:func:`~robustrl.experiments.tables.bootstrap_ci_columns`, seeded: the same
    band on every call). The band lies within the seeds' [min, max] at each point, so it needs no clipping."""
    returns = np.asarray(returns, dtype=float)
    if returns.ndim != 2 or returns.shape[0] == 0:
        raise ValueError(f"seed_band needs a (n_seeds >= 1, n_points) array, got shape {returns.shape}")
    low, high = bootstrap_ci_columns(returns, level, resamples, seed)
    return returns.mean(axis=0), low, high


def set_return_limits(ax: Axes, *values: np.ndarray, low: float | None = None, high: float | None = None) -> bool:
    """Set the y limits of ``ax`` to [``low``, ``high``] (default: the default task's return range) with a small
    margin, widened to every finite value of ``values`` so that none is hidden (nothing is clipped); returns
    whether any value lies outside [``low``, ``high``] by more than rounding."""
    default_low, default_high = get_task().return_range
    low = default_low if low is None else low
    high = default_high if high is None else high
    finite = np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in values] + [np.array([low, high])])
    finite = finite[np.isfinite(finite)]
    bottom, top = float(finite.min()), float(finite.max())
    pad = 0.02 * (top - bottom)
    ax.set_ylim(bottom - pad, top + pad)
    rounding = 1e-9 * (high - low)
    return bottom < low - rounding or top > high + rounding


def add_caption(fig: Figure, text: str) -> None:
    """Write ``text`` as a caption under the figure (kept by :func:`save_figure`'s tight bounding box)."""
    below = offset_copy(fig.transFigure, fig=fig, y=-6, units="points")
    fig.text(0.5, 0.0, text, ha="center", va="top", fontsize=8, color="0.25", transform=below)


def outside_note(outside: bool, task: Task | None = None) -> str:
    """The caption's last line when values lie outside the task's return range (``outside``, as returned by
    :func:`set_return_limits`; default task: :data:`robustrl.tasks.DEFAULT_TASK`), else ``""``."""
    task = get_task(task)
    low, high = task.return_range
    return (f"\nSome values lie outside [{low:g}, {high:g}], the range of {task.title} returns: "
            "nothing is clipped, the y axis is widened to show them." if outside else "")


def check_views(left_out: dict[str, str], what: str, command: str) -> None:
    """Refuse (``ValueError``) to plot ``what`` if runs are left out (``{run name: why}`` of
    :func:`~robustrl.experiments.curves.read_views`), naming each with the reason and ``command``."""
    if left_out:
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(left_out.items()))
        raise ValueError(f"{what} of {len(left_out)} run(s) cannot be used: {listed} (run `{command}`)")


def training_curves_figure(runs_dir: str | Path) -> Figure:
    """The figure of :func:`plot_training_curves` (not saved): nominal greedy return versus training steps,
    per agent the mean over seeds and its 95 % bootstrap CI (:func:`seed_band`)."""
    curves: dict[str, list[np.ndarray]] = {}
    task = runs_task(complete_runs(runs_dir))
    for run_dir in complete_runs(runs_dir):
        data = np.loadtxt(run_dir / "curve.csv", delimiter=",", skiprows=1, ndmin=2)
        curves.setdefault(_meta_label(read_meta(run_dir)), []).append(data)
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    seed_returns = []
    for agent, colour in agent_palette(agent_order(curves)).items():
        runs = curves[agent]
        length = min(len(run) for run in runs)
        steps = runs[0][:length, 0]
        returns = np.stack([run[:length, 1] for run in runs])
        mean, low, high = seed_band(returns)
        ax.plot(steps, mean, color=colour, label=seeds_label(agent, len(runs)))
        ax.fill_between(steps, low, high, color=colour, alpha=0.2, lw=0)
        seed_returns.append(returns)
    outside = set_return_limits(ax, *seed_returns, low=task.return_range[0], high=task.return_range[1])
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"greedy return, nominal {task.title}")
    ax.set_title(f"Training curves: greedy return on nominal {task.title} during training")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    add_caption(fig, BAND_NOTE + outside_note(outside, task))
    return fig


def plot_training_curves(runs_dir: str | Path, out_path: str | Path) -> Path:
    """Nominal greedy return versus training steps, per agent: the mean over seeds and a band of the 95 %
    bootstrap CI of that mean (:func:`training_curves_figure`), saved as a PNG at ``out_path``."""
    return save_figure(training_curves_figure(runs_dir), Path(out_path))


def robustness_curves_figure(runs_dir: str | Path) -> Figure:
    """The figure of :func:`plot_robustness_curves` (not saved): return versus each parameter of the
    robustness grid, per agent the mean over seeds and its 95 % bootstrap CI (:func:`seed_band`).

    Every complete run under ``runs_dir`` must have current robustness curves: a ``ValueError`` names the
    runs whose curves are not computed or were computed from other model files (``check_views``).
    """
    views, left_out = read_views(complete_runs(runs_dir), "robustness")
    if not views and set(left_out.values()) == {NOT_COMPUTED}:
        raise ValueError(f"no robustness evaluations under {runs_dir}; run `robustrl evaluate --robustness` first")
    check_views(left_out, "robustness curves", "robustrl evaluate --robustness")
    by_agent: dict[str, list[dict]] = {}
    grid: dict[str, list[float]] = {}
    checkpoint = "best"
    for run_dir, result in views.items():
        grid, checkpoint = result["request"]["grid"], result["request"].get("checkpoint", checkpoint)
        by_agent.setdefault(_meta_label(read_meta(run_dir)), []).append(result["mean_returns"])
    task = runs_task(views)
    order = list(task.curve_grid)
    grid = {p: grid[p] for p in sorted(grid, key=lambda p: (order.index(p) if p in order else len(order), p))}
    colours = agent_palette(agent_order(by_agent))
    fig = Figure(figsize=(5 * len(grid), 4))
    axes = np.atleast_1d(fig.subplots(1, len(grid), sharey=True))
    seed_returns = []
    for ax, (parameter, values) in zip(axes, grid.items()):
        for agent, colour in colours.items():
            results = by_agent[agent]
            returns = np.array([r[parameter] for r in results])
            mean, low, high = seed_band(returns)
            ax.plot(values, mean, marker="o", ms=3, color=colour, label=seeds_label(agent, len(results)))
            ax.fill_between(values, low, high, color=colour, alpha=0.2, lw=0)
            seed_returns.append(returns)
        ax.axvline(task.nominal_params()[parameter], color="k", ls=":", lw=1)
        for change in task.variants.values():
            if parameter in change:
                ax.axvline(change[parameter], color="0.35", ls="--", lw=1)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(values[::2], [f"{v:g}" for v in values[::2]])
        ax.set_xlabel(task.parameter_labels.get(parameter, parameter) + " (log scale)")
        ax.grid(alpha=0.3)
    outside = set_return_limits(axes[0], *seed_returns, low=task.return_range[0], high=task.return_range[1])
    axes[0].set_ylabel(f"greedy return ({checkpoint} checkpoint)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Robustness curves: greedy return versus the physical parameters of {task.title}")
    add_caption(fig, BAND_NOTE + "; dotted: nominal value; dashed: the registered variant's value"
                + outside_note(outside, task))
    return fig


def plot_robustness_curves(runs_dir: str | Path, out_path: str | Path) -> Path:
    """Return versus each parameter of the task's curve grid, per agent: the mean over seeds and a band of the
    95 % bootstrap CI of that mean (:func:`robustness_curves_figure`), saved as a PNG at ``out_path``.

    Every complete run under ``runs_dir`` must have current robustness curves: a ``ValueError`` names the
    runs whose curves are not computed or were computed from other model files (``check_views``).
    """
    return save_figure(robustness_curves_figure(runs_dir), Path(out_path))
