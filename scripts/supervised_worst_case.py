"""Worst-case distribution figure (quadratic loss, data at 0, rho = 3) and the regularization-effect check.

    .venv/bin/python scripts/supervised_worst_case.py

Writes results/supervised/worst_case/{worst_case_1d.png, regularization_check.{json,csv,md}}.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from robustrl.supervised.worst_case import regularization_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/supervised/worst_case")
    args = parser.parse_args(argv)
    args_given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "scripts/supervised_worst_case.py", *args_given])
    print(regularization_report(args.out, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
