"""Adopt finished sweep runs as reward-table runs, when they are the very computation the table would do.

A sweep run ``{env}__{agent}-{tag}__{seed}`` whose saved configuration equals what the packaged config
gives for ``{agent}`` (as ``robustrl reproduce`` resolves it) is copied to ``OUT/{env}__{agent}__{seed}``:
training is deterministic for a seed, so retraining it would give the same weights. ``meta.json`` gets
``run`` and ``tag`` of the table run and a ``copied_from`` record (source run and its command); nothing
else changes but, with ``--agent``, the agent label. A run whose configuration differs is refused with the differing keys named, and an existing
table run is never overwritten. ``robustrl reproduce`` later checks every run's configuration again.
``--agent A`` adopts runs as the table's agent ``A`` instead of their own (e.g. robust-hard runs as
``robust`` once the packaged robust agent has robust-hard's settings); the configurations must still be equal.

Usage: python scripts/adopt_sweep_runs.py SWEEP_RUNS_DIR [--out results/runs] [--agent A] [--dry-run]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from robustrl.agents import AgentConfig, load_config
from robustrl.experiments.io import atomic_write_json, read_json
from robustrl.experiments.training import RunSpec, jsonable

FILES = ("best.zip", "final.zip", "curve.csv", "eval.json", "robustness.json", "surfaces.json")


def _differences(saved: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(saved) | set(wanted))
    out = []
    for key in keys:
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: run has {a!r}, the table config {b!r}")
    return out


def adopt(source: Path, out: Path, config: dict[str, Any], dry_run: bool = False,
          agent: str | None = None) -> Path:
    """Copy one complete sweep run to ``out`` under its table name (as ``agent``, default its own);
    ``ValueError`` if it is not the same run."""
    meta = read_json(source / "meta.json")
    spec = RunSpec(agent or meta["agent"], int(meta["seed"]), meta["env_id"])
    wanted = jsonable(AgentConfig.resolve(config, spec.env_id, spec.agent, {}).to_dict())
    # The agent's label is only a name (training never reads it), so a run may be adopted under another.
    saved = {**meta["config"], "agent": spec.agent}
    differences = _differences(saved, wanted)
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
    for name in FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, tmp / name)
    copied_from = {"run": meta["run"], "command": meta.get("command"), "script": "scripts/adopt_sweep_runs.py"}
    atomic_write_json(tmp / "meta.json", {**meta, "run": spec.name, "agent": spec.agent, "tag": "", "config": saved,
                                          "copied_from": {**copied_from, "agent": meta["agent"]}})
    tmp.rename(target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_runs", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/runs"))
    parser.add_argument("--config", default=None, help="config YAML (default: the packaged configs/dqn.yml)")
    parser.add_argument("--agent", default=None, help="adopt as this table agent (default: each run's own)")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    config = load_config(args.config)
    sources = sorted(p.parent for p in args.sweep_runs.glob("*/meta.json"))
    if not sources:
        print(f"error: no complete runs in {args.sweep_runs}", file=sys.stderr)
        return 2
    errors = 0
    for source in sources:
        try:
            target = adopt(source, args.out, config, args.dry_run, args.agent)
            print(f"{source.name} -> {target}")
        except ValueError as exc:
            errors += 1
            print(f"error: {exc}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
