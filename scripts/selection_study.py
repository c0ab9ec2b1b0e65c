"""Which nominal-only signal picks robust checkpoints? Train runs that keep every checkpoint, then score them.

The signals, the rules and the tables are described in :mod:`robustrl.experiments.selection`.

Usage::

    python scripts/selection_study.py train --agents robust regular --seeds 0-9 --jobs 2
    python scripts/selection_study.py analyze --agents robust regular --seeds 0-9

Outputs: runs/selection/<run>/checkpoints/*.pt (not committed), results/selection/scores-seeds<S>.csv
(every checkpoint and signal), results/selection/selection-seeds<S>.md (the table per rule).
"""

from __future__ import annotations

import argparse
import sys

from robustrl.experiments.parallel import ProcessPool
from robustrl.experiments.selection import parse_seeds, report, score_run, study_spec, train_one


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=("train", "analyze"))
    parser.add_argument("--agents", nargs="+", default=["robust", "regular"])
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args(argv)
    names = [study_spec(a, s).name for a in args.agents for s in parse_seeds(args.seeds)]
    with ProcessPool(args.jobs) as pool:
        if args.phase == "train":
            jobs = [pool.submit(train_one, a, s) for a in args.agents for s in parse_seeds(args.seeds)]
        else:
            jobs = [pool.submit(score_run, name, args.episodes) for name in names]
        for job in jobs:
            print("done", job.result(), flush=True)
    if args.phase == "analyze":
        print(report(names, args.agents, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
