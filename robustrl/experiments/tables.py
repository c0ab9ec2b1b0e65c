"""The reward table: statistics across seeds from saved evaluations, written as CSV, Markdown, LaTeX."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.experiments.io import atomic_write_text
from robustrl.experiments.records import EvaluatedRun, collect_evaluated_runs
from robustrl.tasks import get_task, id_label, order_ids, task_of

__all__ = [
    "TableRow",
    "agent_label",
    "bootstrap_ci",
    "bootstrap_ci_columns",
    "bootstrap_diff_ci",
    "collect_evaluations",
    "config_summary",
    "reward_table",
    "write_reward_tables",
]

BOOTSTRAP_RESAMPLES = 10_000



def agent_label(agent: str, tag: str | None = "") -> str:
    """The label of a run's agent in tables and plots: the agent name, plus ``-tag`` for a sweep setting.

    ``agent_label("robust", "rho0.1-eta1")`` is ``"robust-rho0.1-eta1"``; without a tag it is the agent name.
    """
    return f"{agent}-{tag}" if tag else agent

def bootstrap_ci(values: np.ndarray, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values`` (resampling the entries)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def bootstrap_ci_columns(values: np.ndarray, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bootstrap_ci` of every column of ``values`` ``(n_seeds, n_points)`` at once: ``(low, high)``.

    Rows (seeds) are resampled with the same draws as :func:`bootstrap_ci` with the same ``seed``, so
    column ``k`` gets the interval of ``bootstrap_ci(values[:, k])`` (up to rounding). The resampled means
    are weighted averages of the column's values, so the interval lies within the column's [min, max].
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"bootstrap_ci_columns needs a (n_seeds >= 1, n_points) array, "
                         f"got shape {values.shape}")
    n = values.shape[0]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    counts = np.bincount((draws + n * np.arange(resamples)[:, None]).ravel(), minlength=resamples * n)
    means = counts.reshape(resamples, n) @ values / n
    alpha = (1 - level) / 2
    return np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)


def bootstrap_diff_ci(a: np.ndarray, b: np.ndarray, level: float = 0.95,
                      resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``mean(a) - mean(b)`` for independent samples (seeds of two agents)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    diffs = (a[rng.integers(0, a.size, size=(resamples, a.size))].mean(axis=1)
             - b[rng.integers(0, b.size, size=(resamples, b.size))].mean(axis=1))
    alpha = (1 - level) / 2
    return float(np.quantile(diffs, alpha)), float(np.quantile(diffs, 1 - alpha))


@dataclass
class TableRow:
    """One cell group of the reward table: an agent on an env id, for one checkpoint."""

    env_id: str
    agent: str
    checkpoint: str
    seeds: int
    episodes: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    diff: float | None = None
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None


def collect_evaluations(
    runs_dir: str | Path, allow_partial: bool = False
) -> tuple[dict[str, dict[str, dict[str, list[float]]]], int, dict[str, str]]:
    """Per-seed mean returns ``{agent label: {env_id: {checkpoint: [...]}}}``, the episodes per seed, and
    the incomplete runs left out (``{run: what is missing}``).

    The agent label is the run's agent name plus its tag. Incomplete runs raise ``ValueError`` unless
    ``allow_partial``; so do runs evaluated with different numbers of episodes
    (:func:`robustrl.experiments.records.collect_evaluated_runs`).
    """
    runs, missing = collect_evaluated_runs(runs_dir, allow_partial=allow_partial)
    return _seed_means(runs), (runs[0].episodes if runs else 0), missing


def _seed_means(runs: list[EvaluatedRun]) -> dict[str, dict[str, dict[str, list[float]]]]:
    grouped: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in runs:
        agent = grouped.setdefault(agent_label(run.meta["agent"], run.meta.get("tag")), {})
        for env_id, by_checkpoint in run.returns.items():
            for checkpoint, returns in by_checkpoint.items():
                agent.setdefault(env_id, {}).setdefault(checkpoint, []).append(float(np.mean(returns)))
    return grouped


#: The keys of a saved configuration (``meta.json``'s ``config``) that :func:`config_summary` reads.
_SUMMARY_KEYS = ("algo", "n_timesteps", "eval_freq", "eval_episodes")


def config_summary(config: dict[str, Any]) -> str:
    """One line saying what a configuration trains, for a table header: the algorithm, the budget, the
    robust settings, the domain-randomization box and the model selection.

    ``config`` is :meth:`robustrl.agents.AgentConfig.to_dict` or a run's saved ``config`` (``meta.json``);
    the robust settings are listed in its key order (the config file's, or sorted in ``meta.json``).
    """
    robust = ", ".join(f"{k}={v}" for k, v in (config.get("robust_kwargs") or {}).items())
    ranges = config.get("domain_randomization") or {}
    if ranges:
        box = ", ".join(f"{k} [{low:g}, {high:g}]" for k, (low, high) in ranges.items())
        task = task_of(config["env_id"]) if "env_id" in config else get_task()
        inside = [env_id for env_id, change in task.variants.items() if change and all(
            k in ranges and ranges[k][0] <= v <= ranges[k][1] for k, v in change.items())]
        tested = ", ".join(f"{k} {v:g}" for change in task.variants.values() for k, v in change.items())
        if tested:
            reach = (f"contains the test physics of {', '.join(inside)}" if inside
                     else f"contains none of the test physics ({tested})")
        else:  # a task judged on its uncertainty sets only: does the box hold the sets it is judged on?
            reach = _box_and_sets(ranges, task)
        drawn = f"physics drawn at every reset from: {box}; the box {reach}"
        robust = ", ".join(filter(None, [robust, drawn]))
    selection = (f"selection: every {config['eval_freq']} steps, {config['eval_episodes']} nominal episodes, "
                 f"ties={config.get('selection_ties', 'latest')}")
    settings = ", ".join(filter(None, [f"n_timesteps={config['n_timesteps']}", robust]))
    return f"{config['algo']}({settings}; {selection})"


def _box_and_sets(ranges: dict[str, Any], task: Any) -> str:
    """Which of ``task``'s packaged uncertainty sets the domain-randomization box ``ranges`` contains."""
    from robustrl.experiments.uncertainty import load_uncertainty_set, packaged_uncertainty_sets

    names = packaged_uncertainty_sets(task)
    held = [name for name in names if all(
        p in ranges and ranges[p][0] <= low and high <= ranges[p][1]
        for p, (low, high) in load_uncertainty_set(name, task).ranges.items())]
    if held:
        return f"contains the uncertainty sets it is judged on: {', '.join(held)}"
    return f"contains none of the task's uncertainty sets ({', '.join(names)})"


def _run_configs(runs: list[EvaluatedRun], labels: list[str]) -> dict[str, str]:
    """``{agent label: config_summary}`` from the runs' saved configurations, for the labels whose runs saved
    one; runs of one label with different configurations are all named."""
    summaries: dict[str, dict[str, None]] = {}
    for run in runs:
        config = run.meta.get("config")
        if isinstance(config, dict) and all(key in config for key in _SUMMARY_KEYS):
            label = agent_label(run.meta["agent"], run.meta.get("tag"))
            summaries.setdefault(label, {})[config_summary(config)] = None
    return {label: (next(iter(found)) if len(found) == 1
                    else f"{len(found)} configurations: " + " | ".join(found))
            for label in labels if (found := summaries.get(label))}


def reward_table(runs_dir: str | Path, baseline: str | None = None,
                 allow_partial: bool = False) -> list[TableRow]:
    """Rows for every agent, env id and checkpoint found under ``runs_dir``; differences vs ``baseline``.

    ``baseline`` is an agent label (agent name plus tag, e.g. ``"regular-n_timesteps100000"`` for a sweep
    run); by default ``"regular"``, with no difference rows if there is no regular agent. A ``baseline``
    that is given and absent is a ``ValueError`` listing the labels found. A run that is not trained or
    not evaluated on every id is a ``ValueError`` naming it, unless ``allow_partial`` (then it is left out).
    """
    return _reward_table(runs_dir, baseline, allow_partial)[0]


def _reward_table(runs_dir: str | Path, baseline: str | None, allow_partial: bool
                  ) -> tuple[list[TableRow], dict[str, str], dict[str, str], dict[str, str], list[str]]:
    """The rows, the incomplete runs left out, each agent's saved configuration (:func:`_run_configs`), its
    training time (:func:`_training_cost`) and the names of the runs tabulated."""
    runs, missing = collect_evaluated_runs(runs_dir, allow_partial=allow_partial)
    grouped, episodes = _seed_means(runs), (runs[0].episodes if runs else 0)
    if not grouped:
        raise ValueError(f"no evaluated runs under {runs_dir}; run `robustrl train` and `robustrl evaluate` first")
    if baseline is None:
        baseline = "regular"
    elif baseline not in grouped:
        raise ValueError(f"baseline {baseline!r} is not an agent under {runs_dir}; choose from {sorted(grouped)}")
    rows = []
    order = sorted(grouped, key=lambda a: (a != baseline, a))
    for env_id in order_ids(e for a in grouped for e in grouped[a]):
        for checkpoint in ("best", "final"):
            for agent in order:
                seed_means = np.array(grouped[agent].get(env_id, {}).get(checkpoint, []))
                if seed_means.size == 0:
                    continue
                row = TableRow(env_id, agent, checkpoint, int(seed_means.size), episodes,
                               float(seed_means.mean()),
                               float(seed_means.std(ddof=1)) if seed_means.size > 1 else 0.0,
                               *bootstrap_ci(seed_means))
                base = np.array(grouped.get(baseline, {}).get(env_id, {}).get(checkpoint, []))
                if agent != baseline and base.size:
                    row.diff = float(seed_means.mean() - base.mean())
                    row.diff_ci_low, row.diff_ci_high = bootstrap_diff_ci(seed_means, base)
                rows.append(row)
    return (rows, missing, _run_configs(runs, order), _training_cost(runs, order),
            [run.run_dir.name for run in runs])


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _header_lines(command: str, config: dict[str, Any], rows: list[TableRow],
                  missing: dict[str, str] | None = None, cost: dict[str, str] | None = None,
                  others: list[str] | None = None) -> list[str]:
    seeds = sorted({r.seeds for r in rows})
    episodes = sorted({r.episodes for r in rows})
    lines = [
        f"Generated by: {command}",
        f"Seeds per agent: {', '.join(map(str, seeds))}; greedy episodes per seed and id: "
        f"{', '.join(map(str, episodes))}; 95% percentile bootstrap CIs over seeds "
        f"({BOOTSTRAP_RESAMPLES} resamples); 'best' = checkpoint selected on the nominal env only.",
    ]
    if missing:
        lines.append(f"PARTIAL TABLE: {len(missing)} incomplete run(s) left out: "
                     + "; ".join(f"{name} ({why})" for name, why in sorted(missing.items())))
    if others:
        lines.append(f"Also tabulated: {len(others)} run(s) in the runs folder that this command did not "
                     "make: " + ", ".join(others))
    if cost:
        lines.append("Training time per run (median and range of train_seconds in meta.json; one torch thread, "
                     "on a shared machine: indicative): " + "; ".join(f"{k} {v}" for k, v in cost.items()))
    lines += [f"Config {key}: {value}" for key, value in config.items()]
    return lines


def _training_cost(runs: list[EvaluatedRun], labels: list[str]) -> dict[str, str]:
    """``{agent label: "median s (min-max)"}`` of the runs' training times, for the labels whose runs saved one."""
    seconds: dict[str, list[float]] = {}
    for run in runs:
        value = run.meta.get("train_seconds")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            seconds.setdefault(agent_label(run.meta["agent"], run.meta.get("tag")), []).append(float(value))
    return {label: (f"{np.median(found):.0f} s" if len(found) == 1 else
                    f"{np.median(found):.0f} s ({min(found):.0f}-{max(found):.0f})")
            for label in labels if (found := seconds.get(label))}


def _csv(rows: list[TableRow], header: list[str]) -> str:
    out = io.StringIO()
    for line in header:
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    fields = list(TableRow.__dataclass_fields__)
    writer.writerow(fields)
    for row in rows:
        writer.writerow([_fmt(v, 3) if isinstance(v, float) or v is None else v
                         for v in (getattr(row, f) for f in fields)])
    return out.getvalue()


def _cell(row: TableRow | None) -> str:
    if row is None:
        return "–"
    return f"{row.mean:.1f} ± {row.std:.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}]"


def _diff_cell(row: TableRow | None) -> str:
    if row is None or row.diff is None:
        return "–"
    return f"{row.diff:+.1f} [{row.diff_ci_low:+.1f}, {row.diff_ci_high:+.1f}]"


def _grid(rows: list[TableRow], checkpoint: str) -> tuple[list[str], list[str], dict[tuple[str, str], TableRow]]:
    env_ids = list(dict.fromkeys(r.env_id for r in rows))
    agents = list(dict.fromkeys(r.agent for r in rows))
    cells = {(r.agent, r.env_id): r for r in rows if r.checkpoint == checkpoint}
    return env_ids, agents, cells


def _markdown(rows: list[TableRow], header: list[str]) -> str:
    lines = [f"<!-- {line} -->" for line in header] + [""]
    lines += [f"_{header[0]}_  ", f"_{header[1]}_", ""]
    lines += [f"**{line}**\n" for line in header if line.startswith("PARTIAL TABLE")]
    for checkpoint, title in (("best", "Best checkpoint (selected on the nominal env)"), ("final", "Final model")):
        env_ids, agents, cells = _grid(rows, checkpoint)
        lines += [f"**{title}**: mean ± std across seeds [95% CI]", ""]
        lines.append("| agent | " + " | ".join(id_label(e) for e in env_ids) + " |")
        lines.append("|---" * (len(env_ids) + 1) + "|")
        for agent in agents:
            lines.append(f"| {agent} | " + " | ".join(_cell(cells.get((agent, e))) for e in env_ids) + " |")
        lines.append("")
        lines += [f"**{title}**: difference to regular [95% CI]", ""]
        lines.append("| agent | " + " | ".join(id_label(e) for e in env_ids) + " |")
        lines.append("|---" * (len(env_ids) + 1) + "|")
        for agent in agents:
            if any(cells.get((agent, e)) and cells[(agent, e)].diff is not None for e in env_ids):
                lines.append(f"| {agent} | " + " | ".join(_diff_cell(cells.get((agent, e))) for e in env_ids) + " |")
        lines.append("")
    return "\n".join(lines)


def _latex(rows: list[TableRow], header: list[str]) -> str:
    lines = [f"% {line}" for line in header]
    for checkpoint in ("best", "final"):
        env_ids, agents, cells = _grid(rows, checkpoint)
        lines += [f"% checkpoint: {checkpoint}", r"\begin{tabular}{l" + "c" * len(env_ids) + "}", r"\toprule"]
        lines.append("Agent & " + " & ".join(id_label(e) for e in env_ids) + r" \\")
        lines.append(r"\midrule")
        for agent in agents:
            cell_text = []
            for env_id in env_ids:
                row = cells.get((agent, env_id))
                cell_text.append("--" if row is None else f"${row.mean:.1f} \\pm {row.std:.1f}$")
            lines.append(agent.replace("_", r"\_") + " & " + " & ".join(cell_text) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def write_reward_tables(runs_dir: str | Path, out_dir: str | Path, command: str,
                        config: dict[str, Any] | None = None, stem: str = "reward_table",
                        baseline: str | None = None, allow_partial: bool = False,
                        made: Collection[str] | None = None) -> list[Path]:
    """Write ``{stem}.csv``, ``.md`` and ``.tex`` into ``out_dir`` (atomically), from saved evaluations.

    Every evaluated run under ``runs_dir`` is tabulated. Differences are to ``baseline`` (see
    :func:`reward_table`). With ``allow_partial``, incomplete runs are left out and the header of every file
    names them; without it they are a ``ValueError``. The header has a ``Config`` line per agent: ``config``
    (``{agent: summary}``) for the agents it names, else the :func:`config_summary` of the configuration each
    run saved in its ``meta.json``, and a line with each agent's training time per run (the ``train_seconds``
    its runs saved: median and range). ``made`` names the runs ``command`` made (folder names); the header
    names the tabulated runs outside it, so a table is never read as that command's alone.
    """
    rows, missing, saved, cost, names = _reward_table(runs_dir, baseline, allow_partial)
    others = [] if made is None else sorted(set(names) - set(made))
    config = saved if config is None else {**config, **{k: v for k, v in saved.items() if k not in config}}
    header = _header_lines(command, config, rows, missing, cost, others)
    out_dir = Path(out_dir)
    return [
        atomic_write_text(out_dir / f"{stem}.csv", _csv(rows, header)),
        atomic_write_text(out_dir / f"{stem}.md", _markdown(rows, header)),
        atomic_write_text(out_dir / f"{stem}.tex", _latex(rows, header)),
    ]
