"""Does every seed learn? Per run: the best nominal selection score and when it was reached (from meta.json);
on CartPole also what the final Q-network believes near the upright state, the clue to why a seed fails.

An agent that balances forever has Q = 1 / (1 - gamma) = 100 at the upright state; a pessimistic (robust)
target lowers it to the value of the worst case over the ball, and a Q above 100 has diverged. The action gap
|Q(s, left) - Q(s, right)| says how firmly the greedy policy chooses. Those two columns need the runs'
weights; on other tasks (``--task``) the table is made from the run records alone, so weightless runs do.

Writes ``OUT/seed_reliability.md``: one row per agent (and per folder, when several are given: the runs
that reach ``--threshold`` on the nominal selection, by default the nominal id's Gymnasium
``reward_threshold``, and the failed seeds with their scores) and a per-run table.

Usage::

    python scripts/seed_reliability.py --runs results/runs --agents regular robust robust-mean robust-hard
    python scripts/seed_reliability.py --task lunarlander --runs results/lunarlander/runs \\
        --out results/lunarlander
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from robustrl.experiments.io import atomic_write_text
from robustrl.experiments.records import complete_runs, read_meta
from robustrl.experiments.tables import agent_label
from robustrl.experiments.training import load_run_model
from robustrl.tasks import get_task

#: near-upright states: every coordinate uniform in +-0.05 (CartPole's reset distribution)
STATES = (torch.rand(512, 4, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.1


def q_near_upright(run: Path, checkpoint: str) -> tuple[float, float]:
    """Mean Q and mean action gap of a checkpoint over :data:`STATES`."""
    model = load_run_model(run, checkpoint)
    net = model.q_net
    with torch.no_grad():
        q = net(STATES.to(next(net.parameters()).dtype)).double()
    return float(q.mean()), float((q.max(dim=1).values - q.min(dim=1).values).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cartpole")
    parser.add_argument("--runs", nargs="+", default=["results/runs"])
    parser.add_argument("--agents", nargs="*", help="agent labels to include (default: all)")
    parser.add_argument("--threshold", type=float,
                        help="nominal selection score that counts as learned (default: the nominal id's "
                             "reward_threshold)")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    try:
        task = get_task(args.task)
    except ValueError as err:
        parser.error(str(err))
    upright = task.name == "cartpole"  # the Q columns: CartPole's upright state
    if args.threshold is None:
        args.threshold = gym.spec(task.nominal_id).reward_threshold
        if args.threshold is None:
            parser.error(f"{task.nominal_id} has no reward_threshold; pass --threshold")
    torch.set_num_threads(1)
    rows: dict[str, list[tuple]] = {}
    episode_counts: set[int] = set()
    for folder in args.runs:
        path = Path(folder)
        source = path.parent.name if path.name == "runs" else path.name  # results/runs -> "results"
        for run in complete_runs(folder):
            meta = read_meta(run)
            label = agent_label(meta["agent"], meta.get("tag"))
            if args.agents and label not in args.agents:
                continue
            if len(args.runs) > 1:  # the same agent may come from two folders
                label = f"{label} ({source})"
            q_final = gap_final = float("nan")
            if upright:
                try:
                    q_final, gap_final = q_near_upright(run, "final")
                except ValueError as err:  # e.g. a sweep committed without its weights: the message says how
                    # to rebuild them
                    sys.exit(f"seed_reliability.py: {err}")
            episode_counts.add(int(meta["config"]["eval_episodes"]))
            rows.setdefault(label, []).append((meta["seed"], float(meta["best_selection_mean"]),
                                               int(meta["best_timesteps"]), q_final, gap_final))
    if not rows:
        which = f" of {', '.join(args.agents)}" if args.agents else ""
        sys.exit(f"seed_reliability.py: no complete runs{which} under {', '.join(args.runs)}")
    command = "python scripts/seed_reliability.py " + shlex.join(
        [*(["--task", task.name] if task.name != "cartpole" else []), "--runs", *args.runs,
         *(["--agents", *args.agents] if args.agents else []), "--threshold", f"{args.threshold:g}",
         "--out", args.out])
    episodes = "/".join(str(n) for n in sorted(episode_counts))
    lines = ["# Does every seed learn?", "", f"Generated by: `{command}`", "",
             f"Learned: best nominal selection score ({episodes} greedy episodes at a checkpoint) ≥ "
             f"{args.threshold:g}."
             + (" Q near upright: the final model's mean Q over 512 states drawn like CartPole's resets "
                "(100 = balancing forever at gamma 0.99), and its mean action gap." if upright else ""), ""]
    q_head = " final Q near upright: median [min, max] | median action gap |" if upright else ""
    lines += [f"| agent | runs | learned | failed seeds (score) |{q_head}",
              "|---|---|---|---|" + "---|---|" * upright]
    for label, runs in rows.items():
        runs.sort()
        failed = [f"{seed} ({score:.0f})" for seed, score, *_ in runs if score < args.threshold]
        q = np.array([r[3] for r in runs])
        q_cells = (f" {np.median(q):.1f} [{q.min():.1f}, {q.max():.1f}] | "
                   f"{np.median([r[4] for r in runs]):.2f} |" if upright else "")
        lines.append(f"| {label} | {len(runs)} | {len(runs) - len(failed)} | {', '.join(failed) or 'none'} |"
                     + q_cells)
    lines += ["", "| agent | seed | best selection score | at step |"
              + (" final Q near upright | action gap |" if upright else ""),
              "|---|---|---|---|" + "---|---|" * upright]
    for label, runs in rows.items():
        for seed, score, step, q, gap in runs:
            lines.append(f"| {label} | {seed} | {score:.1f} | {step} |"
                         + (f" {q:.1f} | {gap:.2f} |" if upright else ""))
    lines.append("")
    print(atomic_write_text(Path(args.out) / "seed_reliability.md", "\n".join(lines)))


if __name__ == "__main__":
    main()
