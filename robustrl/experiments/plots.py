"""Training curves and robustness curves from saved runs (matplotlib).

Figures are built as bare :class:`matplotlib.figure.Figure` objects, not through pyplot: saving a PNG then
renders with Agg whatever the session's backend is, and the user's backend choice and pyplot's list of
open figures are left untouched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from robustrl.envs import NOMINAL_PARAMETERS, VARIANTS
from robustrl.experiments.curves import NOT_COMPUTED, read_views
from robustrl.experiments.io import atomic_write_with
from robustrl.experiments.records import complete_runs, read_meta
from robustrl.experiments.tables import agent_label

__all__ = ["PARAMETER_LABELS", "check_views", "plot_robustness_curves", "plot_training_curves", "save_figure"]

PARAMETER_LABELS = {
    "masspole": "pole mass (kg)",
    "length": "pole half-length (m)",
    "gravity": "gravity (m/s²)",
    "masscart": "cart mass (kg)",
    "force_mag": "push force (N)",
    "tau": "time step (s)",
}


def _meta_label(meta: dict) -> str:
    return agent_label(meta["agent"], meta.get("tag"))


def save_figure(fig: Figure, path: str | Path, dpi: int = 130) -> Path:
    """Save ``fig`` as a PNG (``dpi``, tight box) to ``path`` atomically; returns the path."""
    return atomic_write_with(path, lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight"))


def check_views(left_out: dict[str, str], what: str, command: str) -> None:
    """Refuse (``ValueError``) to plot ``what`` if runs are left out (``{run name: why}`` of
    :func:`~robustrl.experiments.curves.read_views`), naming each with the reason and ``command``."""
    if left_out:
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(left_out.items()))
        raise ValueError(f"{what} of {len(left_out)} run(s) cannot be used: {listed} (run `{command}`)")


def plot_training_curves(runs_dir: str | Path, out_path: str | Path) -> Path:
    """Nominal greedy return versus training steps: mean across seeds and a ±1 std band, per agent."""
    curves: dict[str, list[np.ndarray]] = {}
    for run_dir in complete_runs(runs_dir):
        data = np.loadtxt(run_dir / "curve.csv", delimiter=",", skiprows=1, ndmin=2)
        curves.setdefault(_meta_label(read_meta(run_dir)), []).append(data)
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for agent, runs in curves.items():
        length = min(len(run) for run in runs)
        steps = runs[0][:length, 0]
        returns = np.stack([run[:length, 1] for run in runs])
        mean, std = returns.mean(0), returns.std(0)
        ax.plot(steps, mean, label=f"{agent} (n={len(runs)})")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("greedy return, nominal CartPole")
    ax.set_ylim(0, 520)
    ax.set_title("Training curves: mean ± std across seeds")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, Path(out_path))


def plot_robustness_curves(runs_dir: str | Path, out_path: str | Path) -> Path:
    """Return versus pole mass, pole length and gravity, per agent: mean across seeds, ±1 std band.

    Every complete run under ``runs_dir`` must have current robustness curves: a ``ValueError`` names the
    runs whose curves are not computed or were computed from other model files (``check_views``).
    """
    views, left_out = read_views(complete_runs(runs_dir), "robustness")
    if not views and set(left_out.values()) == {NOT_COMPUTED}:
        raise ValueError(f"no robustness evaluations under {runs_dir}; run `robustrl evaluate --robustness` first")
    check_views(left_out, "robustness curves", "robustrl evaluate --robustness")
    by_agent: dict[str, list[dict]] = {}
    grid: dict[str, list[float]] = {}
    for run_dir, result in views.items():
        grid = result["request"]["grid"]
        by_agent.setdefault(_meta_label(read_meta(run_dir)), []).append(result["mean_returns"])
    fig = Figure(figsize=(5 * len(grid), 4))
    axes = fig.subplots(1, len(grid), sharey=True)
    for ax, (parameter, values) in zip(np.atleast_1d(axes), grid.items()):
        for agent, results in by_agent.items():
            returns = np.array([r[parameter] for r in results])
            mean, std = returns.mean(0), returns.std(0)
            ax.plot(values, mean, marker="o", ms=3, label=f"{agent} (n={len(results)})")
            ax.fill_between(values, mean - std, mean + std, alpha=0.2)
        ax.axvline(NOMINAL_PARAMETERS[parameter], color="k", ls=":", lw=1)
        for change in VARIANTS.values():
            if parameter in change:
                ax.axvline(change[parameter], color="r", ls="--", lw=1)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(values[::2], [f"{v:g}" for v in values[::2]])
        ax.set_xlabel(PARAMETER_LABELS.get(parameter, parameter) + " (log scale)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("greedy return (best checkpoint)")
    np.atleast_1d(axes)[0].legend()
    fig.suptitle("Robustness: dotted = nominal, dashed = registered variant; mean ± std across seeds")
    return save_figure(fig, Path(out_path))
