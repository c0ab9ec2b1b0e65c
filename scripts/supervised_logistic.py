"""Exact adversarial logistic regression, class 0 versus class 1: test error under exact ℓ∞, ℓ2, ℓ1 attacks.

    .venv/bin/python scripts/supervised_logistic.py

Standard (eps = 0) and adversarially trained (closed-form inner maximum: eps times the dual norm of theta,
``||theta||_1`` for ℓ∞, ``||theta||_2`` for ℓ2, ``||theta||_inf`` for ℓ1) models on digits 0-vs-1 and on
Fashion-MNIST 0-vs-1 (T-shirt/top vs trouser, skipped if the Debian package is missing); SGD lr 1,
batch 100, 10 epochs, zero init (the Kolter-Madry tutorial's setup) for every norm. Each model is attacked
by the exact worst case of its norm (unclamped and within [0, 1]) and, in a cross-norm table, by the exact
[0, 1]-clipped attack of every norm and budget. Writes results/supervised/logistic/table.{csv,md},
cross_norm.csv and one JSON record of all numbers.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch

from robustrl.supervised.linear_report import logistic_report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/supervised/logistic")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    args_given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "scripts/supervised_logistic.py", *args_given])
    print(logistic_report(args.out, seeds=args.seeds, command=command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
