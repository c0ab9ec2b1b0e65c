"""How close the cheap estimators of the actor-critic robust target come to a large sample, on a trained critic.

The robust target of RobustSAC and RobustTD3 is ``S_eta[V](s')``, the entropic soft-min of the next-state value over
the ball around ``s'``. This script takes trained SAC runs (their best checkpoints), collects states their policy
visits on the task's nominal id, and computes ``S_eta`` of the deterministic value ``V(z) = min_i Q_i(z, mu(z))``
(the twin critics at the actor's mean action; the sampled action and smoothing noise of training are left out so
the estimators are compared on one function) with the robust agents' settings of the task's config (rho, eta in
units of the spread, l-inf) and the task's state scale, by SAA with m = 16 (the configs' value) and m = 4, and by
the closed form of V's first-order expansion (:class:`robustrl.estimators.Linearized`), with eta in units of each
estimator's spread (the configs' ``eta_scale: spread``) and with one absolute temperature for all (eta times the
mean spread of V over 16 samples). Reference: the mean of 8 SAA estimates with m = 256. Reported: bias and RMSE,
in units of V and as a fraction of the mean gap between ``V(s')`` and the reference (what the robust target adds). The
``ac-target-accuracy`` section of results/benchmarks.md; ``scripts/ac_speed_benchmark.py`` measures the time.

Usage: python scripts/ac_target_accuracy.py RUN [RUN ...] [--task pendulum] [--states 2000]
(e.g. the regular SAC runs of held-out seeds 100-102 that ``python scripts/calibrate_task.py --task pendulum``
trains into runs/calibration/pendulum)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import robustrl  # noqa: F401  (first: pins the kernels, registers the ids)
from robustrl.agents import AgentConfig, load_config
from robustrl.estimators import SAA, Estimator, Linearized, entropic_softmin, perturb
from robustrl.experiments.attack_strength import visited_states
from robustrl.experiments.records import read_meta
from robustrl.experiments.report import write_benchmark_section
from robustrl.experiments.training import load_run_model
from robustrl.tasks import get_task

REFERENCE_M, REFERENCE_DRAWS = 256, 8


def soft_min(value, states: torch.Tensor, estimator: Estimator, rho: float, eta: float, relative: bool,
             scale: torch.Tensor, seed: int) -> torch.Tensor:
    """``S_eta[value]`` over the l-inf ball; with ``relative`` eta is in units of the spread of the samples (SAA)
    or of the expansion over the ball (linearized), else absolute."""
    def batched(z: torch.Tensor) -> torch.Tensor:
        return value(z.flatten(0, 1)).view(*z.shape[:2], -1)

    with torch.no_grad():
        if isinstance(estimator, Linearized):
            return -Linearized(relative).estimate(lambda z: -batched(z), states, rho=rho, eta=eta, scale=scale)
        generator = torch.Generator().manual_seed(seed)
        z = perturb(states, rho, estimator.m, scale=scale, generator=generator)  # type: ignore[attr-defined]
        values = batched(z)
        if not relative:
            return entropic_softmin(values, eta, dim=1)
        spread = values.amax(1, keepdim=True) - values.amin(1, keepdim=True)
        return entropic_softmin(values, eta * spread.clamp_min(torch.finfo(values.dtype).tiny), dim=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="SAC run directories (best.pt, meta.json)")
    parser.add_argument("--task", default="pendulum")
    parser.add_argument("--agent", default="robust", help="the robust agent whose rho and eta are used")
    parser.add_argument("--states", type=int, default=2000, help="states per run (a multiple of 200)")
    parser.add_argument("--results", default="results")
    args = parser.parse_args(argv)
    if args.states < 200:
        print(f"error: --states must be at least 200 (the first 200 steps of each episode), got {args.states}",
              file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    task = get_task(args.task)
    cfg = AgentConfig.resolve(load_config(None, task.hyperparameters), task.nominal_id, args.agent, {})
    rho, eta = float(cfg.robust_kwargs["rho"]), float(cfg.robust_kwargs["eta"])
    if cfg.robust_kwargs.get("eta_scale") != "spread" or cfg.robust_kwargs.get("norm", "linf") != "linf":
        print(f"error: {args.agent} must use eta_scale spread and the l-inf ball", file=sys.stderr)
        return 2
    scale = torch.tensor(task.state_scale, dtype=torch.float32)
    estimators: dict[str, Estimator] = {"SAA m=16": SAA(16), "SAA m=4": SAA(4), "linearized": Linearized()}
    modes = ("relative", "absolute")
    errors: dict[tuple[str, str], list[np.ndarray]] = {(n, mode): [] for n in estimators for mode in modes}
    gaps: dict[str, list[np.ndarray]] = {mode: [] for mode in modes}
    temperatures = []
    for index, run in enumerate(map(Path, args.runs)):
        model = load_run_model(run, "best")
        env_id = read_meta(run, ("env_id",))["env_id"]
        def value(z: torch.Tensor, actor=model.actor, critic=model.critic) -> torch.Tensor:
            return torch.min(torch.cat(critic(z, actor(z, deterministic=True)), dim=1), dim=1, keepdim=True).values

        states = torch.as_tensor(visited_states(model, episodes=args.states // 200, steps=200, seed=1000 + index,
                                                env_id=env_id), dtype=torch.float32)
        with torch.no_grad():  # the absolute temperature: eta times the run's mean spread over 16 samples
            values = value(perturb(states, rho, 16, scale=scale, generator=torch.Generator().manual_seed(5))
                           .flatten(0, 1)).view(len(states), 16)
            temperatures.append(eta * float((values.amax(1) - values.amin(1)).mean()))
            plain = value(states)
        for mode in modes:
            temperature = eta if mode == "relative" else temperatures[-1]
            reference = torch.stack([soft_min(value, states, SAA(REFERENCE_M), rho, temperature, mode == "relative",
                                              scale, 10_000 + d) for d in range(REFERENCE_DRAWS)]).mean(0)
            gaps[mode].append((plain - reference).numpy())
            for name, estimator in estimators.items():
                estimate = soft_min(value, states, estimator, rho, temperature, mode == "relative", scale,
                                    20_000 + index)
                errors[name, mode].append((estimate - reference).numpy())
    gap = {mode: float(np.mean(np.concatenate(gaps[mode]))) for mode in modes}
    names = ", ".join(Path(r).name for r in args.runs)
    lines = ["## The actor-critic robust target: cheap estimators against a large sample", "",
             f"Generated by: `python scripts/ac_target_accuracy.py {' '.join(args.runs)} --task {args.task} "
             f"--agent {args.agent} --states {args.states}`", "",
             f"Runs: {names} (best checkpoints; `python scripts/calibrate_task.py --task {args.task}` trains the "
             f"regular ones of held-out seeds 100-102), {args.states // 200 * 200} states each from their "
             f"deterministic policy on {task.nominal_id} (the first 200 steps of {args.states // 200} episodes). "
             f"Value: the twin critics' minimum at the actor's mean action. The `{args.agent}` "
             f"agent's radius (rho {rho:g} in units of the task's state scale, l-inf) and eta {eta:g}, two ways: "
             f"*relative*, the configs' way, eta in units of each estimator's own spread (of its m samples for SAA, "
             f"of the expansion over the whole ball for the linearized one: these are not the same temperature, the "
             f"spread of 16 samples is smaller than the ball's); *absolute*, one temperature for all, eta times the "
             f"run's mean spread of V over 16 samples ({', '.join(f'{t:.2f}' for t in temperatures)}). Reference: "
             f"the mean of {REFERENCE_DRAWS} SAA estimates with m = {REFERENCE_M} at the same setting. V(s') sits "
             f"{gap['relative']:.3f} (relative) and {gap['absolute']:.3f} (absolute) above the reference on average "
             "(the gap the robust target adds); errors are also given as a fraction of it.", "",
             "| estimator | relative: bias | RMSE | RMSE / gap | absolute: bias | RMSE | RMSE / gap |",
             "|---|---|---|---|---|---|---|"]
    for name in estimators:
        cells = []
        for mode in modes:
            error = np.concatenate(errors[name, mode])
            rmse = float(np.sqrt((error ** 2).mean()))
            cells += [f"{error.mean():+.4f}", f"{rmse:.4f}", f"{rmse / gap[mode]:.1%}"]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    print("\n".join(lines))
    print(write_benchmark_section(args.results, "ac-target-accuracy", "\n".join(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
