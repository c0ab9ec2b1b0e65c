"""What eta does: the robust agent's returns on the reward table's ids and on the robustness suite, against eta,
beside the spread of Q over the sampled ball that eta is measured against.

Runs are grouped by their eta; every other robust setting must be the same in all of them (a ``ValueError``
names the first setting that differs), so the study varies eta alone. Only the seeds given are used, the same for
every eta, so the comparison is paired by seed. The suite is the packaged default suite on the best checkpoint
(cached per run: a rerun recomputes nothing).

Writes ``OUT/eta_study.md`` (one row per eta: the four ids, the perturbed mean, suite channels, the spread of Q
over the ball early and late in training, and eta relative to it) and ``OUT/eta_study.png``.

Usage::

    python scripts/eta_study.py --runs results/runs runs/sweeps/eta-study/runs --seeds 0 1 2 3 4 --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from robustrl.envs import NOMINAL_ID, VARIANTS  # noqa: E402
from robustrl.experiments.io import atomic_write_text  # noqa: E402
from robustrl.experiments.plots import save_figure  # noqa: E402
from robustrl.experiments.records import complete_runs, read_evaluation, read_meta  # noqa: E402
from robustrl.experiments.set_stats import batched_statistic, seed_bootstrap_ci  # noqa: E402
from robustrl.experiments.suite import load_suite, suite_runs  # noqa: E402
from robustrl.experiments.tables import bootstrap_ci  # noqa: E402
from robustrl.experiments.training import TARGET_STATS  # noqa: E402

#: suite cells shown against eta: (label, channel, level index or set statistic)
SUITE_CELLS = (("PGD ℓ∞ ε=0.02", "pgd-linf", 1), ("PGD ℓ∞ ε=0.05", "pgd-linf", 2),
               ("noise ε=0.1", "noise-uniform", 3), ("random action p=0.2", "random-action", 2),
               ("moderate set: worst", "moderate", "worst"), ("moderate set: CVaR 10%", "moderate", "cvar"))
IDS = list(VARIANTS)


def eta_runs(folders: list[Path], seeds: list[int]) -> tuple[dict[float, list[Path]], dict[str, Any]]:
    """The robust runs of ``folders`` with a seed in ``seeds``, grouped by eta (sorted), all with the same other
    robust settings, and those settings."""
    groups: dict[float, dict[int, Path]] = {}
    reference: dict[str, Any] | None = None
    for folder in folders:
        for run in complete_runs(folder):
            meta = read_meta(run)
            kwargs = dict(meta["config"].get("robust_kwargs") or {})
            if meta["config"].get("algo") != "RobustDQN" or "eta" not in kwargs or meta["seed"] not in seeds:
                continue
            if kwargs.get("perturbation", "sample") != "sample":
                continue
            if not (run / "eval.json").exists():
                raise ValueError(f"{run} is not evaluated yet: robustrl evaluate --runs {folder}")
            eta = float(kwargs.pop("eta"))
            shared = kwargs
            others = {**kwargs, **{k: v for k, v in meta["config"].items() if k not in ("robust_kwargs", "agent")}}
            if reference is None:
                reference, first = others, run
            for key in sorted(set(reference) | set(others)):
                if reference.get(key) != others.get(key):
                    raise ValueError(f"{run} differs from {first} in {key} ({others.get(key)!r} vs "
                                     f"{reference.get(key)!r}), not only in eta")
            groups.setdefault(eta, {})[meta["seed"]] = run
    missing = {eta: sorted(set(seeds) - set(runs)) for eta, runs in groups.items() if set(runs) != set(seeds)}
    if missing:
        raise ValueError(f"seeds missing: {missing}")
    if not groups:
        raise ValueError(f"no robust runs with seeds {seeds} in {', '.join(map(str, folders))}")
    return {eta: [groups[eta][s] for s in seeds] for eta in sorted(groups)}, shared


def spread_history(run: Path) -> np.ndarray:
    """``(timesteps, q_spread, target_gap)`` rows of a run's target statistics."""
    path = run / TARGET_STATS
    if not path.exists():
        raise ValueError(f"{path} is missing: the run was trained before robustrl recorded the target statistics")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return np.array([[float(r["timesteps"]), float(r["q_spread"]), float(r["target_gap"])] for r in rows])


