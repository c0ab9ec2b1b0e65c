"""SG(L) versus RT-MLMC(L), L = 2..8: samples per gradient, seconds per step, gradient variance and bias.

    nice -n 10 .venv/bin/python scripts/estimator_benchmark.py

Writes results/supervised/estimators/estimator_benchmark.{json,csv,md}.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from robustrl.supervised.estimator_benchmark import (
    EstimatorBenchConfig,
    run_estimator_benchmark,
    write_estimator_report,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/supervised/estimators")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table-only", action="store_true",
                        help="rebuild the CSV/Markdown from <out>/estimator_benchmark.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args_given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "scripts/estimator_benchmark.py", *args_given])
    if args.table_only:
        saved = json.loads(Path(args.out, "estimator_benchmark.json").read_text())
        command, result = saved.pop("command"), saved
    else:
        result = run_estimator_benchmark(EstimatorBenchConfig(seed=args.seed))
    print(write_estimator_report(result, args.out, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
