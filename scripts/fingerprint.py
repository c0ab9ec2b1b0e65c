"""Does training on this machine replay the committed runs bit for bit, and if not, where does it part?

Runs a few gradient steps of an agent from a fixed seed (:func:`robustrl.experiments.fingerprint.update_fingerprint`)
and prints the hash of every intermediate (transitions, batch, perturbed next states, target forward, TD target,
online Q-values, loss, gradients, weights, float64 evaluation) beside the reference machine's, committed under
results/fingerprint/. The first stage that differs names the operation whose kernels differ between the machines
(docs/guide/setup.rst, "Replaying a run on another CPU"). Exit code 0 when every hash agrees, 1 when one differs.

Usage:
    python scripts/fingerprint.py [--agent robust] [--seed 0] [--updates 4]      # compare with the reference
    python scripts/fingerprint.py --agent regular --write                        # (re)write the reference
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import robustrl  # noqa: F401  (first: pins the CPU kernels before numpy and torch are imported)
from robustrl.experiments.fingerprint import FINGERPRINT_STAGES, compare_fingerprints, update_fingerprint
from robustrl.experiments.io import atomic_write_json, read_json

REFERENCES = Path(__file__).resolve().parent.parent / "results" / "fingerprint"


def _print(new: dict, reference: dict | None) -> None:
    def mark(a: str, b: str | None) -> str:
        return "" if b is None else ("  ok" if a == b else f"  DIFFERS (reference {b})")

    print(f"{'transitions':16s} {new['transitions']}{mark(new['transitions'], reference and reference['transitions'])}")
    for number, step in enumerate(new["steps"]):
        ref = reference["steps"][number] if reference and number < len(reference["steps"]) else None
        for stage in FINGERPRINT_STAGES:
            print(f"step {number + 1} {stage:9s} {step[stage]}{mark(step[stage], ref and ref.get(stage))}")
    print(f"{'evaluation':16s} {new['evaluation']}{mark(new['evaluation'], reference and reference['evaluation'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", default="robust", help="agent of the packaged config (default: robust)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("--updates", type=int, default=4, help="gradient steps to hash (default: 4)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="reference fingerprint (default: results/fingerprint/AGENT.json)")
    parser.add_argument("--write", action="store_true", help="write this machine's fingerprint as the reference")
    args = parser.parse_args(argv)
    reference_path = args.reference or REFERENCES / f"{args.agent}.json"
    new = update_fingerprint(args.agent, args.seed, args.updates)
    if args.write:
        atomic_write_json(reference_path, new)
        _print(new, None)
        print(f"wrote {reference_path}")
        return 0
    if not reference_path.is_file():
        print(f"no reference at {reference_path}; write one with --write", file=sys.stderr)
        return 2
    reference = read_json(reference_path)
    _print(new, reference)
    print(f"this machine: {new['machine']['cpu']} ({new['machine']['arch']}), kernels {json.dumps(new['kernels'])}")
    print(f"reference:    {reference['machine']['cpu']} ({reference['machine']['arch']}), "
          f"kernels {json.dumps(reference['kernels'])}")
    verdict = compare_fingerprints(new, reference)
    print("identical: training replays the reference bit for bit" if verdict is None else f"differs: {verdict}")
    return 0 if verdict is None else 1


if __name__ == "__main__":
    sys.exit(main())
