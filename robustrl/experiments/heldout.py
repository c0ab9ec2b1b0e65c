"""Held-out choices: a sweep's decision rule, written before its runs, applied to its saved results.

A hyperparameter, variant or baseline setting is chosen on training seeds the reward table does not use, by a
rule fixed before those runs. The rule's text lives in the sweep file's header; a *rule file*
(``robustrl/configs/rules/<sweep name>.yml``) states the same rule as data, so that applying it is a command
and not a judgement made after seeing the numbers::

    sweep: my-heldout                     # the sweep file's name
    score: mean                           # mean or min (the weakest condition) over the conditions
    conditions:                           # each a cell of the best checkpoint, averaged over the seeds:
      - {channel: pgd-linf}               #   a robustness-suite channel at every level it has ...
      - {channel: pgd-l2, level: 0.05}    #   ... or at one level (set statistics: channel set:NAME:worst)
      - {id: robustrl/AcrobotHeavyLowerLink-v1}  # an evaluation id of the sweep (eval.json, its episodes)
    nominal_at_least: 495                 # eligibility: mean nominal return of the best checkpoint
    tolerance: 2                          # settings within this many points of the best score tie ...
    prefer:                               # ... and ties go to the first by these keys, in order
      - {key: kappa, order: ascending}
      - {key: sa_loss, order: [sampled, pgd]}
    if_none_eligible: none                # none (no choice), highest (the highest score, marked as such) or
                                          # highest-nominal (the highest nominal mean; ties by prefer)
    reference: [{kappa: 0.01, sa_loss: pgd}]   # settings reported beside the winner (optional)
    also_report: [robustrl/AcrobotHeavyUpperLink-v1]  # ids shown and averaged, not scored (optional)
    incumbent:                            # the setting in use, chosen by an earlier sweep on the same seeds
      name: robust-sa (packaged)          # (optional): the chosen row of that sweep's choice.csv, rescored
      choice: results/sweeps/old/choice.csv  # by this rule; a winner replaces it only if it scores more than
                                          # `tolerance` above it (or it misses the nominal bar)

The evaluation ids are read from the runs' ``eval.json``; the suite channels from the
``robustness_table.csv`` that ``robustrl robustness --runs RUNS --out RESULTS`` writes for the sweep's runs.
:func:`apply_rule` scores every setting and picks the winner; :func:`write_choice` writes ``choice.md`` and
``choice.csv`` (``scripts/heldout_choice.py`` does both). A relative ``incumbent.choice`` path is read from the
working directory (the repository's root).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.checks import check_mapping, file_error, is_number, read_yaml
from robustrl.experiments.io import atomic_write_text, read_table_rows
from robustrl.experiments.records import read_evaluation
from robustrl.experiments.run_files import is_trained
from robustrl.experiments.sweep_spec import SweepSpec, format_value
from robustrl.experiments.tables import agent_label
from robustrl.tasks import id_label, task_of

__all__ = ["Choice", "Condition", "HeldoutRule", "apply_rule", "load_rule", "write_choice"]

#: How a setting's conditions are combined into its score.
SCORES = ("mean", "min")
#: What a rule does when no setting reaches the nominal bar.
NONE_ELIGIBLE = ("none", "highest", "highest-nominal")
_RULE_KEYS = ("sweep", "score", "conditions", "nominal_at_least", "tolerance", "prefer", "if_none_eligible",
              "reference", "also_report", "incumbent")


@dataclass(frozen=True)
class Condition:
    """One scored cell: an evaluation id of the sweep, or a robustness-suite channel at a level (every level when
    ``level`` is None; set statistics such as ``set:moderate:worst`` have none)."""

    id: str | None = None
    channel: str | None = None
    level: float | None = None

    @property
    def label(self) -> str:
        """How the condition is named in the choice's table."""
        if self.id is not None:
            return id_label(self.id)
        return self.channel if self.level is None else f"{self.channel} {self.level:g}"


