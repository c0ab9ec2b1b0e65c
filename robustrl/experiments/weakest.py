"""Every agent's weakest condition, and one agent against the best of the others on each condition.

A held-out rule (:mod:`robustrl.experiments.heldout`) scores a sweep's settings by their weakest condition; this
module scores the *table's* agents the same way, from the tables ``robustrl reproduce`` and ``robustrl robustness``
write (``reward_table.csv``: the perturbed ids; ``robustness_table.csv``: the suite's cells; best checkpoints,
means over seeds with their bootstrap CIs).

On a task other than the one a rule was written for, the rule's perturbed ids are replaced by the task's own
(:func:`task_conditions`): the suite's channels are defined in the task's state units and keep their levels.

:func:`compare_with_best` answers "is agent A, robust on every channel at once, as good as the best single-channel
agent on each condition?" by a rule fixed in code: on each condition the best other agent is the one with the
highest mean, and A *holds* when that mean is at most the upper end of A's CI (A is not below the best by more than
its own CI).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from robustrl.experiments.heldout import Condition, HeldoutRule
from robustrl.experiments.io import read_table_rows
from robustrl.tasks import Task, get_task, id_label

__all__ = ["Cell", "compare_with_best", "condition_cells", "task_conditions", "weakest_lines"]


@dataclass(frozen=True)
class Cell:
    """One agent's mean on one condition over seeds, with its CI (bootstrap, as in the tables)."""

    mean: float
    ci_low: float
    ci_high: float


def task_conditions(rule: HeldoutRule, task: Task | str | None = None) -> tuple[Condition, ...]:
    """The rule's conditions on ``task``: unchanged when every id of the rule is one of the task's; otherwise its
    ids are replaced, in place of the first one, by the task's perturbed ids (every id but the nominal one)."""
    task = get_task(task)
    ids = [c.id for c in rule.conditions if c.id is not None]
    if all(i in task.labels for i in ids):
        return rule.conditions
    own = [Condition(id=i) for i in task.labels if i != task.nominal_id]
    out: list[Condition] = []
    for condition in rule.conditions:
        if condition.id is None:
            out.append(condition)
        elif not any(c.id is not None for c in out):
            out.extend(own)
    return tuple(out)


def _rows(path: Path) -> list[dict[str, str]]:
    return read_table_rows(path, "run `robustrl reproduce` and `robustrl robustness` first")


def _cell(row: dict[str, str]) -> Cell:
    return Cell(float(row["mean"]), float(row["ci_low"]), float(row["ci_high"]))


def condition_cells(results_dir: str | Path, conditions: tuple[Condition, ...], task: Task | str | None = None,
                    ) -> tuple[list[str], dict[str, dict[str, Cell]]]:
    """``(labels, cells)``: the label of the nominal id and of each condition, and per agent of the reward table
    its :class:`Cell` on each (best checkpoints). A condition an agent lacks is absent from its mapping.

    :raises ValueError: naming the missing table, or a suite channel with several levels given without one.
    """
    task = get_task(task)
    results = Path(results_dir)
    rewards = {(r["agent"], r["env_id"]): _cell(r) for r in _rows(results / "reward_table.csv")
               if r["checkpoint"] == "best"}
    suite = {(r["agent"], r["channel"], float(r["level"]) if r["level"] else None): _cell(r)
             for r in _rows(results / "robustness_table.csv") if r["checkpoint"] == "best"}
    nominal = f"nominal ({id_label(task.nominal_id)})"
    labels = [nominal] + [c.label for c in conditions]
    agents = sorted({agent for agent, _ in rewards}, key=lambda a: (a != "regular", a))
    cells: dict[str, dict[str, Cell]] = {}
    for agent in agents:
        mine = {}
        if (agent, task.nominal_id) in rewards:
            mine[nominal] = rewards[(agent, task.nominal_id)]
        for condition in conditions:
            found = (rewards.get((agent, condition.id)) if condition.id is not None
                     else suite.get((agent, condition.channel, condition.level)))
            if found is not None:
                mine[condition.label] = found
        cells[agent] = mine
    return labels, cells


