"""How stable is each agent's greedy action in the observation ball? Action margins and flip rates per agent.

For every complete run under each --runs folder (best checkpoint), on the states its clean greedy policy visits
(10 episodes x 100 steps on the task's nominal env, the same initial states for every run):
  - the action margin, Q(s, a*) - max_{a != a*} Q(s, a): the lead an observation attack has to overcome, as the
    median over the states, its 10 % quantile, and the median relative to |Q(s, a*)| (Q's scale differs by agent:
    a pessimistic target learns smaller values);
  - the first-order distance to the greedy action's decision boundary, margin / ||scale * grad of the margin||
    (dual norm of l-inf and of l2), in units of state_scale: the eps at which the action would flip if Q were
    linear, free of Q's scale (median over the states);
  - the flip rate: the fraction of those states whose greedy action the robustness suite's attack flips (its PGD
    channels, steps, restarts and losses, eps in units of the task's state_scale), at each --levels.
Per agent (the run's agent, plus its sweep tag), the mean over its runs and the standard deviation across them.
Writes OUT/action_stability.md and .csv.

Usage: python scripts/action_stability.py [--runs results/runs ...] [--agents ...] [--channels pgd-linf pgd-l2]
       [--levels 0.01 0.05] [--suite default] [--task cartpole] [--out results]
"""

from __future__ import annotations

import argparse
import csv
import io
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from robustrl.experiments.attack_strength import action_margins, boundary_distances, flip_rates, visited_states
from robustrl.experiments.io import atomic_write_text
from robustrl.experiments.records import complete_runs, read_meta
from robustrl.experiments.suite import CHANNELS, load_suite
from robustrl.experiments.tables import agent_label
from robustrl.experiments.training import load_run_model
from robustrl.tasks import get_task


def measure(run: Path, channels: list[str], levels: list[float], state_scale: list[float], attack: dict,
            nominal_id: str) -> dict[str, float]:
    """The margins' summaries and the flip rate per channel and level of one run's best checkpoint."""
    model = load_run_model(run, "best")
    states = visited_states(model, 10, 100, env_id=nominal_id)
    margins = action_margins(model, states)
    import torch

    from robustrl.experiments.evaluation import greedy_q_network

    with torch.no_grad():
        top = greedy_q_network(model, "float64")(torch.as_tensor(states, dtype=torch.float64)).max(1).values.numpy()
    row = {"margin_median": float(np.median(margins)), "margin_q10": float(np.quantile(margins, 0.1)),
           "relative_margin_median": float(np.median(margins / np.maximum(np.abs(top), 1e-12)))}
    for norm in ("linf", "l2"):
        row[f"boundary_{norm}_median"] = float(np.median(boundary_distances(model, states, state_scale, norm)))
    for channel in channels:
        rates = flip_rates(model, channel, levels, states, state_scale, attack)
        row.update({f"{channel}@{level:g}": float(rate) for level, rate in zip(levels, rates)})
    return row


