"""Adopt finished sweep runs as reward-table runs, when they are the very computation the table would do.

A sweep run ``{env}__{agent}-{tag}__{seed}`` whose saved configuration equals what the packaged config
gives for ``{agent}`` (as ``robustrl reproduce`` resolves it) is copied to ``OUT/{env}__{agent}__{seed}``:
training is deterministic for a seed, so retraining it would give the same weights. ``meta.json`` gets
``run`` and ``tag`` of the table run and a ``copied_from`` record (source run and its command), and the
run's JSON records (its evaluation and the caches of its robustness curves, suite and uncertainty sets, each
keyed by the model's checksum, so a weightless run keeps them) get the table run's name; nothing else changes
but, with ``agent``, the agent label. A run whose configuration differs is refused with the differing keys
named, and an existing table run is never overwritten. ``robustrl reproduce`` later checks
every run's configuration again. ``agent="robust"`` adopts runs as the table's agent ``robust`` instead of
their own (e.g. robust-hard runs once the packaged robust agent has robust-hard's settings); the
configurations must still be equal. The command line is ``python scripts/adopt_sweep_runs.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from robustrl.agents import AgentConfig
from robustrl.experiments.curves import CACHE_NAME
from robustrl.experiments.io import atomic_write_json, read_json
from robustrl.experiments.suite import SUITE_CACHE
from robustrl.experiments.training import TARGET_STATS, RunSpec, jsonable
from robustrl.experiments.uncertainty import UNCERTAINTY_CACHE

__all__ = ["ADOPTED_FILES", "NAMED_RECORDS", "adopt_run", "config_differences"]

#: The JSON records of a run that name it (``"run"``): adoption renames them to the table run.
NAMED_RECORDS = ("eval.json", CACHE_NAME, SUITE_CACHE, UNCERTAINTY_CACHE)
#: The files of a run that adoption copies (``meta.json`` is rewritten, not copied).
ADOPTED_FILES = ("best.pt", "final.pt", "best.zip", "final.zip", "curve.csv", TARGET_STATS, *NAMED_RECORDS)


def config_differences(saved: dict[str, Any], wanted: dict[str, Any],
                       sides: tuple[str, str] = ("run", "the table config"), prefix: str = "") -> list[str]:
    """Every key path where two nested configurations differ, as ``"key.path: run has A, the table config B"``
    (``sides`` names the two configurations)."""
    out = []
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, sides, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {sides[0]} has {a!r}, {sides[1]} {b!r}")
    return out


def adopt_run(source: Path, out: Path, config: dict[str, Any], dry_run: bool = False,
              agent: str | None = None) -> Path:
    """Copy one complete sweep run to ``out`` under its table name (as ``agent``, default its own).

    ``ValueError`` naming the differing keys if it is not the same run, or if the table run exists.
    Returns the table run's folder (not written with ``dry_run``).
    """
    source, out = Path(source), Path(out)
    meta = read_json(source / "meta.json")
    spec = RunSpec(agent or meta["agent"], int(meta["seed"]), meta["env_id"])
    wanted = jsonable(AgentConfig.resolve(config, spec.env_id, spec.agent, {}).to_dict())
    # The agent's label is only a name (training never reads it), so a run may be adopted under another.
    saved = {**meta["config"], "agent": spec.agent}
    differences = config_differences(saved, wanted)
    if differences:
        raise ValueError(f"{source.name} is not the table's {spec.agent} run: " + "; ".join(differences))
    target = out / spec.name
    if target.exists():
        raise ValueError(f"{target} exists; remove it first to replace it")
    if dry_run:
        return target
    tmp = out / f".{spec.name}.adopt.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name in ADOPTED_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, tmp / name)
    for name in NAMED_RECORDS:
        record = read_json(tmp / name) if (tmp / name).is_file() else None
        if isinstance(record, dict) and "run" in record:
            atomic_write_json(tmp / name, {**record, "run": spec.name})
    copied_from = {"run": meta["run"], "command": meta.get("command"), "script": "scripts/adopt_sweep_runs.py"}
    atomic_write_json(tmp / "meta.json", {**meta, "run": spec.name, "agent": spec.agent, "tag": "", "config": saved,
                                          "copied_from": {**copied_from, "agent": meta["agent"]}})
    tmp.rename(target)
    return target