def compare_with_best(cells: dict[str, dict[str, Cell]], agent: str, labels: list[str]) -> list[dict[str, object]]:
    """Per label, ``agent``'s cell against the best other agent's (highest mean): ``best`` (its name), ``gap``
    (best mean minus agent's mean) and ``holds`` (the best mean is at most the upper end of the agent's CI).

    :raises ValueError: naming the agent when it is not in ``cells`` or no other agent is.
    """
    if agent not in cells:
        raise ValueError(f"agent {agent!r} is not in the tables (agents: {', '.join(sorted(cells))})")
    others = [a for a in cells if a != agent]
    if not others:
        raise ValueError(f"no agent beside {agent!r} to compare with")
    rows = []
    for label in labels:
        mine = cells[agent].get(label)
        present = [a for a in others if label in cells[a]]
        if mine is None or not present:
            rows.append(dict(label=label, cell=mine, best=None, best_cell=None, gap=math.nan, holds=None))
            continue
        best = max(present, key=lambda a: cells[a][label].mean)
        top = cells[best][label]
        rows.append(dict(label=label, cell=mine, best=best, best_cell=top, gap=top.mean - mine.mean,
                         holds=top.mean <= mine.ci_high))
    return rows


def weakest_lines(labels: list[str], cells: dict[str, dict[str, Cell]], compare: str | None = None,
                  ) -> list[str]:
    """Markdown: every agent's cells and weakest condition (the nominal id not counted), then, with ``compare``,
    that agent against the best other agent per condition and the verdict over the conditions."""
    scored = labels[1:]
    lines = ["| agent | " + " | ".join(labels) + " | weakest |", "|---|" + "---|" * (len(labels) + 1)]
    for agent, mine in cells.items():
        values = [mine[label].mean if label in mine else math.nan for label in labels]
        present = [(v, label) for v, label in zip(values[1:], scored) if not math.isnan(v)]
        weakest = f"**{min(present)[0]:.1f}** ({min(present)[1]})" if present else "–"
        lines.append(f"| {agent} | " + " | ".join("–" if math.isnan(v) else f"{v:.1f}" for v in values)
                     + f" | {weakest} |")
    if compare is None:
        return lines
    rows = compare_with_best(cells, compare, labels)
    lines += ["", f"## {compare} against the best other agent on each condition", "",
              f"The best other agent is the one with the highest mean; {compare} holds where that mean is at most the "
              f"upper end of {compare}'s 95 % CI (not below the best by more than its CI).", "",
              f"| condition | {compare} [CI] | best other agent | its mean [CI] | gap | holds |",
              "|---|---|---|---|---|---|"]
    for row in rows:
        cell, top = row["cell"], row["best_cell"]
        mine = "–" if cell is None else f"{cell.mean:.1f} [{cell.ci_low:.1f}, {cell.ci_high:.1f}]"
        theirs = "–" if top is None else f"{top.mean:.1f} [{top.ci_low:.1f}, {top.ci_high:.1f}]"
        holds = "–" if row["holds"] is None else ("yes" if row["holds"] else "**no**")
        gap = "–" if math.isnan(row["gap"]) else f"{row['gap']:+.1f}"
        lines.append(f"| {row['label']} | {mine} | {row['best'] or '–'} | {theirs} | {gap} | {holds} |")
    judged = [r for r in rows if r["label"] in scored]
    failed = [r["label"] for r in judged if r["holds"] is False]
    missing = [r["label"] for r in judged if r["holds"] is None]
    held = len(judged) - len(failed) - len(missing)
    lines += ["", f"**{compare} holds on {held} of {len(judged)} conditions**"
              + (f"; not on: {', '.join(failed)}" if failed else "")
              + (f"; not in the tables yet: {', '.join(missing)}" if missing else "")
              + ". The nominal row is shown, not counted."]
    return lines