def main(argv: list[str] | None = None) -> int:
    """Measure every run and write the table; prints it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["results/runs"])
    parser.add_argument("--agents", nargs="*", default=None, help="only these agent labels (default: all)")
    parser.add_argument("--channels", nargs="+", default=["pgd-linf", "pgd-l2"])
    parser.add_argument("--levels", nargs="+", type=float, default=[0.01, 0.05])
    parser.add_argument("--suite", default=None)
    parser.add_argument("--task", default=None)
    parser.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    for channel in args.channels:
        if channel not in CHANNELS or CHANNELS[channel].kind != "attack":
            parser.error(f"--channels: {channel!r} is not an attack channel "
                         f"({', '.join(c for c, s in CHANNELS.items() if s.kind == 'attack')})")
    if any(not np.isfinite(level) or level < 0 for level in args.levels):
        parser.error(f"--levels must be finite and >= 0, got {args.levels}")
    task = get_task(args.task)
    suite = load_suite(args.suite, task=task)
    runs = []
    for folder in args.runs:
        for run in complete_runs(folder):
            meta = read_meta(run)
            label = agent_label(meta["agent"], meta.get("tag"))
            if meta.get("algo") is not None and "DQN" not in str(meta["algo"]):
                continue  # an actor-critic has no greedy action to flip
            if args.agents is None or label in args.agents:
                runs.append((label, meta["seed"], run))
    if not runs:
        parser.error(f"no complete DQN run under {args.runs}" + (f" for agents {args.agents}" if args.agents else ""))
    start = time.perf_counter()
    per_agent: dict[str, list[dict[str, float]]] = {}
    seeds: dict[str, list[int]] = {}
    for label, seed, run in tqdm(runs, desc="action stability", unit="run"):
        per_agent.setdefault(label, []).append(measure(run, args.channels, args.levels, suite.state_scale,
                                                       suite.attack, task.nominal_id))
        seeds.setdefault(label, []).append(seed)
    seconds = time.perf_counter() - start
    keys = list(next(iter(per_agent.values()))[0])
    rows = []
    for label in sorted(per_agent, key=lambda a: (a != "regular", a)):
        values = {k: np.array([r[k] for r in per_agent[label]]) for k in keys}
        rows.append({"agent": label, "runs": len(per_agent[label]),
                     "seeds": " ".join(str(s) for s in sorted(seeds[label])),
                     **{f"{k}_mean": float(v.mean()) for k, v in values.items()},
                     **{f"{k}_sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0 for k, v in values.items()}})
    command = "python scripts/action_stability.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    attack = suite.attack
    flips = [k for k in keys if "@" in k]
    lines = [
        "# Action stability: margins and flip rates",
        "",
        f"_Generated by: {command}_  ",
        f"_Best checkpoints of {len(runs)} runs; states: 10 episodes x 100 steps of each run's clean greedy policy on "
        f"{task.nominal_id}; attack: the suite {suite.name}'s PGD, {attack['steps']} steps x {attack['restarts']} "
        f"restarts per loss (margin and cross-entropy) in {attack['precision']}, eps in units of state_scale "
        f"{list(suite.state_scale)}; {seconds:.0f} s on one process. Mean over an agent's runs (sd across them)._",
        "",
        "Margin: Q(s, a\\*) - max over the other actions, the lead an attack must overcome (median over the visited "
        "states, and its 10 % quantile); relative: the median of margin / |Q(s, a\\*)|. Flip rate: the fraction of "
        "the visited states whose greedy action the attack flips. Boundary: the median first-order distance to the "
        "decision boundary, margin / dual norm of its input gradient (l-inf and l2, in units of state_scale): the eps "
        "that would flip the action if Q were linear.",
        "",
        "| agent | runs | median margin | 10 % margin | relative margin | boundary l-inf | boundary l2 | " + " | ".join(
            f"flips {k.replace('@', ' eps ')}" for k in flips) + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(flips),
    ]
    for row in rows:
        cells = [f"{row['margin_median_mean']:.3f} ({row['margin_median_sd']:.3f})",
                 f"{row['margin_q10_mean']:.4f} ({row['margin_q10_sd']:.4f})",
                 f"{100 * row['relative_margin_median_mean']:.2f}% ({100 * row['relative_margin_median_sd']:.2f})",
                 f"{row['boundary_linf_median_mean']:.4f} ({row['boundary_linf_median_sd']:.4f})",
                 f"{row['boundary_l2_median_mean']:.4f} ({row['boundary_l2_median_sd']:.4f})"]
        cells += [f"{100 * row[f'{k}_mean']:.1f}% ({100 * row[f'{k}_sd']:.1f})" for k in flips]
        lines.append(f"| {row['agent']} | {row['runs']} | " + " | ".join(cells) + " |")
    out = Path(args.out)
    atomic_write_text(out / "action_stability.md", "\n".join(lines) + "\n")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "action_stability.csv", f"# {command}\n" + text.getvalue())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
