"""Rebuild every supervised result under results/supervised/, one job after another (1 torch thread).

    nice -n 10 .venv/bin/python scripts/supervised_all.py            # everything (about 1 hour on 2 cores: Fashion-MNIST 43 min, digits 10 min)
    nice -n 10 .venv/bin/python scripts/supervised_all.py --quick    # skip the Fashion-MNIST benchmark

Order: exact logistic regression, worst-case figure and regularization check, estimator benchmark, digits
benchmark, Fashion-MNIST benchmark (each benchmark with --jobs 2). Benchmarks reuse existing run records
with the same configuration; delete results/supervised/<preset>/records to recompute them.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from robustrl.cli import main as robustrl

SCRIPTS = Path(__file__).resolve().parent


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the Fashion-MNIST benchmark")
    parser.add_argument("--jobs", type=int, default=2, help="benchmark worker processes (default 2)")
    args = parser.parse_args(argv)
    _script("supervised_logistic").main([])
    _script("supervised_worst_case").main([])
    _script("estimator_benchmark").main([])
    presets = ["digits"] + ([] if args.quick else ["fashion-mnist"])
    for preset in presets:
        if robustrl(["supervised", "benchmark", "--preset", preset, "--out", f"results/supervised/{preset}",
                     "--jobs", str(args.jobs), "--no-progress"]):
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
