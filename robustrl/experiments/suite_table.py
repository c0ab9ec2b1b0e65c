"""The robustness table: every agent on every channel and level of a suite, across seeds, as CSV / Markdown / LaTeX.

One row per (agent, checkpoint, channel, level): the mean across seeds of the per-seed mean return, the std
across seeds, a 95 % percentile bootstrap CI over seeds, the number of seeds and of episodes per seed, and
the difference to the baseline agent (default ``regular``) with its bootstrap CI (seeds of the two agents
resampled independently). An uncertainty set gives three channels, ``set:<name>:mean``, ``set:<name>:worst``
and ``set:<name>:cvar10`` (:mod:`robustrl.experiments.set_stats`); their level is empty and their std is the
std across seeds of each seed's own statistic. The Markdown file ends with the probability of improvement
over the baseline per channel (Agarwal et al., 2021; the levels are the tasks). Numpy only.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.experiments.io import atomic_write_text
from robustrl.experiments.records import read_meta
from robustrl.experiments.set_stats import batched_statistic, seed_bootstrap_diff_ci, set_statistics
from robustrl.experiments.stats import probability_of_improvement, probability_of_improvement_ci
from robustrl.experiments.tables import BOOTSTRAP_RESAMPLES, agent_label, bootstrap_ci, bootstrap_diff_ci

__all__ = ["SET_STATISTICS", "SuiteResults", "SuiteRow", "collect_suite", "improvement_rows", "suite_rows",
           "write_suite_tables"]

#: The statistics of an uncertainty set, as the channel suffix ``set:<name>:<suffix>`` -> set_statistics' key.
SET_STATISTICS = {"mean": "mean", "worst": "worst", "cvar10": "cvar"}

#: ``{agent: {checkpoint: {"channels": {channel: (seeds, levels) per-seed means}, "sets": {set: (seeds, settings)}}}}``
SuiteResults = dict[str, dict[str, dict[str, dict[str, np.ndarray]]]]


@dataclass
class SuiteRow:
    """One row of the robustness table."""

    agent: str
    checkpoint: str
    channel: str
    level: float | None
    mean: float
    std: float
    ci_low: float
    ci_high: float
    seeds: int
    episodes: int
    diff: float | None = None
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None


def collect_suite(results: dict[Path, dict[str, dict[str, Any]]]) -> SuiteResults:
    """Group :func:`robustrl.experiments.suite.suite_run` results ``{run_dir: {checkpoint: result}}`` by agent
    label (agent plus tag): per-seed mean returns, one row per run in the order given."""
    grouped: SuiteResults = {}
    for run_dir, by_checkpoint in results.items():
        meta = read_meta(run_dir)
        agent = grouped.setdefault(agent_label(meta["agent"], meta.get("tag")), {})
        for checkpoint, result in by_checkpoint.items():
            into = agent.setdefault(checkpoint, {"channels": {}, "sets": {}})
            for channel, returns in result["channels"].items():
                into["channels"].setdefault(channel, []).append(np.mean(returns, axis=1))
            for name, means in result["sets"].items():
                into["sets"].setdefault(name, []).append(np.asarray(means, dtype=float))
    for agent in grouped.values():
        for into in agent.values():
            for part in ("channels", "sets"):
                into[part] = {k: np.array(v) for k, v in into[part].items()}
    return grouped


def _std(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def suite_rows(grouped: SuiteResults, suite: Any, baseline: str = "regular") -> list[SuiteRow]:
    """Rows for every agent, checkpoint, channel and level of ``suite`` (a :class:`~robustrl.experiments.suite.Suite`).

    Differences are to ``baseline`` when it is among the agents (a ``ValueError`` lists them if a baseline
    other than the default is missing).
    """
    if baseline not in grouped and baseline != "regular":
        raise ValueError(f"baseline {baseline!r} is not an agent of the runs; choose from {sorted(grouped)}")
    order = sorted(grouped, key=lambda a: (a != baseline, a))
    rows = []
    for checkpoint in ("best", "final"):
        for channel, levels in suite.channels.items():
            for k, level in enumerate(levels):
                for agent in order:
                    data = grouped[agent].get(checkpoint, {}).get("channels", {}).get(channel)
                    if data is None:
                        continue
                    values = data[:, k]
                    row = SuiteRow(agent, checkpoint, channel, level, float(values.mean()), _std(values),
                                   *bootstrap_ci(values), len(values), suite.episodes)
                    base = grouped.get(baseline, {}).get(checkpoint, {}).get("channels", {}).get(channel)
                    if agent != baseline and base is not None:
                        row.diff = float(values.mean() - base[:, k].mean())
                        row.diff_ci_low, row.diff_ci_high = bootstrap_diff_ci(values, base[:, k])
                    rows.append(row)
        for uncertainty_set in suite.sets:
            for suffix, key in SET_STATISTICS.items():
                for agent in order:
                    matrix = grouped[agent].get(checkpoint, {}).get("sets", {}).get(uncertainty_set.name)
                    if matrix is None:
                        continue
                    statistic = batched_statistic(key)
                    value = set_statistics(matrix)[key]
                    per_seed = statistic(matrix)
                    row = SuiteRow(agent, checkpoint, f"set:{uncertainty_set.name}:{suffix}", None, value.value,
                                   _std(per_seed), value.ci_low, value.ci_high, len(matrix), suite.set_episodes)
                    base = grouped.get(baseline, {}).get(checkpoint, {}).get("sets", {}).get(uncertainty_set.name)
                    if agent != baseline and base is not None:
                        row.diff = value.value - float(statistic(base.mean(axis=0)))
                        row.diff_ci_low, row.diff_ci_high = seed_bootstrap_diff_ci(matrix, base, statistic)
                    rows.append(row)
    return rows


def improvement_rows(grouped: SuiteResults, suite: Any, baseline: str = "regular",
                     checkpoint: str = "best", resamples: int = 2000) -> list[dict[str, Any]]:
    """P(agent > baseline) per channel (the levels, or a set's settings, as tasks), with a bootstrap CI that
    resamples whole runs (seeds), since every level of a channel is measured on the same runs."""
    rows = []
    base = grouped.get(baseline, {}).get(checkpoint)
    if base is None:
        return rows
    for agent in sorted(a for a in grouped if a != baseline):
        mine = grouped[agent].get(checkpoint)
        if mine is None:
            continue
        parts = [(c, mine["channels"].get(c), base["channels"].get(c)) for c in suite.channels]
        parts += [(f"set:{s.name}", mine["sets"].get(s.name), base["sets"].get(s.name)) for s in suite.sets]
        for channel, x, y in parts:
            if x is None or y is None:
                continue
            low, high = probability_of_improvement_ci(x, y, resamples=resamples, by="run")
            rows.append({"agent": agent, "channel": channel, "p": probability_of_improvement(x, y),
                         "ci_low": low, "ci_high": high})
    return rows


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _attacks_text(suite: Any) -> str:
    """What the suite's attack channels do, in the words of the table header."""
    from robustrl.experiments.suite import CHANNELS

    methods = {CHANNELS[c].method for c in suite.channels if CHANNELS[c].kind == "attack"}
    steps, restarts = suite.attack["steps"], suite.attack["restarts"]
    parts = []
    if methods & {"fgm", "pgd"}:
        parts.append(f"worst of margin and cross-entropy losses, PGD {steps} steps x {restarts} restarts per loss "
                     "from random starts")
    if methods & {"mad", "critic"}:
        parts.append(f"MAD and critic attacks on the actor, PGD {steps} steps from one random start")
    return "; ".join(parts) if parts else "none"


def _header(command: str, suite: Any, rows: list[SuiteRow]) -> list[str]:
    seeds = sorted({r.seeds for r in rows})
    return [
        f"Generated by: {command}",
        f"Suite {suite.name} ({suite.source}): {suite.episodes} greedy episodes per level and run, uncertainty sets "
        f"{suite.set_episodes} per setting; eps in units of state_scale {suite.state_scale}; attacks: "
        f"{_attacks_text(suite)}, searched in {suite.attack['precision']}; the agent acts in float64.",
        f"Seeds per agent: {', '.join(map(str, seeds))}; 95% percentile bootstrap CIs over seeds "
        f"({BOOTSTRAP_RESAMPLES} resamples); 'best' = checkpoint selected on the nominal env only.",
    ]


def _csv(rows: list[SuiteRow], header: list[str]) -> str:
    out = io.StringIO()
    for line in header:
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    names = [f.name for f in fields(SuiteRow)]
    writer.writerow(names)
    for row in rows:
        values = [getattr(row, name) for name in names]
        writer.writerow([("" if v is None else f"{v:g}") if name == "level" else
                         (_fmt(v, 3) if isinstance(v, float) or v is None else v) for name, v in zip(names, values)])
    return out.getvalue()


def _grid(rows: list[SuiteRow], checkpoint: str) -> tuple[list[tuple[str, float | None]], list[str],
                                                           dict[tuple[str, str, float | None], SuiteRow]]:
    chosen = [r for r in rows if r.checkpoint == checkpoint]
    keys = list(dict.fromkeys((r.channel, r.level) for r in chosen))
    agents = list(dict.fromkeys(r.agent for r in chosen))
    return keys, agents, {(r.agent, r.channel, r.level): r for r in chosen}


def _level(level: float | None) -> str:
    return "" if level is None else f"{level:g}"


def _markdown(rows: list[SuiteRow], header: list[str], improvement: list[dict[str, Any]], baseline: str) -> str:
    lines = [f"<!-- {line} -->" for line in header] + [""] + [f"_{line}_  " for line in header] + [""]
    for checkpoint, title in (("best", "Best checkpoint (selected on the nominal env)"), ("final", "Final model")):
        keys, agents, cells = _grid(rows, checkpoint)
        if not keys:
            continue
        lines += [f"**{title}**: mean return across seeds [95% CI]", ""]
        lines += ["| channel | level | " + " | ".join(agents) + " |", "|---|---" + "|---" * len(agents) + "|"]
        for channel, level in keys:
            cell = [cells.get((a, channel, level)) for a in agents]
            lines.append(f"| {channel} | {_level(level)} | " + " | ".join(
                "–" if c is None else f"{c.mean:.1f} [{c.ci_low:.1f}, {c.ci_high:.1f}]" for c in cell) + " |")
        others = [a for a in agents if a != baseline]
        if others and any(r.diff is not None for r in rows if r.checkpoint == checkpoint):
            lines += ["", f"**{title}**: difference to {baseline} [95% CI]", ""]
            lines += ["| channel | level | " + " | ".join(others) + " |", "|---|---" + "|---" * len(others) + "|"]
            for channel, level in keys:
                cell = [cells.get((a, channel, level)) for a in others]
                lines.append(f"| {channel} | {_level(level)} | " + " | ".join(
                    "–" if c is None or c.diff is None else f"{c.diff:+.1f} [{c.diff_ci_low:+.1f}, {c.diff_ci_high:+.1f}]"
                    for c in cell) + " |")
        lines.append("")
    if improvement:
        agents = list(dict.fromkeys(r["agent"] for r in improvement))
        channels = list(dict.fromkeys(r["channel"] for r in improvement))
        table = {(r["agent"], r["channel"]): r for r in improvement}
        lines += [f"**Probability of improvement over {baseline}** (best checkpoint; P(a run of the agent beats a "
                  f"run of {baseline} at a random level or setting of the channel), 95% bootstrap CI over seeds: "
                  "whole runs resampled)", ""]
        lines += ["| channel | " + " | ".join(agents) + " |", "|---" + "|---" * len(agents) + "|"]
        for channel in channels:
            lines.append(f"| {channel} | " + " | ".join(
                "–" if (a, channel) not in table else
                f"{table[(a, channel)]['p']:.2f} [{table[(a, channel)]['ci_low']:.2f}, {table[(a, channel)]['ci_high']:.2f}]"
                for a in agents) + " |")
        lines.append("")
    return "\n".join(lines)


def _latex(rows: list[SuiteRow], header: list[str]) -> str:
    lines = [f"% {line}" for line in header]
    for checkpoint in ("best", "final"):
        keys, agents, cells = _grid(rows, checkpoint)
        if not keys:
            continue
        lines += [f"% checkpoint: {checkpoint}", r"\begin{tabular}{ll" + "c" * len(agents) + "}", r"\toprule"]
        lines.append("Channel & Level & " + " & ".join(a.replace("_", r"\_") for a in agents) + r" \\")
        lines.append(r"\midrule")
        for channel, level in keys:
            cell = [cells.get((a, channel, level)) for a in agents]
            lines.append(f"{channel} & {_level(level)} & " + " & ".join(
                "--" if c is None else f"${c.mean:.1f} \\pm {c.std:.1f}$" for c in cell) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def write_suite_tables(grouped: SuiteResults, suite: Any, out_dir: str | Path, command: str,
                       baseline: str = "regular", stem: str = "robustness_table") -> list[Path]:
    """Write ``{stem}.csv``, ``.md`` and ``.tex`` into ``out_dir`` (atomically) from :func:`collect_suite`'s result."""
    rows = suite_rows(grouped, suite, baseline)
    if not rows:
        raise ValueError("no suite results to tabulate")
    header = _header(command, suite, rows)
    out_dir = Path(out_dir)
    return [
        atomic_write_text(out_dir / f"{stem}.csv", _csv(rows, header)),
        atomic_write_text(out_dir / f"{stem}.md", _markdown(rows, header, improvement_rows(grouped, suite, baseline),
                                                             baseline)),
        atomic_write_text(out_dir / f"{stem}.tex", _latex(rows, header)),
    ]
