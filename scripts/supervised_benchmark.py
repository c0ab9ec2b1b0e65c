"""Run an accuracy-under-attack benchmark preset and rebuild its tables and plot.

    nice -n 10 .venv/bin/python scripts/supervised_benchmark.py --preset digits
    nice -n 10 .venv/bin/python scripts/supervised_benchmark.py --preset fashion-mnist

Writes results/supervised/<preset>/records/*.json (one record per method and seed; existing records with the
same configuration are reused), then table.csv, table.md and accuracy_vs_budget.png from those records.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch

from robustrl.supervised.benchmark import (
    PRESETS,
    RECORDS_DIR,
    load_runs,
    preset,
    run_benchmark,
    write_benchmark_tables,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="digits")
    parser.add_argument("--out", default=None, help="output directory (default results/supervised/<preset>)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--table-only", action="store_true", help="rebuild tables from existing run records")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config = preset(args.preset, seeds=args.seeds)
    out = args.out or f"results/supervised/{args.preset}"
    args_given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "scripts/supervised_benchmark.py", *args_given])
    if not args.table_only:
        run_benchmark(config, out, command=command, progress=not args.no_progress)
    write_benchmark_tables(load_runs(f"{out}/{RECORDS_DIR}"), out, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
