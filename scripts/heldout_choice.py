"""Apply a sweep's held-out decision rule to its saved results (see :mod:`robustrl.experiments.heldout`).

Usage:
    robustrl sweep SPEC --runs RUNS --out RESULTS              # trains and evaluates the sweep
    robustrl robustness --runs RUNS --out RESULTS              # the suite table the rule reads
    python scripts/heldout_choice.py SPEC --runs RUNS --results RESULTS [--rule RULE] [--allow-partial]

Writes RESULTS/choice.md and RESULTS/choice.csv. The rule defaults to the packaged
robustrl/configs/rules/<sweep name>.yml. Exit 2 on bad input.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import robustrl
from robustrl.experiments.heldout import apply_rule, load_rule, write_choice
from robustrl.experiments.sweep_spec import load_sweep_spec

RULES = Path(robustrl.__file__).parent / "configs" / "rules"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="the sweep file")
    parser.add_argument("--runs", required=True, help="the sweep's runs folder")
    parser.add_argument("--results", required=True,
                        help="the sweep's output folder, with the robustness_table.csv of its runs")
    parser.add_argument("--rule", default=None, help="rule file (default: robustrl/configs/rules/<sweep name>.yml)")
    parser.add_argument("--allow-partial", action="store_true",
                        help="score the settings so far when runs are missing (no winner is named)")
    args = parser.parse_args()
    try:
        spec = load_sweep_spec(args.spec)
        rule_path = Path(args.rule) if args.rule else RULES / f"{spec.name}.yml"
        if not args.rule and not rule_path.is_file():
            packaged = ", ".join(sorted(p.stem for p in RULES.glob("*.yml")))
            raise ValueError(f"sweep {spec.name} has no packaged rule (packaged: {packaged}); give one with --rule")
        if rule_path.resolve().is_relative_to(Path.cwd()):  # name it as a reader of the repository sees it
            rule_path = rule_path.resolve().relative_to(Path.cwd())
        rule = load_rule(rule_path)
        choice = apply_rule(rule, spec, args.runs, args.results, allow_partial=args.allow_partial)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python scripts/heldout_choice.py " + shlex.join(sys.argv[1:])
    for path in write_choice(choice, args.results, command):
        print(f"wrote {path}")
    print(choice.reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