@dataclass(frozen=True)
class HeldoutRule:
    """A sweep's decision rule as data (see the module docstring for the file format)."""

    sweep: str
    score: str
    conditions: tuple[Condition, ...]
    nominal_at_least: float | None = None
    tolerance: float = 0.0
    prefer: tuple[tuple[str, str | tuple[Any, ...]], ...] = ()
    if_none_eligible: str = "none"
    reference: tuple[dict[str, Any], ...] = ()
    also_report: tuple[str, ...] = ()
    incumbent: tuple[str, str] | None = None
    source: str = "<rule>"


@dataclass
class Choice:
    """The scored settings of a sweep (one dict per setting, in the sweep's order) and the winner's index (None
    when the rule chooses nothing, or keeps the incumbent), with the reason in words; ``incumbent`` is the rule's
    incumbent rescored (None without one)."""

    rule: HeldoutRule
    grid_keys: tuple[str, ...]
    rows: list[dict[str, Any]]
    winner: int | None
    reason: str
    incumbent: dict[str, Any] | None = None


def _number(source: str, path: str, value: Any) -> float:
    if not is_number(value) or not math.isfinite(float(value)):
        raise file_error(source, path, f"expected a finite number, got {value!r}")
    return float(value)


def load_rule(path: str | Path) -> HeldoutRule:
    """Read and check a rule file; ``ValueError`` naming the file, the key and the problem on one line."""
    source = str(path)
    if not Path(path).is_file():
        raise ValueError(f"rule file {source} does not exist")
    data = check_mapping(source, "", read_yaml(path), _RULE_KEYS)
    for key in ("sweep", "score", "conditions"):
        if key not in data:
            raise file_error(source, key, "missing")
    if not isinstance(data["sweep"], str) or not data["sweep"]:
        raise file_error(source, "sweep", f"expected the sweep's name, got {data['sweep']!r}")
    if data["score"] not in SCORES:
        raise file_error(source, "score", f"expected one of {', '.join(SCORES)}, got {data['score']!r}")
    if not isinstance(data["conditions"], list) or not data["conditions"]:
        raise file_error(source, "conditions", f"expected a non-empty list, got {data['conditions']!r}")
    conditions = []
    for i, item in enumerate(data["conditions"]):
        where = f"conditions[{i}]"
        item = check_mapping(source, where, item, ("id", "channel", "level"))
        if ("id" in item) == ("channel" in item):
            raise file_error(source, where, "give either id or channel")
        if "id" in item:
            if "level" in item:
                raise file_error(source, f"{where}.level", "an id has no level")
            if not isinstance(item["id"], str):
                raise file_error(source, f"{where}.id", f"expected an env id, got {item['id']!r}")
            conditions.append(Condition(id=item["id"]))
        else:
            if not isinstance(item["channel"], str) or not item["channel"]:
                raise file_error(source, f"{where}.channel", f"expected a channel name, got {item['channel']!r}")
            level = item.get("level")
            conditions.append(Condition(channel=item["channel"],
                                        level=None if level is None else _number(source, f"{where}.level", level)))
    if len(set(conditions)) != len(conditions):
        raise file_error(source, "conditions", "a condition is given twice")
    nominal = data.get("nominal_at_least")
    tolerance = _number(source, "tolerance", data.get("tolerance", 0.0))
    if tolerance < 0:
        raise file_error(source, "tolerance", f"expected a number >= 0, got {data['tolerance']!r}")
    prefer = []
    for i, item in enumerate(data.get("prefer") or []):
        where = f"prefer[{i}]"
        item = check_mapping(source, where, item, ("key", "order"))
        order = item.get("order")
        if not isinstance(item.get("key"), str):
            raise file_error(source, f"{where}.key", f"expected a grid key, got {item.get('key')!r}")
        if order not in ("ascending", "descending") and not (isinstance(order, list) and order):
            raise file_error(source, f"{where}.order",
                             f"expected ascending, descending or a list of values, got {order!r}")
        prefer.append((item["key"], tuple(order) if isinstance(order, list) else order))
    if data.get("if_none_eligible", "none") not in NONE_ELIGIBLE:
        raise file_error(source, "if_none_eligible",
                         f"expected one of {', '.join(NONE_ELIGIBLE)}, got {data['if_none_eligible']!r}")
    reference = data.get("reference") or []
    if not isinstance(reference, list) or not all(isinstance(r, dict) and r for r in reference):
        raise file_error(source, "reference", f"expected a list of settings (mappings), got {reference!r}")
    also = data.get("also_report") or []
    if not isinstance(also, list) or not all(isinstance(i, str) and i for i in also):
        raise file_error(source, "also_report", f"expected a list of env ids, got {also!r}")
    incumbent = None
    if "incumbent" in data:
        item = check_mapping(source, "incumbent", data["incumbent"], ("name", "choice"))
        for key in ("name", "choice"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise file_error(source, f"incumbent.{key}", f"expected a non-empty string, got {item.get(key)!r}")
        incumbent = (item["name"], item["choice"])
    return HeldoutRule(
        sweep=data["sweep"], score=data["score"], conditions=tuple(conditions),
        nominal_at_least=None if nominal is None else _number(source, "nominal_at_least", nominal),
        tolerance=tolerance, prefer=tuple(prefer), if_none_eligible=data.get("if_none_eligible", "none"),
        reference=tuple(reference), also_report=tuple(also), incumbent=incumbent, source=source)


def _incumbent(rule: HeldoutRule, columns: list[str]) -> dict[str, Any]:
    """The chosen row of the incumbent's ``choice.csv``, rescored by ``rule`` over ``columns`` (this sweep's
    condition labels); ``ValueError`` if the file is missing, has no single chosen row, or lacks a column."""
    assert rule.incumbent is not None
    name, path = rule.incumbent
    rows = read_table_rows(path, f"the incumbent's held-out choice ({rule.source}: incumbent.choice)")
    chosen = [row for row in rows if row.get("chosen") == "True"]
    if len(chosen) != 1:
        raise ValueError(f"{path}: expected one chosen row for the incumbent, found {len(chosen)}")
    row = chosen[0]
    missing = [c for c in ["nominal", "seeds", *columns] if c not in row]
    if missing:
        raise ValueError(f"{path} has no column {', '.join(repr(c) for c in missing)}: the incumbent must have been "
                         f"scored on the same conditions as {rule.sweep}")
    values = {c: float(row[c]) for c in columns}
    score = float(np.mean(list(values.values()))) if rule.score == "mean" else float(np.min(list(values.values())))
    nominal = float(row["nominal"])
    return {"name": name, "source": path, "seeds": int(row["seeds"]), "nominal": nominal, "values": values,
            "score": score, "eligible": rule.nominal_at_least is None or nominal >= rule.nominal_at_least}


def _suite_cells(results_dir: Path) -> dict[tuple[str, str], dict[float | None, tuple[float, int]]]:
    """``{(agent label, channel): {level: (mean over seeds, seeds)}}`` of the best checkpoint in
    ``robustness_table.csv``."""
    rows = read_table_rows(results_dir / "robustness_table.csv",
                           f"run `robustrl robustness --runs RUNS --out {results_dir}` first")
    cells: dict[tuple[str, str], dict[float | None, tuple[float, int]]] = {}
    for row in rows:
        if row["checkpoint"] == "best":
            level = float(row["level"]) if row["level"] else None
            cells.setdefault((row["agent"], row["channel"]), {})[level] = (float(row["mean"]), int(row["seeds"]))
    return cells


def _best_mean(returns: list[dict[str, Any]], env_id: str) -> float:
    """The mean over runs of each run's mean return on ``env_id`` at the best checkpoint (NaN for no run)."""
    return float(np.mean([np.mean(r[env_id]["best"]) for r in returns])) if returns else math.nan


def _same(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b):
        return math.isclose(float(a), float(b), rel_tol=1e-12)
    return a == b


def _preference(rule: HeldoutRule, row: dict[str, Any]) -> tuple[Any, ...]:
    key: list[Any] = []
    for name, order in rule.prefer:
        value = row["setting"].get(name)
        if order == "ascending":
            key.append(float(value))
        elif order == "descending":
            key.append(-float(value))
        else:
            ranks = [i for i, v in enumerate(order) if _same(v, value)]
            key.append(ranks[0] if ranks else len(order))
    return tuple(key)


def apply_rule(rule: HeldoutRule, spec: SweepSpec, runs_dir: str | Path, results_dir: str | Path,
               allow_partial: bool = False) -> Choice:
    """Score every setting of ``spec``'s sweep by ``rule`` and choose.

    Reads the runs' ``eval.json`` under ``runs_dir`` and ``results_dir/robustness_table.csv``. Every setting
    needs every seed of the sweep, evaluated and in the suite's table, unless ``allow_partial`` (the rows then
    say how many seeds they hold and no winner is named: a rule applies to the whole sweep). ``ValueError`` for
    a rule of another sweep, a key the grid lacks, or a condition the results do not hold.
    """
    if rule.sweep != spec.name:
        raise ValueError(f"{rule.source} is the rule of sweep {rule.sweep!r}, not of {spec.name!r}")
    for name, _ in rule.prefer:
        if name not in spec.grid:
            raise ValueError(f"{rule.source}: prefer: {name!r} is not a grid key of {spec.name} "
                             f"({', '.join(spec.grid) or 'no grid'})")
    for setting in rule.reference:
        if set(setting) != set(spec.grid):
            raise ValueError(f"{rule.source}: reference {setting!r} must give every grid key ({', '.join(spec.grid)})")
    nominal = task_of(spec.env_id).nominal_id
    for env_id in [c.id for c in rule.conditions if c.id is not None] + list(rule.also_report):
        if env_id not in spec.eval_ids:
            raise ValueError(f"{rule.source}: id {env_id} is not evaluated by {spec.name} ({', '.join(spec.eval_ids)})")
    cells = _suite_cells(Path(results_dir)) if any(c.channel for c in rule.conditions) else {}
    groups: dict[tuple[str, str], list[Any]] = {}
    for task in spec.tasks(runs_dir):
        groups.setdefault((task.spec.agent, task.spec.tag), []).append(task)
    rows, incomplete = [], []
    for (agent, tag), tasks in groups.items():
        done = [t for t in tasks if is_trained(t.run_dir) and (t.run_dir / "eval.json").is_file()]
        label = agent_label(agent, tag)
        returns = [read_evaluation(t.run_dir)["returns"] for t in done]
        values: dict[str, float] = {}
        seeds = {"runs": len(done)}
        for condition in rule.conditions:
            if condition.id is not None:
                values[condition.label] = _best_mean(returns, condition.id)
                continue
            by_level = cells.get((label, condition.channel))
            if by_level is None:
                if done and not allow_partial:
                    raise ValueError(f"{Path(results_dir) / 'robustness_table.csv'} has no {condition.channel} "
                                     f"for {label}: run `robustrl robustness` on the sweep's runs")
                seen = {lv for (_, channel), levels in cells.items() if channel == condition.channel for lv in levels}
                by_level = {lv: (math.nan, 0) for lv in seen or {condition.level}}
            levels = sorted(lv for lv in by_level if lv is not None) or [None]
            if condition.level is not None:
                matches = [lv for lv in levels if lv is not None and _same(lv, condition.level)]
                if not matches and done:
                    raise ValueError(f"{Path(results_dir) / 'robustness_table.csv'}: {condition.channel} has no "
                                     f"level {condition.level:g} (it has {', '.join(f'{lv:g}' for lv in levels)})")
                levels = matches or [condition.level]
            for level in levels:
                mean, n = by_level.get(level, (math.nan, 0))
                name = Condition(channel=condition.channel, level=level).label
                values[name] = mean
                seeds[name] = n
        nominal_mean = _best_mean(returns, nominal)
        reported = {id_label(i): _best_mean(returns, i) for i in rule.also_report}
        if reported:
            reported["mean of these"] = float(np.mean(list(reported.values())))
        names = list(values)
        score = (float(np.mean([values[n] for n in names])) if rule.score == "mean"
                 else float(np.min([values[n] for n in names])))
        complete = len(done) == len(tasks) and all(n == len(tasks) for n in seeds.values())
        if not complete:
            incomplete.append(label)
        rows.append({"label": label, "agent": agent, "setting": {k: tasks[0].setting.get(k) for k in spec.grid},
                     "seeds": len(done), "of": len(tasks), "complete": complete, "nominal": nominal_mean,
                     "values": values, "score": score, "reported": reported,
                     "eligible": rule.nominal_at_least is None or nominal_mean >= rule.nominal_at_least,
                     "reference": any(all(_same(setting[k], tasks[0].setting.get(k)) for k in spec.grid)
                                      for setting in rule.reference)})
    if incomplete and not allow_partial:
        raise ValueError(f"settings without every seed evaluated and in the suite's table: {', '.join(incomplete)} "
                         "(pass allow_partial / --allow-partial to see the rows so far; no winner is named)")
    if incomplete:
        return Choice(rule, tuple(spec.grid), rows, None,
                      f"no choice: {len(incomplete)} setting(s) are incomplete, and the rule applies to the whole sweep")
    incumbent = _incumbent(rule, list(rows[0]["values"])) if rule.incumbent and rows else None
    winner, reason = _choose(rule, rows)
    if incumbent is not None:
        winner, reason = _against_incumbent(rule, rows, winner, reason, incumbent)
    return Choice(rule, tuple(spec.grid), rows, winner, reason, incumbent)


def _against_incumbent(rule: HeldoutRule, rows: list[dict[str, Any]], winner: int | None, reason: str,
                       incumbent: dict[str, Any]) -> tuple[int | None, str]:
    """The sweep's winner replaces the incumbent if it reaches the nominal bar the incumbent misses, or if both
    are on the same side of that bar and the sweep's highest score there is more than the tolerance above the
    incumbent's."""
    name, score = incumbent["name"], incumbent["score"]
    if winner is None:
        return None, f"{reason}; the incumbent {name} stays"
    best = rows[winner]
    if not best["eligible"] and incumbent["eligible"]:
        return None, f"{reason}; the incumbent {name} stays: it reaches the nominal bar and the sweep's best does not"
    top = max(row["score"] for row in rows if row["eligible"] or not best["eligible"])
    if incumbent["eligible"] == best["eligible"] and top <= score + rule.tolerance:
        among = " among its eligible settings" if best["eligible"] else ""
        return None, (f"the incumbent {name} stays: the sweep's highest score{among}, {top:.1f}, is not more than "
                      f"{rule.tolerance:g} points above the incumbent's {score:.1f}")
    return winner, f"{reason}; above the incumbent {name}'s {score:.1f}" + (
        "" if incumbent["eligible"] else f" (which misses the nominal bar, {incumbent['nominal']:.1f})")


def _choose(rule: HeldoutRule, rows: list[dict[str, Any]]) -> tuple[int | None, str]:
    candidates = [i for i, row in enumerate(rows) if row["eligible"]]
    nominal = "" if rule.nominal_at_least is None else f"nominal >= {rule.nominal_at_least:g}"
    bar = f" among the settings with {nominal}" if nominal else ""
    if not candidates:
        if rule.if_none_eligible == "none":
            return None, f"no choice: no setting has {nominal}, and the rule names none in that case"
        if rule.if_none_eligible == "highest-nominal":
            winner = min(range(len(rows)), key=lambda i: (-rows[i]["nominal"], _preference(rule, rows[i]), i))
            return winner, (f"no setting has {nominal}, so the rule takes the highest nominal mean, "
                            f"{rows[winner]['nominal']:.1f}")
        candidates = list(range(len(rows)))
        bar = f"; no setting has {nominal}, so the rule takes the highest score among all"
    best = max(rows[i]["score"] for i in candidates)
    tied = [i for i in candidates if rows[i]["score"] >= best - rule.tolerance]
    winner = min(tied, key=lambda i: (_preference(rule, rows[i]), -rows[i]["score"], i))
    how = f"highest {rule.score} score {best:.1f}{bar}"
    if len(tied) > 1:
        order = ", then ".join(f"{k} {o if isinstance(o, str) else 'in the order ' + '/'.join(map(str, o))}"
                               for k, o in rule.prefer) or "the higher score"
        how += f"; {len(tied)} settings within {rule.tolerance:g} points of it, broken by {order}"
    return winner, how


def _cell(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f}"


def write_choice(choice: Choice, out_dir: str | Path, command: str) -> list[Path]:
    """Write ``choice.md`` (the table, the winner and why) and ``choice.csv`` into ``out_dir``."""
    out_dir = Path(out_dir)
    columns = list(dict.fromkeys(c for row in choice.rows for c in row["values"]))
    rule = choice.rule
    lines = [f"# Held-out choice: sweep `{rule.sweep}`", "", f"Generated by: `{command}`", "",
             f"Rule: `{rule.source}` (its text is in the sweep file's header, committed before the runs). Score: the "
             f"{'mean' if rule.score == 'mean' else 'weakest (min)'} of the conditions below, each the mean over seeds "
             f"of the best checkpoint"
             + ("" if rule.nominal_at_least is None else
                f"; eligible: nominal mean >= {rule.nominal_at_least:g}") + f"; tie tolerance {rule.tolerance:g}.", ""]
    also = list(choice.rows[0]["reported"]) if choice.rows else []
    header = ["agent", *choice.grid_keys, "seeds", "nominal", *columns, "score", "eligible",
              *(f"{c} (not scored)" for c in also), ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    records = []
    if choice.incumbent is not None:
        inc = choice.incumbent
        lines.append("| " + " | ".join([
            f"{inc['name']} (incumbent)", *("–" for _ in choice.grid_keys), str(inc["seeds"]), _cell(inc["nominal"]),
            *(_cell(inc["values"].get(c, math.nan)) for c in columns), _cell(inc["score"]),
            "yes" if inc["eligible"] else "no", *("–" for _ in also),
            "**kept**" if choice.winner is None else "incumbent"]) + " |")
    for i, row in enumerate(choice.rows):
        mark = "**chosen**" if i == choice.winner else ("reference" if row["reference"] else "")
        lines.append("| " + " | ".join([
            row["agent"], *(format_value(row["setting"][k]) for k in choice.grid_keys), f"{row['seeds']}/{row['of']}",
            _cell(row["nominal"]), *(_cell(row["values"].get(c, math.nan)) for c in columns), _cell(row["score"]),
            "yes" if row["eligible"] else "no", *(_cell(row["reported"][c]) for c in also), mark]) + " |")
        records.append({"agent": row["agent"], **{k: row["setting"][k] for k in choice.grid_keys},
                        "seeds": row["seeds"], "nominal": round(row["nominal"], 3),
                        **{c: round(row["values"].get(c, math.nan), 3) for c in columns}, "score": round(row["score"], 3),
                        "eligible": row["eligible"], **{f"{c} (not scored)": round(row["reported"][c], 3) for c in also},
                        "chosen": i == choice.winner})
    if choice.incumbent is not None:
        lines += ["", f"The incumbent's row is the chosen row of `{choice.incumbent['source']}`, rescored by this rule."]
    if choice.winner is None:
        lines += ["", f"**{choice.reason}.**"]
    else:
        row = choice.rows[choice.winner]
        setting = ", ".join(f"{k} {format_value(v)}" for k, v in row["setting"].items())
        lines += ["", f"**Chosen: {row['agent']} with {setting}** ({choice.reason})."]
        for ref in (r for r in choice.rows if r["reference"] and r is not row):
            reported = "".join(f", {c} (not scored) {ref['reported'][c]:.1f} against {row['reported'][c]:.1f}"
                               for c in also)
            lines.append(f"Reference {', '.join(f'{k} {format_value(v)}' for k, v in ref['setting'].items())}: score "
                         f"{ref['score']:.1f} against {row['score']:.1f}, nominal {ref['nominal']:.1f} against "
                         f"{row['nominal']:.1f}{reported}.")
    buffer = io.StringIO()
    if records:
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return [atomic_write_text(out_dir / "choice.md", "\n".join(lines) + "\n"),
            atomic_write_text(out_dir / "choice.csv", buffer.getvalue())]
