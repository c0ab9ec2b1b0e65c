"""One report: ``robustrl report`` gathers every table, statistic and plot under results/ into REPORT.md.

The report is generated from files other commands wrote (reward tables, sweeps, surfaces, benchmarks,
supervised tables) plus statistics it computes here from the saved evaluations of the reward-table runs,
in the sense of Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice"
(NeurIPS 2021): IQM, median, mean and optimality gap of normalized scores with stratified-bootstrap 95%
CIs, probabilities of improvement over the regular agent, and performance profiles.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.experiments.io import atomic_write_text, read_json
from robustrl.experiments.records import collect_evaluated_runs
from robustrl.experiments.stats import (
    aggregate,
    iqm,
    mean,
    median,
    normalize,
    optimality_gap,
    plot_performance_profiles,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)
from robustrl.experiments.tables import agent_label
from robustrl.tasks import Task, get_task, id_label

__all__ = ["agent_scores", "statistics_rows", "write_benchmark_section", "write_report", "write_statistics"]

_METRICS = {"iqm": iqm, "median": median, "mean": mean, "optimality_gap": optimality_gap}
_REFERENCE = "regular"


def agent_scores(
    runs_dir: str | Path, env_ids: tuple[str, ...], checkpoint: str = "best", allow_partial: bool = False
) -> dict[str, np.ndarray]:
    """Per agent, the (seeds x ids) matrix of mean returns from each run's ``eval.json``.

    Runs not evaluated on every id of ``env_ids`` are a ``ValueError`` naming them, unless
    ``allow_partial`` (then they are left out), as in the reward table.
    """
    runs, _ = collect_evaluated_runs(runs_dir, env_ids, (checkpoint,), allow_partial)
    scores: dict[str, list[list[float]]] = {}
    for run in runs:
        label = agent_label(run.meta["agent"], run.meta.get("tag"))
        scores.setdefault(label, []).append([float(np.mean(run.returns[e][checkpoint])) for e in env_ids])
    return {agent: np.array(rows) for agent, rows in scores.items()}


def statistics_rows(scores: dict[str, np.ndarray], resamples: int = 2000,
                    return_range: tuple[float, float] | None = None) -> list[dict[str, Any]]:
    """Aggregate metrics with stratified-bootstrap CIs, and P(agent > regular), for each agent; scores are
    normalized by ``return_range`` (default: the default task's)."""
    bottom, top = return_range or get_task().return_range
    rows = []
    for agent, matrix in scores.items():
        norm = normalize(matrix, bottom, top)
        row: dict[str, Any] = {"agent": agent, "runs": matrix.shape[0], "tasks": matrix.shape[1]}
        point = aggregate(norm)
        for name, statistic in _METRICS.items():
            low, high = stratified_bootstrap_ci(norm, statistic, resamples=resamples, seed=0)
            row[name], row[f"{name}_low"], row[f"{name}_high"] = point[name], low, high
        if _REFERENCE in scores and agent != _REFERENCE:
            reference = normalize(scores[_REFERENCE], bottom, top)
            row["p_improve"] = probability_of_improvement(norm, reference)
            row["p_improve_low"], row["p_improve_high"] = probability_of_improvement_ci(
                norm, reference, resamples=resamples, seed=0
            )
        rows.append(row)
    return rows


def _statistics_markdown(rows: list[dict[str, Any]], title: str) -> list[str]:
    lines = [
        f"**{title}**",
        "",
        "| agent | runs × ids | IQM | median | mean | optimality gap | P(agent > regular) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row["agent"], f"{row['runs']} × {row['tasks']}"]
        for name in _METRICS:
            cells.append(f"{row[name]:.3f} [{row[name + '_low']:.3f}, {row[name + '_high']:.3f}]")
        cells.append(
            f"{row['p_improve']:.2f} [{row['p_improve_low']:.2f}, {row['p_improve_high']:.2f}]"
            if "p_improve" in row
            else "—"
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _pairwise_markdown(scores: dict[str, np.ndarray], title: str, resamples: int) -> list[str]:
    """P(row agent > column agent) on a random id, with stratified-bootstrap 95% CIs, for every pair."""
    agents = list(scores)
    if len(agents) < 2:
        return []
    lines = [f"**Probability of improvement, {title}**: P(row > column) [95% CI]", "",
             "| row \\ column | " + " | ".join(agents) + " |", "|---" * (len(agents) + 1) + "|"]
    for a in agents:
        cells = []
        for b in agents:
            if a == b:
                cells.append("—")
                continue
            p = probability_of_improvement(scores[a], scores[b])
            low, high = probability_of_improvement_ci(scores[a], scores[b], resamples=resamples, seed=0)
            cells.append(f"{p:.2f} [{low:.2f}, {high:.2f}]")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_statistics(
    results: str | Path,
    resamples: int = 2000,
    runs_dir: str | Path | None = None,
    allow_partial: bool = False,
    task: Task | str | None = None,
) -> tuple[list[str], list[Path]]:
    """Statistics of a set of evaluated runs: Markdown lines, ``statistics.csv``/``.md`` and profile plots.

    :param results: output folder (``statistics.csv``, ``statistics.md``, ``performance_profiles_*.png``).
    :param runs_dir: folder of run folders with ``eval.json`` (default ``results/runs``); agents are
        labelled ``agent`` or ``agent-tag``.
    :param allow_partial: leave out runs not trained or not evaluated on every id (and name them at the
        top of ``statistics.md``) instead of raising ``ValueError``.
    """
    results = Path(results)
    runs_dir = Path(runs_dir) if runs_dir is not None else results / "runs"
    task = get_task(task)
    perturbed, every = task.perturbed_ids, task.ids
    lines: list[str] = []
    written: list[Path] = []
    csv_rows: list[dict[str, Any]] = []
    for checkpoint in ("best", "final"):
        by_ids: dict[str, dict[str, np.ndarray]] = {}
        groups = [("perturbed ids", perturbed)] if perturbed else []  # a task may have its nominal id only
        everything = "the nominal id" if len(every) == 1 else f"all {_count(len(every))} ids"
        for label, ids in (*groups, (everything, every)):
            scores = by_ids[label] = agent_scores(runs_dir, ids, checkpoint, allow_partial)
            if not scores:
                return [], []
            rows = statistics_rows(scores, resamples, task.return_range)
            for row in rows:
                csv_rows.append(
                    {
                        "checkpoint": checkpoint,
                        "ids": label,
                        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
                    }
                )
            lines += _statistics_markdown(
                rows, f"{checkpoint} checkpoint, {label} ({', '.join(id_label(i) for i in ids)})"
            )
        which = groups[0][0] if groups else everything
        profiles = {agent: normalize(matrix, *task.return_range) for agent, matrix in by_ids[which].items()}
        lines += _pairwise_markdown(profiles, f"{checkpoint} checkpoint, {which}", resamples)
        written.append(
            plot_performance_profiles(
                profiles,
                results / f"performance_profiles_{checkpoint}.png",
                title=f"Performance profiles on {'the ' if groups else ''}{which} ({checkpoint} checkpoint)",
            )
        )
    fields = list(dict.fromkeys(k for row in csv_rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows)
    written.insert(0, atomic_write_text(results / "statistics.csv", buffer.getvalue()))
    _, missing = collect_evaluated_runs(runs_dir, every, allow_partial=True)
    if missing:
        lines.insert(0, f"**Partial: {len(missing)} incomplete run(s) left out**: "
                     + "; ".join(f"{name} ({why})" for name, why in sorted(missing.items())) + "\n")
    written.insert(1, atomic_write_text(results / "statistics.md", "# Statistics\n\n" + "\n".join(lines)))
    return lines, written


def _count(n: int) -> str:
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n] if n < len(words) else str(n)


def _normalization(task: Task) -> str:
    low, high = task.return_range
    return f"return / {high:g}" if low == 0 else f"(return - ({low:g})) / {high - low:g}"


def write_benchmark_section(results: str | Path, name: str, text: str) -> Path:
    """Save one benchmark script's section as ``benchmarks/NAME.md`` and rebuild ``benchmarks.md`` from all.

    Each benchmark script owns one section, so rerunning one script never erases another's numbers.
    """
    results = Path(results)
    atomic_write_text(results / "benchmarks" / f"{name}.md", text.strip() + "\n")
    sections = [p.read_text().strip() for p in sorted((results / "benchmarks").glob("*.md"))]
    header = (
        "# Benchmarks\n\nSpeed is measured as ratios within one run of a script (the machine is shared). "
        "Each section names the script that wrote it; the sections live in `benchmarks/`.\n"
    )
    return atomic_write_text(results / "benchmarks.md", header + "\n" + "\n\n".join(sections) + "\n")


def _strip_title(text: str, shift: int = 1) -> str:
    """``text`` without its ``# title`` line, every other heading ``shift`` levels deeper."""
    lines = text.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(line if not line.startswith("#") else "#" * shift + line for line in lines).strip()


def _image(lines: list[str], results: Path, name: str, caption: str) -> None:
    if (results / name).is_file():
        lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]


def write_report(
    results: str | Path = "results", out: str | Path | None = None, command: str = "robustrl report",
    task: Task | str | None = None,
) -> Path:
    """Write ``REPORT.md`` (default ``results/REPORT.md``) from everything under ``results`` (the runs of
    ``task``, default :data:`robustrl.tasks.DEFAULT_TASK`).

    :raises ValueError: if ``results`` holds no reward table (run ``robustrl reproduce`` first).
    """
    results = Path(results)
    task = get_task(task)
    table = results / "reward_table.md"
    if not table.is_file():
        raise ValueError(f"{table} does not exist; run `robustrl reproduce` first")
    out = Path(out) if out is not None else results / "REPORT.md"
    lines = [
        f"# robustrl report: {task.title}",
        "",
        f"Generated by `{command}` from the files under `{results}/`; every number below comes from a "
        "saved run and a command that is named beside it.",
        "",
        "",  # the contents line goes here once the sections are known
        "## Reward table",
        "",
    ]
    contents_at = lines.index("## Reward table") - 1
    lines += ["The table's own header names the command that made it; the numbers are also in `reward_table.csv` / "
              "`.tex`.", "", _strip_title(table.read_text()), ""]

    lines += [
        "## Statistics",
        "",
        f"Normalized score = {_normalization(task)}. Aggregates over all (seed, id) pairs with stratified-bootstrap "
        "95% CIs (2000 resamples; runs resampled within each id), and the probability that a run of "
        "the agent beats a run of the regular agent on a random id (Agarwal et al., 2021). "
        f"Made by `{command}`; numbers in `statistics.csv`.",
        "",
    ]
    stat_lines, _ = write_statistics(results, task=task)
    lines += stat_lines or ["No evaluated runs under `runs/`.", ""]

    lines += ["## Robustness suite", ""]
    suite_table = results / "robustness_table.md"
    if suite_table.is_file():
        lines += ["Every run's best and final checkpoints under observation attacks, observation noise, random "
                  "actions and uncertainty sets (`robustrl robustness`; numbers in `robustness_table.csv` / `.tex`).",
                  "", _strip_title(suite_table.read_text()), ""]
        _image(lines, results, "robustness_suite.png",
               "Return against the level of each channel, best checkpoint, 95% bootstrap CI of the mean over seeds")
        _image(lines, results, "robustness_sets.png",
               "Mean, worst case and CVaR 10% over the uncertainty sets, 95% bootstrap CI over seeds")
        convergence = results / "robustness_convergence.md"
        if convergence.is_file():
            lines += ["### Attack convergence", "", _strip_title(convergence.read_text(), shift=2), ""]
        decision = results / "decision_table.md"
        if decision.is_file():
            lines += ["### Decision table", "", "Per condition, the winner and the robust agent against it "
                      "(`robustrl robustness` writes it with the suite).", "",
                      _strip_title(decision.read_text(), shift=2), ""]
        for path in sorted(results.glob("decision_table_*.md")):
            robust = path.stem.removeprefix("decision_table_")
            lines += [f"### Decision table: {robust}", "", f"The same for {robust}, against the plain agent of its "
                      "family (the task's `decision_pairs`).", "", _strip_title(path.read_text(), shift=2), ""]
        weakest = results / "weakest_condition.md"
        if weakest.is_file():
            lines += ["### Weakest condition", "", _strip_title(weakest.read_text(), shift=2), ""]
    else:
        lines += ["No robustness table yet (run `robustrl robustness`).", ""]

    lines += ["## Plots", ""]
    _image(
        lines,
        results,
        "training_curves.png",
        "Nominal greedy return during training, 95% bootstrap CI of the mean over seeds (robustrl reproduce)",
    )
    _image(
        lines,
        results,
        "robustness_curves.png",
        f"Return versus {', '.join(task.parameter_labels[p] for p in task.curve_grid)}, 95% bootstrap CI of the "
        "mean over seeds "
        "(robustrl reproduce)",
    )
    _image(
        lines,
        results,
        "surface_curves.png",
        "Return over a dense grid of every physical parameter, 95% bootstrap bands (robustrl surfaces)",
    )
    _image(lines, results, "surface_pairs.png", "Return over pairs of parameters (robustrl surfaces)")
    _image(
        lines,
        results,
        "performance_profiles_best.png",
        "Performance profiles, best checkpoint (robustrl report)",
    )
    _image(
        lines,
        results,
        "performance_profiles_final.png",
        "Performance profiles, final model (robustrl report)",
    )

    # The sections below hold what other scripts wrote; a results folder without them (a task study, a user's
    # own runs) leaves them out rather than printing a placeholder.
    studies = sorted((results / "selection").glob("selection-*.md"))
    if studies:
        lines += ["## Model selection", ""]
    for path in studies:
        lines += [f"### {path.stem}", "", _strip_title(path.read_text()), ""]

    sweeps = sorted(p.parent for p in (results / "sweeps").glob("*/settings.md"))
    if sweeps:
        lines += ["## Sweeps", ""]
    for folder in sweeps:
        rel = folder.relative_to(results)
        lines += [f"### {folder.name}", "", _strip_title((folder / "settings.md").read_text()), ""]
        if (folder / "best.json").is_file():
            for agent, best in read_json(folder / "best.json").items():
                setting = ", ".join(f"{k}={v}" for k, v in best["setting"].items())
                lines.append(
                    f"- best setting for **{agent}**: {setting} ({best['criterion']}: "
                    f"{best['score']:.1f}, {best['seeds']} seeds)"
                )
            lines.append("")
        _image(
            lines, results, f"{rel}/heatmap.png", f"Sweep {folder.name}: mean return over the perturbed ids"
        )
        _image(lines, results, f"{rel}/surface_curves.png", f"Sweep {folder.name}: robustness surfaces")

    bench = results / "benchmarks.md"
    if bench.is_file():
        lines += ["## Benchmarks", "", _strip_title(bench.read_text()), ""]

    supervised = results / "supervised"
    tables = sorted(supervised.glob("*/table.md")) + sorted(supervised.glob("*/*benchmark*.md"))
    if tables or (supervised / "README.md").is_file():
        lines += ["## Supervised", ""]
    if (supervised / "README.md").is_file():
        lines += ["Index and commands: [supervised/README.md](supervised/README.md).", ""]
    for path in tables:
        rel = path.parent.relative_to(results)
        lines += [f"### {rel}", "", _strip_title(path.read_text()), ""]
        _image(lines, results, f"{rel}/accuracy_vs_budget.png", f"{rel}: accuracy versus attack budget")
    sections = [line[3:] for line in lines if line.startswith("## ")]
    lines[contents_at:contents_at] = ["Contents: " + " · ".join(
        f"[{name.lower()}](#{name.lower().replace(' ', '-')})" for name in sections
    )]
    return atomic_write_text(out, "\n".join(lines).rstrip() + "\n")
