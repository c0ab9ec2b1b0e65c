"""Why Acrobot's long upper link separates the agents: the goal line or the dynamics, and how far one step moves.

A longer upper link changes two things in ``PerturbedAcrobotEnv``: the dynamics (link 1's length enters the
equations of motion) and the goal (the tip's height, ``-l1 cos(theta1) - l2 cos(theta1 + theta2)``, must pass 1 m).
This script separates them. For every run of --agents x --seeds in RUNS (best checkpoints, greedy, --episodes
episodes per condition from the same initial states, ``reset(seed=SEED + i)``) it measures the return under

- ``original``: nominal dynamics and goal;
- ``long``: the long-upper-link id (link 1's length in both);
- ``long dynamics, nominal goal``: the dynamics of the long link, the tip's height computed with the nominal length;
- ``nominal dynamics, long goal``: the nominal dynamics, the tip's height computed with the long length.

It also measures, from the states the regular agents visit on the nominal id (first --seeds seed, --episodes
episodes), how far one step under each perturbed id lands from the nominal step (same state, same action): the
norm of the difference of the observations divided by the task's state scale (the units of the robust agents'
rho), in the robust agent's norm, against that agent's rho.

Writes OUT/long_link.md and OUT/long_link.csv. long_link.csv records the checksum of each run's best model, and a
run whose rows there match its model (and --episodes and --seed) is not measured again, so a weightless run needs
its weights only when it is new or has changed (the command that rebuilds them is named then), and so does the
regular agent's first seed, whose states the one-step deviations come from.

Usage: python scripts/acrobot_long_link.py [--runs results/acrobot/runs] [--out results/acrobot]
       [--agents regular robust ...] [--seeds 0 1 ...] [--episodes 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import io
import shlex
import sys
from math import cos
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import TimeLimit
from tqdm.auto import tqdm

from robustrl.checks import check_int
from robustrl.envs.classic import ACROBOT_GOAL_HEIGHT, PerturbedAcrobotEnv
from robustrl.experiments.evaluation import greedy_policy
from robustrl.experiments.io import atomic_write_text
from robustrl.experiments.records import read_evaluation, read_meta
from robustrl.experiments.run_files import model_checksums
from robustrl.experiments.training import load_run_model
from robustrl.tasks import get_task

AGENTS = ("regular", "domain-randomization", "robust", "robust-mean", "robust-hard", "sa-dqn", "robust-sa")
LONG_ID = "robustrl/AcrobotLongUpperLink-v1"


class GoalLengthAcrobot(PerturbedAcrobotEnv):
    """Acrobot whose goal test uses ``goal_length_1`` for link 1 instead of the length the dynamics use."""

    def __init__(self, goal_length_1: float, **params: float) -> None:
        super().__init__(**params)
        self.goal_length_1 = float(goal_length_1)

    def _terminal(self) -> bool:
        s = self.state
        height = -self.goal_length_1 * cos(s[0]) - self.LINK_LENGTH_2 * cos(s[1] + s[0])
        return bool(height > ACROBOT_GOAL_HEIGHT)


def returns(policy, dynamics_l1: float, goal_l1: float, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy returns of ``episodes`` episodes side by side, initial states from ``seed + i``, and whether each
    reached the goal (terminated before the step limit)."""
    envs = [TimeLimit(GoalLengthAcrobot(goal_l1, link_length_1=dynamics_l1), 500) for _ in range(episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    total, alive = np.zeros(episodes), np.ones(episodes, dtype=bool)
    reached = np.zeros(episodes, dtype=bool)
    while alive.any():
        actions = policy(obs)
        for i in np.flatnonzero(alive):
            obs[i], reward, terminated, truncated, _ = envs[i].step(int(actions[i]))
            total[i] += reward
            reached[i] = terminated
            alive[i] = not (terminated or truncated)
    return total, reached


def one_step_deviations(policy, perturbed: dict[str, dict[str, float]], scale: np.ndarray, norm: str,
                        episodes: int, seed: int) -> dict[str, np.ndarray]:
    """Per perturbed id, the deviation of one step from the nominal step at each state ``policy`` visits."""
    env, probe = PerturbedAcrobotEnv(), PerturbedAcrobotEnv()
    nominal = probe.get_params()
    order = np.inf if norm == "linf" else 2
    out: dict[str, list[float]] = {env_id: [] for env_id in perturbed}
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        for _ in range(500):
            action = int(policy(obs[None])[0])
            state = env.state.copy()
            obs, _, terminated, _, _ = env.step(action)
            for env_id, change in perturbed.items():
                probe.set_params(**{**nominal, **change})
                probe.state = state.copy()
                moved = probe.step(action)[0]
                out[env_id].append(float(np.linalg.norm((moved - obs) / scale, ord=order)))
            if terminated:
                break
    return {env_id: np.asarray(values) for env_id, values in out.items()}


def saved_rows(path: Path, weights: dict[tuple[str, int], str], episodes: int, seed: int,
               conditions: tuple[str, ...]) -> dict[tuple[str, int], list[tuple[str, int, str, float, float]]]:
    """The rows of an earlier long_link.csv for the runs whose best model is still the one measured (same
    checksum), with the same episodes and reset seed, and a row for every condition; none from a file without
    checksums or that cannot be read."""
    if not path.is_file():
        return {}
    try:
        with path.open(newline="") as f:
            table = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    found: dict[tuple[str, int], list[tuple[str, int, str, float, float]]] = {}
    for row in table:
        try:
            key = (row["agent"], int(row["seed"]))
            if (weights.get(key) != row["weights"] or int(row["episodes"]) != episodes
                    or int(row["reset_seed"]) != seed):
                continue
            found.setdefault(key, []).append((*key, row["condition"], float(row["mean_return"]),
                                              float(row["reached_goal"])))
        except (KeyError, TypeError, ValueError):
            return {}
    return {key: rows for key, rows in found.items() if [r[2] for r in rows] == list(conditions)}


def main(argv: list[str] | None = None) -> int:
    """Write the tables; exit 2 on bad input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="results/acrobot/runs")
    parser.add_argument("--out", default="results/acrobot")
    parser.add_argument("--agents", nargs="+", default=list(AGENTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="default: every seed that has a run of every agent in RUNS")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="initial states come from seed + i")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    task = get_task("acrobot")
    runs = Path(args.runs)
    try:
        check_int(args.episodes, "--episodes", 1)
        if "regular" not in args.agents or "robust" not in args.agents:
            raise ValueError(f"--agents must include regular and robust, got {args.agents}")
        prefix = task.nominal_id.split("/")[-1]
        if args.seeds is None:
            found = [{int(d.name.rsplit("__", 1)[1]) for d in runs.glob(f"{prefix}__{a}__*")} for a in args.agents]
            args.seeds = sorted(set.intersection(*found))
            if not args.seeds:
                raise ValueError(f"{runs} has no seed with a run of every agent of {args.agents}")
        dirs = {(a, s): runs / f"{prefix}__{a}__{s}" for a in args.agents for s in args.seeds}
        missing = [str(d) for d in dirs.values() if not (d / "meta.json").is_file()]
        if missing:
            raise ValueError(f"no run in {', '.join(missing)}")
        robust = read_meta(dirs[("robust", args.seeds[0])], ("config",))["config"]["robust_kwargs"]
        weights = {key: model_checksums(d, ("best",))["best"]["sha256"] for key, d in dirs.items()}
        out = Path(args.out)
        long_l1 = float(gym.spec(LONG_ID).kwargs["link_length_1"])
        conditions = {"original": (1.0, 1.0), "long": (long_l1, long_l1),
                      "long dynamics, nominal goal": (long_l1, 1.0), "nominal dynamics, long goal": (1.0, long_l1)}
        saved = saved_rows(out / "long_link.csv", weights, args.episodes, args.seed, tuple(conditions))
        regular = ("regular", args.seeds[0])
        policies = {key: greedy_policy(load_run_model(d, "best")) for key, d in dirs.items()
                    if key not in saved or key == regular}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for key in tqdm(dirs, desc="runs", unit="run"):
        if key in saved:
            rows += saved[key]
            continue
        for name, (dynamics, goal) in conditions.items():
            total, reached = returns(policies[key], dynamics, goal, args.episodes, args.seed)
            # Rounded as the csv keeps them, so the tables are the same whether a run is measured or read back.
            rows.append((*key, name, round(float(total.mean()), 2), round(float(reached.mean()), 2)))
    print(f"{len(saved)} of {len(dirs)} runs read from {out / 'long_link.csv'} (same weights), "
          f"{len(dirs) - len(saved)} measured")
    perturbed = {env_id: dict(gym.spec(env_id).kwargs) for env_id in task.perturbed_ids}
    scale = np.asarray(task.state_scale, dtype=float)
    deviations = one_step_deviations(policies[regular], perturbed, scale, robust["norm"], args.episodes, args.seed)

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["agent", "seed", "condition", "mean_return", "reached_goal", "weights", "episodes", "reset_seed"])
    writer.writerows([a, s, c, f"{v:.2f}", f"{g:.2f}", weights[(a, s)], args.episodes, args.seed]
                     for a, s, c, v, g in rows)
    atomic_write_text(out / "long_link.csv", buf.getvalue())
    command = f"python scripts/acrobot_long_link.py {shlex.join(sys.argv[1:] if argv is None else argv)}".strip()
    mean = {(a, c): np.mean([v for a2, _, c2, v, _ in rows if (a2, c2) == (a, c)]) for a in args.agents
            for c in conditions}
    reached = {a: np.mean([g for a2, _, c2, _, g in rows if (a2, c2) == (a, "long")]) for a in args.agents}
    recorded = {a: np.mean([np.mean(read_evaluation(dirs[(a, s)])["returns"][LONG_ID]["best"]) for s in args.seeds])
                for a in args.agents}
    lines = [
        "# Acrobot's long upper link: the goal line or the dynamics",
        "",
        f"_Generated by: {command}_  ",
        f"_Best checkpoints of seeds {args.seeds}, greedy, {args.episodes} episodes per condition from the same initial "
        f"states (reset seeds {args.seed} to {args.seed + args.episodes - 1}); the long link is {long_l1:g} m "
        f"({LONG_ID}). Per-run means in long_link.csv._",
        "",
        "Mean return over seeds: the long link in both the dynamics and the goal test (`long`, the id), in one of "
        "them only, and in neither (`original`). The last column is the id's entry of the reward table (eval.json: "
        "other initial states), a check that `long` is the id; then the share of `long`'s episodes that reach the goal "
        "within the 500 steps.",
        "",
        "| agent | " + " | ".join(conditions) + " | long, reward table | long, goal reached |",
        "|---|" + "---|" * (len(conditions) + 2),
    ]
    lines += [f"| {a} | " + " | ".join(f"{mean[(a, c)]:.1f}" for c in conditions) + f" | {recorded[a]:.1f} | "
              f"{100 * reached[a]:.0f} % |" for a in args.agents]
    order = "ℓ∞" if robust["norm"] == "linf" else "ℓ2"
    lines += [
        "",
        f"How far one step moves the state: from the {sum(len(v) for v in deviations.values()) // len(deviations)} "
        f"states the regular agent (seed {args.seeds[0]}) visits on the nominal id, the {order} norm of (perturbed "
        f"next observation - nominal next observation) / state scale, the units of the robust agents' rho "
        f"({robust['rho']:g}).",
        "",
        "| perturbed id | median | 90th percentile | steps within rho |",
        "|---|---|---|---|",
    ]
    for env_id, values in deviations.items():
        lines.append(f"| {task.labels[env_id]} | {np.median(values):.3f} | {np.quantile(values, 0.9):.3f} | "
                     f"{100 * np.mean(values <= robust['rho']):.1f} % |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "long_link.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
