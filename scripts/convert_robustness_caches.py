"""Convert the robustness caches of run folders to the one-cache layout (numbers copied as they are).

Earlier runs cached the reward table's robustness curves in ``robustness.json`` and the robustness
surfaces in ``surfaces.json``, one request each. Both now live in one ``robustness.json`` per run
(:mod:`robustrl.experiments.curves`). Rerunnable: converted runs are left alone.

Usage: python scripts/convert_robustness_caches.py RUNS_DIR [RUNS_DIR ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustrl.experiments.curves import convert_cache
from robustrl.experiments.records import complete_runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dirs", nargs="+", type=Path, help="folders of run folders (e.g. results/runs)")
    args = parser.parse_args(argv)
    for runs_dir in args.runs_dirs:
        run_dirs = complete_runs(runs_dir)
        converted = [run_dir.name for run_dir in run_dirs if convert_cache(run_dir)]
        print(f"{runs_dir}: {len(converted)} of {len(run_dirs)} run(s) converted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
