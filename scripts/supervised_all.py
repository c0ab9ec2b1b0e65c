"""Rebuild every supervised result under results/supervised/, one job after another (1 torch thread).

    nice -n 10 .venv/bin/python scripts/supervised_all.py            # everything (about 1.5 hours, 1 thread)
    nice -n 10 .venv/bin/python scripts/supervised_all.py --quick    # skip the Fashion-MNIST benchmarks

Order: exact logistic regression, worst-case figure and regularization check, estimator benchmark, digits
benchmark, digits Entropic-AT ablation, Fashion-MNIST benchmarks (l-inf-trained and l2-trained). Benchmarks reuse existing run records
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
    parser.add_argument("--quick", action="store_true", help="skip the Fashion-MNIST benchmarks")
    args = parser.parse_args(argv)
    _script("supervised_logistic").main([])
    _script("supervised_worst_case").main([])
    _script("estimator_benchmark").main([])
    presets = ["digits", "digits-entropic-ablation"]
    presets += [] if args.quick else ["fashion-mnist", "fashion-mnist-l2"]
    for preset in presets:
        if robustrl(["supervised", "benchmark", "--preset", preset, "--no-progress"]):
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
