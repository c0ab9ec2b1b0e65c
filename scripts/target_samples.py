"""Fewer samples for the robust target: its error against m = 64 and its cost, plain, antithetic and linearized.

The robust target evaluates the target network on m perturbed copies of each next state; that product is most of
what a robust run costs over a regular one. This script measures, on the committed table's robust runs (their
best checkpoints, on states their greedy policy visits on the nominal id), the target
``max_a S_eta(Q(z_1, a), ..., Q(z_m, a))`` of the run's own config (rho, eta, norm, state_scale) for
m in {16 (the table's), 8, 4, 2} with independent draws and with antithetic pairs
(:class:`robustrl.estimators.SAA`), and the closed form of Q's first-order expansion around the next state
(:class:`robustrl.estimators.Linearized`, no samples), against the mean of 8 independent m = 64 estimates. It
reports the bias and the RMSE, in units of Q and as a fraction of the mean gap between the plain DQN target and
the robust one (what the robust target adds), and the seconds per target of a 64-state batch, interleaved, one
thread, as a ratio to m = 16. The ``target-samples`` section of results/benchmarks.md.

Usage: python scripts/target_samples.py [--runs results/runs] [--seeds 0 1 2] [--states 2048] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import robustrl  # noqa: F401  (first: pins the kernels, registers the ids)
from robustrl.estimators import SAA, Estimator, Linearized
from robustrl.experiments.evaluation import greedy_q_network
from robustrl.experiments.records import read_meta
from robustrl.experiments.report import write_benchmark_section
from robustrl.experiments.training import load_run_model

#: (m, how the points are drawn) -> the estimator
VARIANTS: dict[tuple[str, str], Estimator] = {
    ("16", "independent"): SAA(16), ("8", "independent"): SAA(8), ("8", "antithetic pairs"): SAA(8, antithetic=True),
    ("4", "independent"): SAA(4), ("4", "antithetic pairs"): SAA(4, antithetic=True),
    ("2", "antithetic pairs"): SAA(2, antithetic=True), ("-", "linearized (closed form)"): Linearized(),
}
REFERENCE_M, REFERENCE_DRAWS, BATCH = 64, 8, 64


def visited_states(q_net: torch.nn.Module, env_id: str, n: int, seed: int) -> torch.Tensor:
    """``n`` observations of the greedy policy on ``env_id`` (seeded episodes, one after another)."""
    env, states, episode = gym.make(env_id), [], 0
    while len(states) < n:
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done and len(states) < n:
            states.append(obs)
            with torch.no_grad():
                action = int(q_net(torch.as_tensor(obs, dtype=torch.float64)[None]).argmax())
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        episode += 1
    return torch.as_tensor(np.array(states), dtype=torch.float32)


def robust_value(q_net: torch.nn.Module, states: torch.Tensor, estimator: Estimator, kwargs: dict,
                 seed: int) -> torch.Tensor:
    """``max_a S_eta`` over the estimator's perturbations of each state (the robust target before the reward)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        values = -estimator.estimate(lambda z: -q_net(z.flatten(0, 1)).view(*z.shape[:2], -1), states,
                                     generator=generator, **kwargs)
    return values.max(dim=1).values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="results/runs")
    parser.add_argument("--agent", default="robust")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--states", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5, help="timing rounds (default: 5)")
    parser.add_argument("--results", default="results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    errors: dict[tuple[str, str], list[np.ndarray]] = {v: [] for v in VARIANTS}
    gaps, spreads, timing = [], [], {v: [] for v in VARIANTS}
    for seed in args.seeds:
        run = next(Path(args.runs).glob(f"*__{args.agent}__{seed}"))
        meta = read_meta(run, ("config", "env_id"))
        robust = meta["config"]["robust_kwargs"]
        kwargs = {"rho": float(robust["rho"]), "eta": float(robust["eta"]), "norm": robust["norm"],
                  "scale": torch.tensor(robust["state_scale"], dtype=torch.float32)}
        model = load_run_model(run, "best")
        q_net = model.q_net  # the float32 network the target is computed with
        states = visited_states(greedy_q_network(model), meta["env_id"], args.states, 1000 + seed)
        reference = torch.stack([robust_value(q_net, states, SAA(REFERENCE_M), kwargs, 10_000 + d)
                                 for d in range(REFERENCE_DRAWS)]).mean(0)
        with torch.no_grad():
            plain = q_net(states).max(dim=1).values
            spread = SAA(REFERENCE_M).estimate(lambda z: q_net(z.flatten(0, 1)).view(*z.shape[:2], -1), states,
                                               generator=torch.Generator().manual_seed(7), **{**kwargs, "eta": 0.0})
        gaps.append((plain - reference).numpy())
        spreads.append((spread.max(dim=1).values - reference).numpy())
        for variant, estimator in VARIANTS.items():
            estimate = robust_value(q_net, states, estimator, kwargs, 20_000 + seed)
            errors[variant].append((estimate - reference).numpy())
        batch = states[:BATCH]
        for _ in range(args.repeats):
            for variant, estimator in VARIANTS.items():
                start = time.perf_counter()
                for rep in range(20):
                    robust_value(q_net, batch, estimator, kwargs, rep)
                timing[variant].append((time.perf_counter() - start) / 20)
    gap = float(np.mean(np.concatenate(gaps)))
    base = float(np.median(timing["16", "independent"]))
    command = (f"python scripts/target_samples.py --runs {args.runs} --seeds {' '.join(map(str, args.seeds))} "
               f"--states {args.states} --repeats {args.repeats}")
    lines = ["## The robust target with fewer samples: error against m = 64, and cost", "",
             f"Generated by: `{command}`", "",
             f"The `{args.agent}` runs' best checkpoints (seeds {', '.join(map(str, args.seeds))}), {args.states} "
             f"states each from their greedy policy on the nominal id; reference: the mean of {REFERENCE_DRAWS} "
             f"m = {REFERENCE_M} estimates. The plain DQN target sits {gap:.3f} above the robust one on average "
             "(the gap the robust target adds); errors are also given as a fraction of it. Time: one target of a "
             f"{BATCH}-state batch, one thread, interleaved, median over rounds, as a ratio to m = 16.", "",
             "| m | draws | bias | RMSE | RMSE / gap | time per target (ms) | time / m = 16 |",
             "|---|---|---|---|---|---|---|"]
    for (m, draws) in VARIANTS:
        error = np.concatenate(errors[m, draws])
        seconds = float(np.median(timing[m, draws]))
        lines.append(f"| {m} | {draws} | {error.mean():+.4f} | "
                     f"{np.sqrt((error ** 2).mean()):.4f} | {np.sqrt((error ** 2).mean()) / gap:.1%} | "
                     f"{seconds * 1e3:.2f} | {seconds / base:.2f} |")
    print("\n".join(lines))
    print(write_benchmark_section(args.results, "target-samples", "\n".join(lines)))


if __name__ == "__main__":
    main()
