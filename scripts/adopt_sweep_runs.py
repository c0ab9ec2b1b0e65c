"""Adopt finished sweep runs as reward-table runs (see :mod:`robustrl.experiments.adopt` for the rules).

Usage: python scripts/adopt_sweep_runs.py SWEEP_RUNS_DIR [--out results/runs] [--agent A] [--dry-run]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustrl.agents import load_config
from robustrl.experiments.adopt import adopt_run
from robustrl.experiments.records import complete_runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_runs", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/runs"))
    parser.add_argument("--config", default=None, help="config YAML (default: the packaged configs/dqn.yml)")
    parser.add_argument("--agent", default=None, help="adopt as this table agent (default: each run's own)")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    config = load_config(args.config)
    try:
        sources = complete_runs(args.sweep_runs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    errors = 0
    for source in sources:
        try:
            print(f"{source.name} -> {adopt_run(source, args.out, config, args.dry_run, args.agent)}")
        except ValueError as exc:
            errors += 1
            print(f"error: {exc}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
