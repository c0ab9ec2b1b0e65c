"""RL speed ratios within one run: robust vs regular training time, and table-evaluation wall-clock.

Three measurements: the first is the ``rl-training`` section of results/benchmarks.md, the other two the ``rl``
section (each rerun rewrites only its own section):

1. ``--train-steps N [N ...]`` (default 50000 12000, the table's budget and a short one): for each budget,
   trains the regular and the robust agent of the packaged config and the robust agent at the fast sweep's
   settings (:data:`AGENTS`) in this one process, one torch thread, interleaved (regular, robust, robust fast,
   regular, ...) for ``--repeats`` rounds, so that all see the same machine load; reports median seconds and the
   ratio to regular. ``--train-steps 0`` skips it.
   Beside it, the floor the robust target cannot go below in fp32: the time of the target's hidden-layer GEMM
   on ``m x batch`` rows (measured in the same process, interleaved with the training rounds) times the number
   of gradient steps, added to regular.
2. The ``train_seconds`` that the reward-table runs recorded in their ``meta.json`` (runs trained side by
   side by ``robustrl reproduce``, one thread each).
3. Re-evaluating every run of the table from scratch (2 checkpoints x 4 ids x episodes), wall-clock.

Usage: python scripts/rl_benchmarks.py [--runs results/runs] [--train-steps 50000 12000] [--repeats 2] [--no-table]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import robustrl  # noqa: F401  (registers the ids)
from robustrl.agents import AgentConfig, load_config, make_agent
from robustrl.envs import NOMINAL_ID
from robustrl.experiments import evaluate_runs
from robustrl.experiments.io import read_json
from robustrl.experiments.records import complete_runs
from robustrl.experiments.run_files import checkpoint_files
from robustrl.experiments.report import write_benchmark_section

#: what is timed: (label, packaged agent, overrides); "robust fast" and "robust mlmc" are the settings of the
#: fast and mlmc sweeps (robustrl/configs/sweeps/: m = 8 with the target's hidden layers in bfloat16; RT-MLMC),
#: "robust linear" the closed form of Q's first-order expansion (no samples); "robust-sa" the packaged agent
#: robust on every channel (the robust agent plus SA-DQN's hinge at a PGD point) and "robust + sampled hinge" the
#: other candidate of its sweep (the hinge's entropic risk over sampled points instead)
AGENTS: tuple[tuple[str, str, dict], ...] = (
    ("regular", "regular", {}),
    ("robust", "robust", {}),
    ("robust fast", "robust", {"n_samples": 8, "target_precision": "bfloat16", "rho_ramp": 0.0}),
    ("robust mlmc", "robust", {"estimator": "mlmc", "mlmc_level": 4}),
    ("robust linear", "robust", {"estimator": "linear"}),
    # RobustSADQN: the packaged agent and the other candidate of robustrl/configs/sweeps/all-channels-heldout.yml
    ("robust-sa", "robust-sa", {}),
    ("robust + sampled hinge", "robust", {"kappa": 0.01, "sa_eps": 0.05, "sa_loss": "sampled", "sa_eta": 0.1,
                                          "sa_samples": 16}),
)


def hidden_gemm_seconds(rows: int, width: int, calls: int = 200, dtype: torch.dtype = torch.float32) -> float:
    """Median seconds of one ``(rows x width) @ (width x width)`` product in ``dtype``: the robust target's hidden
    layer (bfloat16: what ``target_precision="bfloat16"`` runs)."""
    a, w = torch.randn(rows, width, dtype=dtype), torch.randn(width, width, dtype=dtype)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            a @ w
        times.append((time.perf_counter() - start) / calls)
    return float(np.median(times))


def interleaved_training(steps: int, repeats: int
                         ) -> tuple[dict[str, list[float]], list[float], list[float], int, int, int]:
    """Seconds of ``model.learn(steps)`` per agent, interleaved over ``repeats`` rounds, one thread.

    Also returns the hidden-layer GEMM seconds measured after every round in float32 and in bfloat16, its row
    count and width, and the number of gradient steps of the robust run.
    """
    torch.set_num_threads(1)
    config = load_config()
    seconds: dict[str, list[float]] = {label: [] for label, _, _ in AGENTS}
    gemm: list[float] = []
    gemm_bf16: list[float] = []
    robust = AgentConfig.resolve(config, NOMINAL_ID, "robust", {"n_timesteps": steps})
    rows = int(robust.robust_kwargs["n_samples"]) * int(robust.dqn_kwargs["batch_size"])
    width = int(robust.dqn_kwargs["policy_kwargs"]["net_arch"][-1])
    updates = 0
    for round_ in range(repeats):
        for label, agent, overrides in AGENTS:
            cfg = AgentConfig.resolve(config, NOMINAL_ID, agent, {"n_timesteps": steps, **overrides})
            model = make_agent(cfg, gym.make(NOMINAL_ID), seed=round_, verbose=0, device="cpu")
            start = time.perf_counter()
            model.learn(steps)
            seconds[label].append(time.perf_counter() - start)
            if label == "robust":
                updates = int(model._n_updates)
            print(f"round {round_}: {label} {seconds[label][-1]:.1f} s", flush=True)
        gemm.append(hidden_gemm_seconds(rows, width))
        gemm_bf16.append(hidden_gemm_seconds(rows, width, calls=20, dtype=torch.bfloat16))
    return seconds, gemm, gemm_bf16, rows, width, updates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="results/runs")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--train-steps", type=int, nargs="+", default=[50_000, 12_000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--results", default="results")
    parser.add_argument("--jobs", type=int, default=2, help="evaluation processes")
    parser.add_argument("--no-table", action="store_true", help="measure training only (not the table's runs)")
    args = parser.parse_args()
    command = (
        f"python scripts/rl_benchmarks.py --runs {args.runs} --train-steps {' '.join(map(str, args.train_steps))} "
        f"--repeats {args.repeats}{' --no-table' if args.no_table else ''}"
    )
    lines = ["## RL training speed: robust against regular", "", f"Generated by: `{command}`", ""]
    for steps in (s for s in args.train_steps if s > 0):
        seconds, gemm, gemm_bf16, rows, width, updates = interleaved_training(steps, args.repeats)
        regular = float(np.median(seconds["regular"]))
        gemm_s = float(np.median(gemm))
        bf16_ratio = float(np.median(gemm_bf16)) / gemm_s
        floor = (regular + updates * gemm_s) / regular
        lines += [
            f"### Training {steps} steps, interleaved in one process (one torch thread)",
            "",
            "| agent | rounds | median seconds | ratio to regular |",
            "|---|---|---|---|",
        ]
        for agent, values in seconds.items():
            lines.append(
                f"| {agent} | {len(values)} | {np.median(values):.1f} | {np.median(values) / regular:.2f}× |"
            )
        lines += [
            "",
            "Target: robust ≤ 1.3× regular. `robust` is the table's agent (m = 16, float32); `robust fast` is "
            "m = 8 with the target's hidden layers in bfloat16 (robustrl/configs/sweeps/fast.yml); `robust mlmc` "
            "the RT-MLMC estimator over levels 0-4 (robustrl/configs/sweeps/mlmc.yml); `robust linear` the closed "
            "form of Q's first-order expansion around the next state (`estimator: linear`, no samples); `robust-sa` "
            "the packaged agent robust on every channel (the robust agent plus SA-DQN's hinge at a 10-step PGD point, "
            "kappa 0.01) and `robust + sampled hinge` the other candidate of its sweep, the hinge's entropic risk "
            "over 16 sampled points (robustrl/configs/sweeps/all-channels-heldout.yml).",
            "",
            f"Floor in float32: the robust target evaluates the hidden {width}×{width} layer on {rows} rows "
            f"(m × batch) at every one of the {updates} gradient steps. That product alone takes "
            f"{gemm_s * 1e3:.2f} ms here ({2 * rows * width * width / gemm_s / 1e9:.0f} GFLOP/s on one thread), "
            f"so robust ≥ (regular + {updates} × {gemm_s * 1e3:.2f} ms) / regular = **{floor:.2f}×** "
            "even if everything else in the target were free. bfloat16 hidden layers (`target_precision`) could go "
            f"below it only where bfloat16 is faster: here the same product in bfloat16 takes {bf16_ratio:.2f}× the "
            "float32 time (CPUs without bfloat16 instructions, such as AVX512-BF16 or AMX, emulate it).",
            "",
        ]
    if len(lines) > 4:
        print(write_benchmark_section(args.results, "rl-training", "\n".join(lines)))
    if args.no_table:
        return
    lines = ["## RL table: training time recorded by the runs, and evaluation speed", "", f"Generated by: `{command}`",
             ""]
    runs = complete_runs(args.runs)
    metas = [read_json(run / "meta.json") for run in runs]
    by_agent: dict[str, list[float]] = {}
    for meta in metas:
        by_agent.setdefault(meta["agent"], []).append(meta["train_seconds"])
    if "regular" in by_agent:
        regular = float(np.mean(by_agent["regular"]))
        lines += [
            "### Training wall-clock recorded by the reward-table runs (meta.json)",
            "",
            "| agent | runs | mean seconds | ratio to regular |",
            "|---|---|---|---|",
        ]
        for agent, values in by_agent.items():
            lines.append(
                f"| {agent} | {len(values)} | {np.mean(values):.1f} | {np.mean(values) / regular:.2f}× |"
            )
        total = sum(sum(values) for values in by_agent.values())
        lines += ["", f"Training all {len(metas)} runs took {total / 3600:.2f} h of run time as recorded (each run "
                  "beside one other, one torch thread each), so `robustrl reproduce --jobs 2` from scratch trains "
                  f"for about **{total / 2 / 3600:.2f} h** on 2 cores before it evaluates.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        copies = []
        for run in runs:
            copy = Path(tmp) / run.name
            copy.mkdir()
            for name in ("meta.json", *{p.name for p in checkpoint_files(run).values()}):
                shutil.copy(run / name, copy / name)
            copies.append(copy)
        start = time.perf_counter()
        evaluate_runs(copies, episodes=args.episodes, robustness_episodes=0, jobs=args.jobs)
        elapsed = time.perf_counter() - start
    lines += [
        "### Evaluating the whole table",
        "",
        f"{len(metas)} runs × 2 checkpoints × 4 ids × {args.episodes} episodes (the four ids of one "
        f"checkpoint in one batched rollout), {args.jobs} processes: **{elapsed:.1f} s** wall-clock, "
        "process start-up included (target ≤ 60 s on 2 cores).",
        "",
    ]
    print(write_benchmark_section(args.results, "rl", "\n".join(lines)))


if __name__ == "__main__":
    main()
