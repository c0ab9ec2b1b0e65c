"""Choose a task's own suite levels on held-out seeds, by a rule fixed before the runs.

The suite's observation budgets are in units of the task's state scale, which rule 2 of
``scripts/calibrate_task.py`` takes from the states a trained regular agent visits. On a stabilising task (a
trained InvertedPendulum agent holds the pole within a few hundredths of a radian) those units are so small that
the packaged suite's observation channels leave every agent at its best return, and say nothing. This script
chooses, per kind of observation channel, a factor on the packaged suite's levels, by this rule, committed
before any of its runs:

1. Runs: the three regular agents of the task's calibration (``scripts/calibrate_task.py``, held-out seeds 100,
   101 and 102), their best checkpoints.
2. Channels: the observation channels of the packaged suite that fits the runs (``actor-critic`` for SAC and
   TD3, ``default`` for DQN), in two kinds: the attacks (MAD and the critic attack; PGD and FGSM) and the noise
   channels (uniform and Gaussian). Action channels and uncertainty sets are left as they are.
3. For each factor k of :data:`FACTORS`, every observation channel is evaluated at its top level times k (10
   greedy episodes per run, the suite's attack settings and evaluation seed). A kind's score at k is the lowest,
   over its channels, of the mean return over the three runs.
4. A kind's factor is the smallest k whose score is at most :data:`THRESHOLD` (half) of the way from the low end
   of the task's return range to its high end, so that the top level breaks a regular agent and the lower ones
   trace the way there. If no k gets there, the largest, marked ``weak``.
5. If both factors are 1 the packaged suite stands. Otherwise the task gets its own suite,
   ``robustrl/configs/suites/TASK.yml``: the packaged one with each kind's levels multiplied by its factor, named
   by the task's ``suite`` key, with a pointer to ``results/calibration/TASK-suite.md``, which this script writes
   (with ``.json`` and a figure).

    python scripts/calibrate_suite.py --task invertedpendulum
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from robustrl.experiments.evaluation import EVALUATION_SEED
from robustrl.experiments.io import atomic_write_json
from robustrl.experiments.plots import save_figure
from robustrl.experiments.records import complete_runs
from robustrl.experiments.suite import CHANNELS, channel_returns, default_suite_name, load_suite
from robustrl.experiments.training import load_run_model
from robustrl.tasks import get_task, task_names

#: The factors tried on the packaged suite's levels, smallest first.
FACTORS = (1, 2, 5, 10, 20, 50)
#: Where a kind's score must fall to, as a fraction of the way up the task's return range.
THRESHOLD = 0.5
#: Held-out seeds of the calibration runs.
SEEDS = (100, 101, 102)


def choose(factors: tuple[int, ...], scores: list[float], threshold: float) -> dict:
    """Rule 4: the smallest factor whose score is at most ``threshold``, else the largest (``weak``)."""
    for factor, score in zip(factors, scores):
        if score <= threshold:
            return {"factor": factor, "score": score, "weak": False}
    return {"factor": factors[-1], "score": scores[-1], "weak": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, choices=task_names())
    parser.add_argument("--runs", type=Path, default=None, help="default runs/calibration/TASK")
    parser.add_argument("--out", type=Path, default=Path("results/calibration"))
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args(argv)
    task = get_task(args.task)
    runs_dir = args.runs or Path("runs/calibration") / task.name
    run_dirs = [d for d in complete_runs(runs_dir) if int(d.name.rsplit("__", 1)[-1]) in SEEDS
                and d.name.split("__")[1] == "regular"]
    if len(run_dirs) != len(SEEDS):
        raise SystemExit(f"expected the regular runs of seeds {SEEDS} under {runs_dir} "
                         f"(python scripts/calibrate_task.py --task {task.name}), found {[d.name for d in run_dirs]}")
    base_name = default_suite_name(run_dirs)
    suite = load_suite(base_name, task)
    kinds = {"attack": [c for c in suite.channels if CHANNELS[c].kind == "attack"],
             "noise": [c for c in suite.channels if CHANNELS[c].kind == "noise"]}
    low, high = task.return_range
    threshold = low + THRESHOLD * (high - low)
    returns: dict[str, list[list[float]]] = {}  # channel -> per run, the mean return at each factor
    models = {run_dir: load_run_model(run_dir, "best") for run_dir in run_dirs}
    for channel in kinds["attack"] + kinds["noise"]:
        top = max(suite.channels[channel])
        levels = [top * k for k in FACTORS]
        returns[channel] = []
        for run_dir, model in models.items():
            matrix = channel_returns(model, channel, levels, args.episodes, EVALUATION_SEED, suite.state_scale,
                                     suite.attack, task.nominal_id)
            returns[channel].append(matrix.mean(axis=1).tolist())
            print(f"{channel} {run_dir.name}: " + ", ".join(f"{r:.1f}" for r in returns[channel][-1]), flush=True)
    means = {channel: np.mean(per_run, axis=0) for channel, per_run in returns.items()}
    chosen = {}
    for kind, channels in kinds.items():
        if channels:
            scores = [float(min(means[c][i] for c in channels)) for i in range(len(FACTORS))]
            chosen[kind] = {"channels": channels, "scores": scores, **choose(FACTORS, scores, threshold)}
    command = "python scripts/calibrate_suite.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"task": task.name, "base_suite": base_name, "seeds": list(SEEDS), "episodes": args.episodes,
              "factors": list(FACTORS), "threshold": threshold, "state_scale": suite.state_scale,
              "returns": returns, "chosen": chosen, "command": command}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / f"{task.name}-suite.json", result)
    lines = [f"# {task.title}'s suite levels", "",
             f"Generated by `{command}` (rule in the script's docstring): the regular agents of held-out seeds "
             f"{', '.join(map(str, SEEDS))} (best checkpoints), each observation channel of the `{base_name}` suite at "
             f"its top level times k, {args.episodes} episodes per run; state scale `{suite.state_scale}`. A kind's "
             f"score is its weakest channel's mean over the three runs; the threshold is {threshold:g} "
             f"({THRESHOLD:.0%} of the return range [{low:g}, {high:g}]).", "",
             "| channel | top level | " + " | ".join(f"k = {k}" for k in FACTORS) + " |",
             "|---|---|" + "---|" * len(FACTORS)]
    for channel, mean in means.items():
        lines.append(f"| {channel} | {max(suite.channels[channel]):g} | " + " | ".join(f"{m:.1f}" for m in mean)
                     + " |")
    lines += ["", "| kind | channels | factor | score at it | |", "|---|---|---|---|---|"]
    for kind, c in chosen.items():
        lines.append(f"| {kind} | {', '.join(c['channels'])} | {c['factor']} | {c['score']:.1f} | "
                     f"{'weak: no factor reaches the threshold' if c['weak'] else ''} |")
    lines += ["", f"![top-level return against the factor]({task.name}-suite.png)", ""]
    (args.out / f"{task.name}-suite.md").write_text("\n".join(lines))
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    for channel, mean in means.items():
        ax.plot(FACTORS, mean, marker="o", label=channel)
    ax.axhline(threshold, color="C3", ls="--", lw=1, label="threshold")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(FACTORS, [str(k) for k in FACTORS])
    ax.set_xlabel("factor k on the packaged suite's levels (log scale)")
    ax.set_ylabel("return at the top level x k, mean of 3 runs")
    ax.set_ylim(low, high * 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{task.title}: observation channels, regular agents (held-out seeds)")
    save_figure(fig, args.out / f"{task.name}-suite.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