def eta_label(eta: float) -> str:
    return "∞" if math.isinf(eta) else f"{eta:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["results/runs", "runs/sweeps/eta-study/runs"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    try:
        groups, shared = eta_runs([Path(f) for f in args.runs], args.seeds)
        histories = {eta: [spread_history(r) for r in runs] for eta, runs in groups.items()}
    except ValueError as err:
        sys.exit(f"eta_study.py: {err}")
    suite = load_suite()
    cached = suite_runs([r for runs in groups.values() for r in runs], suite, jobs=args.jobs, checkpoints=("best",))

    def ids_of(run: Path) -> list[float]:
        returns = read_evaluation(run)["returns"]
        return [float(np.mean(returns[i]["best"])) for i in IDS]

    def suite_of(run: Path, channel: str, cell: Any) -> float:
        result = cached[run]["best"]
        if channel in result["channels"]:
            return float(np.mean(result["channels"][channel][cell]))
        return float(batched_statistic(cell)(np.asarray(result["sets"][channel], dtype=float)))

    etas = list(groups)
    table = {eta: np.array([ids_of(r) for r in groups[eta]]) for eta in etas}  # seeds x ids
    cells = {eta: np.array([[suite_of(r, ch, c) for _, ch, c in SUITE_CELLS] for r in groups[eta]]) for eta in etas}
    sets = {eta: {ch: np.array([cached[r]["best"]["sets"][ch] for r in groups[eta]])
                  for _, ch, c in SUITE_CELLS if not isinstance(c, int)} for eta in etas}

    def ci(eta: float, column: int, which: str) -> tuple[float, float, float]:
        if which == "ids":
            values = table[eta][:, column] if column >= 0 else table[eta][:, 1:].mean(axis=1)
            return float(values.mean()), *bootstrap_ci(values)
        label, channel, cell = SUITE_CELLS[column]
        if isinstance(cell, int):
            values = cells[eta][:, column]
            return float(values.mean()), *bootstrap_ci(values)
        statistic = batched_statistic(cell)
        matrix = sets[eta][channel]
        return float(statistic(matrix.mean(axis=0))), *seed_bootstrap_ci(matrix, statistic)

    def spread_at(eta: float, start: float, stop: float) -> float:
        values = [h[(h[:, 0] > start * h[-1, 0]) & (h[:, 0] <= stop * h[-1, 0]), 1].mean() for h in histories[eta]]
        return float(np.median(values))

    command = "python scripts/" + Path(__file__).name + " " + shlex.join(
        ["--runs", *args.runs, "--seeds", *map(str, args.seeds), "--jobs", str(args.jobs), "--out", args.out])
    names = ["Original", "Heavy pole", "Short pole", "Strong gravity"]
    lines = [
        "# What eta does", "",
        f"Generated by: `{command}`", "",
        f"The robust agent at every eta found, seeds {', '.join(map(str, args.seeds))} for each (paired by seed), "
        "every other setting the same in all runs (checked): "
        + ", ".join(f"{k}={v}" for k, v in sorted(shared.items())) + ". Returns are best checkpoints (selected on the nominal "
        "id only): the ids over 100 episodes, the suite cells over its episodes; mean over seeds [95 % bootstrap CI "
        "over seeds]. eta = 0 is robust-hard (the worst of the m samples), eta = ∞ robust-mean (their mean).", "",
        "q spread: how much Q_target varies across the sampled ball (max - min over the m samples, per next state "
        "and action, averaged over the batch), the median over seeds of its mean in the first and the last fifth of "
        "training; eta / spread below about 0.1 acts like the worst case, above about 3 like the mean.", "",
        "| eta | " + " | ".join(names) + " | perturbed mean | " + " | ".join(c[0] for c in SUITE_CELLS)
        + " | q spread (first fifth) | q spread (last fifth) | eta / spread (last) |",
        "|" + "---|" * (len(names) + len(SUITE_CELLS) + 5),
    ]
    for eta in etas:
        cols = [ci(eta, i, "ids") for i in range(len(IDS))] + [ci(eta, -1, "ids")]
        cols += [ci(eta, i, "suite") for i in range(len(SUITE_CELLS))]
        cells_md = [f"{m:.1f} [{lo:.0f}, {hi:.0f}]" for m, lo, hi in cols]
        early, late = spread_at(eta, 0.0, 0.2), spread_at(eta, 0.8, 1.0)
        cells_md += [f"{early:.3g}", f"{late:.3g}", eta_label(float(f"{eta / late:.3g}"))]
        lines.append(f"| {eta_label(eta)} | " + " | ".join(cells_md) + " |")
    lines.append("")
    out = Path(args.out)
    print(atomic_write_text(out / "eta_study.md", "\n".join(lines)))

    x = np.arange(len(etas))
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    for which, ax, labels in (("ids", axes[0], names), ("suite", axes[1], [c[0] for c in SUITE_CELLS])):
        for i, label in enumerate(labels):
            values = np.array([ci(eta, i, which) for eta in etas])
            ax.errorbar(x + (i - len(labels) / 2) * 0.04, values[:, 0],
                        yerr=[values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]], marker="o", capsize=3,
                        label=label)
        ax.set_xticks(x, [eta_label(e) for e in etas])
        ax.set_xlabel("η (0: worst of the samples, ∞: their mean)")
        ax.set_ylabel("mean return (best checkpoint)")
        ax.set_ylim(0, 510)
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_title(f"Reward-table ids ({len(args.seeds)} seeds, 95 % bootstrap CI of the mean)")
    axes[1].set_title("Robustness suite cells (same seeds and CIs)")
    ax = axes[2]
    for k, eta in enumerate(etas):
        steps = histories[eta][0][:, 0]
        curves = np.array([np.interp(steps, h[:, 0], h[:, 1]) for h in histories[eta]])
        color = f"C{k}"
        ax.plot(steps, np.median(curves, axis=0), color=color, label=f"q spread, runs at η = {eta_label(eta)}")
        ax.fill_between(steps, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.15)
        if 0 < eta < math.inf:
            ax.axhline(eta, color=color, ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("training timesteps")
    ax.set_ylabel("max - min of Q_target over the ball")
    ax.set_title("Spread of Q over the ball (median, band: min-max over seeds);\ndashed: the run's η")
    ax.legend(fontsize=8)
    fig.suptitle(f"What η does: the robust agent on {NOMINAL_ID} and its variants", y=1.02)
    fig.tight_layout()
    print(save_figure(fig, out / "eta_study.png", dpi=100))


if __name__ == "__main__":
    main()
