"""Choose a task's perturbed ids and its state scale on held-out seeds, by a rule fixed before the runs.

The reward table's perturbed MDPs should be hard for a regular agent without being impossible, and the robust
agents' radius and the attack budgets are in units of a per-dimension state scale. For a new task both are chosen
here, on training seeds the tables never use (the tables use 0-9, the held-out sweeps 10-19), by this rule,
committed before any of its runs:

1. Train the regular agent with the task's packaged hyperparameters on seeds 100, 101 and 102.
2. State scale: per observation dimension, half the distance between the 1st and 99th percentiles of the states
   the three best checkpoints visit on the nominal id (10 greedy episodes each, their first 500 steps, finished
   episodes reset), rounded to 2 significant digits; a dimension never below 1e-3 times the largest.
3. Perturbed ids: for each candidate (parameter, direction) of :data:`CANDIDATES`, walk the task's curve grid away
   from the nominal value in that direction; the magnitude is the first value at which the regular agent's return
   (mean over the three seeds of the mean over 20 episodes) has fallen by at least :data:`DROP` (25 %) of the
   task's return range below its nominal return. If no value of the grid gets there, the farthest value, marked
   ``weak`` (the id then tests robustness less than CartPole's do).
4. Write ``results/calibration/TASK.md`` and ``.json`` and ``TASK.png`` (return against each candidate parameter,
   the threshold and the chosen magnitude marked). The ids and the state scale are then written, with a pointer
   to this file, into the task's YAML and the registrations of its family.

The MuJoCo tasks (InvertedPendulum, Hopper) are judged on RRLS's uncertainty sets, not on perturbed ids: for them
only rule 2 applies (their state scale, the units of the actor-critic suite's attack and noise budgets), from the
same three regular agents; no figure is drawn.

    python scripts/calibrate_task.py --task acrobot --jobs 2
    python scripts/calibrate_task.py --task lunarlander --jobs 2
    python scripts/calibrate_task.py --task pendulum --jobs 2
    python scripts/calibrate_task.py --task invertedpendulum --jobs 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from robustrl.agents import load_config
from robustrl.agents.robust_target import estimate_state_scale
from robustrl.experiments.attack_strength import visited_states
from robustrl.experiments.curves import robustness_run
from robustrl.experiments.io import atomic_write_json
from robustrl.experiments.pipeline import train_runs
from robustrl.experiments.plots import save_figure
from robustrl.experiments.training import RunSpec, load_run_model
from robustrl.tasks import get_task

#: Held-out training seeds of the calibration.
SEEDS = (100, 101, 102)
#: The fall of the regular agent's return, as a fraction of the task's return range, that makes a perturbation.
DROP = 0.25
#: Candidate perturbations per task: (parameter, "up" or "down", label of the id, registered id), chosen for
#: their physical meaning in the manner of CartPole's heavy pole, short pole and strong gravity.
CANDIDATES: dict[str, list[tuple[str, str, str, str]]] = {
    "acrobot": [("link_mass_1", "up", "Heavy upper link", "robustrl/AcrobotHeavyUpperLink-v1"),
                ("link_mass_2", "up", "Heavy lower link", "robustrl/AcrobotHeavyLowerLink-v1"),
                ("link_length_1", "up", "Long upper link", "robustrl/AcrobotLongUpperLink-v1")],
    "pendulum": [("m", "up", "Heavy pendulum", "robustrl/PendulumHeavy-v1"),
                 ("l", "up", "Long pendulum", "robustrl/PendulumLong-v1"),
                 ("max_torque", "down", "Weak motor", "robustrl/PendulumWeakMotor-v1")],
    "lunarlander": [("gravity", "up", "Strong gravity", "robustrl/LunarLanderStrongGravity-v3"),
                    ("main_engine_power", "down", "Weak main engine", "robustrl/LunarLanderWeakMainEngine-v3"),
                    ("side_engine_power", "down", "Weak side engines", "robustrl/LunarLanderWeakSideEngines-v3")],
    # Judged on RRLS's uncertainty sets (configs/uncertainty/): the state scale only.
    "invertedpendulum": [],
    "hopper": [],
}


def _round(value: float, digits: int = 2) -> float:
    return float(f"{value:.{digits}g}")


def state_scale(states: np.ndarray) -> list[float]:
    """Rule 2: :func:`~robustrl.agents.robust_target.estimate_state_scale` (the estimator of
    ``state_scale="auto"``), rounded to 2 significant digits."""
    return [_round(v) for v in estimate_state_scale(states)]


def choose(values: list[float], returns: np.ndarray, nominal: float, direction: str, threshold: float) -> dict:
    """Rule 3 for one candidate: the first grid value past ``nominal`` in ``direction`` whose return is at most
    ``threshold``, or the farthest one (``weak``)."""
    order = [i for i in np.argsort(values) if (values[i] > nominal if direction == "up" else values[i] < nominal)]
    if direction == "down":
        order = order[::-1]
    if not order:
        raise ValueError(f"the grid {values} has no value {direction} from the nominal {nominal}")
    for i in order:
        if returns[i] <= threshold:
            return {"value": values[i], "return": float(returns[i]), "weak": False}
    return {"value": values[order[-1]], "return": float(returns[order[-1]]), "weak": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, choices=sorted(CANDIDATES))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=None, help="default runs/calibration/TASK")
    parser.add_argument("--out", type=Path, default=Path("results/calibration"))
    parser.add_argument("--n-timesteps", type=int, default=None,
                        help="a smaller training budget, to try the script (its results then choose nothing)")
    args = parser.parse_args(argv)
    task = get_task(args.task)
    runs_dir = args.runs or Path("runs/calibration") / task.name
    config = load_config(None, task.hyperparameters)
    overrides = {} if args.n_timesteps is None else {"n_timesteps": args.n_timesteps}
    specs = [RunSpec("regular", seed, task.nominal_id, overrides=overrides) for seed in SEEDS]
    run_dirs = train_runs(specs, runs_dir, config, args.jobs)
    grid = {parameter: task.curve_grid[parameter] for parameter, *_ in CANDIDATES[task.name]}
    curves = np.array([[robustness_run(d, grid=grid, episodes=20)["mean_returns"][p] for p in grid]
                       for d in run_dirs] if grid else np.empty((len(run_dirs), 0)), dtype=object)
    nominal_params = task.nominal_params()
    low, high = task.return_range
    states = np.concatenate([visited_states(load_run_model(d, "best"), episodes=10, steps=500,
                                            env_id=task.nominal_id) for d in run_dirs])
    chosen, panels = [], []
    for k, (parameter, direction, label, env_id) in enumerate(CANDIDATES[task.name]):
        values = grid[parameter]
        returns = np.mean([np.asarray(curves[s, k], dtype=float) for s in range(len(run_dirs))], axis=0)
        nominal_return = float(returns[values.index(nominal_params[parameter])])
        threshold = nominal_return - DROP * (high - low)
        pick = choose(values, returns, nominal_params[parameter], direction, threshold)
        chosen.append({"parameter": parameter, "direction": direction, "label": label, "env_id": env_id,
                       "nominal": nominal_params[parameter], "nominal_return": nominal_return,
                       "threshold": threshold, **pick, "grid": values, "returns": returns.tolist()})
        panels.append((parameter, values, returns, threshold, pick))
    result = {"task": task.name, "seeds": list(SEEDS), "drop": DROP, "return_range": [low, high],
              "state_scale": state_scale(states), "states": len(states), "perturbations": chosen,
              "command": "python scripts/calibrate_task.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / f"{task.name}.json", result)
    what = "perturbed ids and state scale" if chosen else "state scale (judged on uncertainty sets: no perturbed ids)"
    lines = [f"# Calibration of {task.title}: {what}", "",
             f"Generated by `{result['command']}` (rule in the script's docstring): regular agents on held-out "
             f"seeds {', '.join(map(str, SEEDS))}, {task.hyperparameters} hyperparameters"
             + (f"; 20 greedy episodes per grid value; drop = {DROP:.0%} of the return range [{low:g}, {high:g}]."
                if chosen else "; 10 greedy episodes each on the nominal id, their first 500 steps."), ""]
    if chosen:
        lines += ["| id | label | parameter | nominal | chosen | return at nominal | threshold | return at chosen | |",
                  "|---|---|---|---|---|---|---|---|---|"]
    for c in chosen:
        lines.append(f"| `{c['env_id']}` | {c['label']} | {c['parameter']} | {c['nominal']:g} | {c['value']:g} | "
                     f"{c['nominal_return']:.1f} | {c['threshold']:.1f} | {c['return']:.1f} | "
                     f"{'weak: no grid value reaches the threshold' if c['weak'] else ''} |")
    lines += [""] * bool(chosen) + [
        f"State scale (half the 1st-99th percentile range of {len(states)} visited states per dimension): "
        f"`{result['state_scale']}`", ""]
    if chosen:
        lines += [f"![return against each candidate parameter]({task.name}.png)", ""]
    (args.out / f"{task.name}.md").write_text("\n".join(lines))
    if not chosen:
        print("\n".join(lines))
        return 0
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6 * len(panels), 3.6))
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    for ax, (parameter, values, returns, threshold, pick) in zip(axes, panels):
        per_seed = np.array([np.asarray(curves[s, [p for p, *_ in CANDIDATES[task.name]].index(parameter)],
                                        dtype=float) for s in range(len(run_dirs))])
        for row in per_seed:
            ax.plot(values, row, color="0.7", lw=0.8)
        ax.plot(values, returns, marker="o", color="C0", label="mean of 3 seeds")
        ax.axhline(threshold, color="C3", ls="--", lw=1, label=f"nominal - {DROP:.0%} of the range")
        ax.axvline(nominal_params[parameter], color="k", ls=":", lw=1)
        ax.axvline(pick["value"], color="C3", lw=1)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(values, [f"{v:g}" for v in values], fontsize=7)
        ax.set_xlabel(task.parameter_labels[parameter] + " (log scale)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("greedy return, regular agent (best checkpoint)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Calibration of {task.title}'s perturbed ids (held-out seeds {', '.join(map(str, SEEDS))}; "
                 "dotted: nominal, red: chosen)")
    save_figure(fig, args.out / f"{task.name}.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
