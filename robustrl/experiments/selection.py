"""Which nominal-only signal picks robust checkpoints? Train runs that keep every checkpoint, then score them.

Model selection may only look at the nominal env (the perturbed ids are the test conditions; picking
checkpoints by them would tune on the test). The selection score is the nominal
return over 20 episodes (500-step horizon); most late checkpoints tie at 500, and some of those tied
checkpoints are fragile on the perturbed ids. This study keeps every evaluated checkpoint of each run
and scores it with signals that still use the nominal env only (it is why the table breaks those ties by
the safety margin, ``ties: margin``, rather than by recency, ``ties: latest``, its rule until then):

* ``nominal``: the selection score, mean return over the 20 selection episodes (horizon 500);
* ``long``: mean return over the same episodes with a 5000-step horizon;
* ``noisy``: mean return (horizon 500) when each observation is shifted uniformly inside the robust
  agent's own perturbation ball (rho * state_scale, l-inf), i.e. the set its target is robust to;
  ``noisy2`` and ``noisy4`` the same with a ball 2 and 4 times as large;
* ``margin``: mean over steps of ``1 - max(|x| / 2.4, |theta| / 0.2095)`` (how far from failure the policy
  keeps the state), horizon 500.

Each rule picks, per run, the latest checkpoint with the highest score; ``a, then b`` breaks ties of ``a``
by ``b``. The picked checkpoint is then evaluated on the four ids exactly as the table does (100
episodes, the evaluation seed). Runs are trained with the table's training configuration and seeds
(robust: rho = 0.05, eta = 1, m = 16), so the ``nominal`` rule reproduces the earlier ``ties: latest``
table and ``nominal, then margin`` the ``ties: margin`` picks (both checked: returns equal).

The command line is ``python scripts/selection_study.py train|analyze`` (see its ``--help``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustrl.agents import load_checkpoint, load_config
from robustrl.experiments.evaluation import (
    EVALUATION_SEED,
    SELECTION_SEED,
    greedy_policy,
    greedy_returns_by_id,
    greedy_rollout,
)
from robustrl.experiments.io import atomic_write_json, read_json
from robustrl.experiments.tables import bootstrap_diff_ci
from robustrl.experiments.training import RunSpec, train_run
from robustrl.tasks import get_task, id_label

__all__ = [
    "RULES",
    "SIGNAL_KEYS",
    "STUDY_OVERRIDES",
    "parse_seeds",
    "pick",
    "report",
    "rollout",
    "rule_table",
    "score_run",
    "signals",
    "study_spec",
    "train_one",
]

#: Where the study trains its runs (not committed) and writes its tables, by default.
RUNS = Path("runs/selection")
OUT = Path("results/selection")


#: The study's runs are pinned to the configuration they were trained with, whatever the packaged
#: config later says: the robust agent at eta = 1, and the earlier tie rule (only best.pt depends on it).
STUDY_OVERRIDES: dict[str, dict[str, Any]] = {
    "regular": {"ties": "latest"},
    "robust": {"ties": "latest", "rho": 0.05, "eta": 1.0},
}


def study_spec(agent: str, seed: int) -> RunSpec:
    """The run of ``agent`` and ``seed`` in this study (the table's training config, pinned)."""
    return RunSpec(agent=agent, seed=seed, overrides=STUDY_OVERRIDES.get(agent, {}))


def train_one(agent: str, seed: int, runs_dir: str | Path = RUNS) -> str:
    """Train one run into ``runs_dir``, keeping every evaluated checkpoint (skipped when done)."""
    return train_run(study_spec(agent, seed), runs_dir, torch_threads=1, keep_checkpoints=True).name


def rollout(policy: Any, n: int, seed: int, horizon: int | None = None, noise: np.ndarray | None = None,
            noise_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Returns and mean safety margins of ``n`` nominal episodes (optionally with observation noise); ``horizon``
    is the registered step limit unless given."""
    return greedy_rollout(policy, get_task().nominal_id, n, seed, max_episode_steps=horizon, observation_noise=noise,
                          noise_seed=noise_seed)


#: The keys of :func:`signals` (the first key each function writes), to skip cached checkpoints.
SIGNAL_KEYS = ("nominal", "long", "noisy", "noisy2", "noisy4", get_task().nominal_id)


def signals(policy: Any, ball: np.ndarray, episodes: int) -> dict[str, Any]:
    """Functions computing each signal (and the test returns) of one policy, by name."""
    def nominal_and_margin() -> dict[str, float]:
        returns, margin = rollout(policy, 20, SELECTION_SEED)
        return {"nominal": float(returns.mean()), "margin": float(margin.mean())}

    def noisy(k: float, key: str) -> Any:
        return lambda: {key: float(rollout(policy, 20, SELECTION_SEED, noise=k * ball,
                                           noise_seed=SELECTION_SEED)[0].mean())}

    return {
        "nominal": nominal_and_margin,
        "long": lambda: {"long": float(rollout(policy, 20, SELECTION_SEED, horizon=5000)[0].mean())},
        "noisy": noisy(1, "noisy"),
        "noisy2": noisy(2, "noisy2"),
        "noisy4": noisy(4, "noisy4"),
        get_task().nominal_id: lambda: {env_id: float(v.mean()) for env_id, v in
                             greedy_returns_by_id(policy, get_task().ids, episodes, EVALUATION_SEED).items()},
    }


def score_run(name: str, episodes: int, runs_dir: str | Path = RUNS) -> str:
    """Score every checkpoint of one run with each signal and on the four ids; cached in scores.json."""
    torch.set_num_threads(1)
    run_dir = Path(runs_dir) / name
    cache = run_dir / "scores.json"
    scores = read_json(cache) if cache.is_file() else {}
    robust = study_spec("robust", 0).resolve(load_config()).robust_kwargs
    ball = float(robust["rho"]) * np.asarray(robust["state_scale"], dtype=float)
    for path in sorted((run_dir / "checkpoints").glob("*.pt")):
        entry = scores.setdefault(path.stem, {})
        if all(key in entry for key in SIGNAL_KEYS):
            continue
        policy = greedy_policy(load_checkpoint(path), "float32")  # as the training's selection saw it
        for key, compute in signals(policy, ball, episodes).items():
            if key not in entry:
                entry.update(compute())
    atomic_write_json(cache, scores)
    return name


def parse_seeds(text: str) -> list[int]:
    """``"0-9"`` or ``"0,3,5"``."""
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


RULES: dict[str, tuple[str, ...]] = {
    "nominal (ties: latest)": ("nominal",),
    "long": ("long",),
    "noisy": ("noisy",),
    "noisy x2": ("noisy2",),
    "noisy x4": ("noisy4",),
    "margin": ("margin",),
    "nominal, then long": ("nominal", "long"),
    "nominal, then noisy": ("nominal", "noisy"),
    "nominal, then margin (ties: margin)": ("nominal", "margin"),
    "nominal, then noisy x2": ("nominal", "noisy2"),
    "nominal, then noisy x4": ("nominal", "noisy4"),
}


def pick(scores: dict[str, dict[str, float]], keys: tuple[str, ...]) -> str:
    """The checkpoint with the lexicographically highest ``keys``; ties go to the latest checkpoint."""
    return max(sorted(scores), key=lambda stem: (*(scores[stem][k] for k in keys), int(stem)))


def rule_table(per_run: dict[str, dict[str, dict[str, float]]], runs: list[str],
               keys: tuple[str, ...]) -> np.ndarray:
    """Seeds x ids: test returns of the checkpoint each run picks under the rule ``keys``."""
    return np.array([[per_run[n][pick(per_run[n], keys)][env_id] for env_id in get_task().ids] for n in runs])


def report(names: list[str], agents: list[str], seeds: str, runs_dir: str | Path = RUNS,
           out_dir: str | Path = OUT) -> str:
    """Write scores-<seeds>.csv and selection-<seeds>.md from the cached scores; returns the Markdown."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    per_run = {name: read_json(Path(runs_dir) / name / "scores.json") for name in names}
    for name, scores in per_run.items():
        for stem, s in scores.items():
            rows.append({"run": name, "timesteps": int(stem), **{k: round(v, 4) for k, v in s.items()}})
    with open(out_dir / f"scores-seeds{seeds}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    runs_of = {agent: [n for n in names if n.split("__")[1] == agent] for agent in agents}
    short = [id_label(env_id) for env_id in get_task().ids]
    lines = [
        f"# Which nominal-only signal picks robust checkpoints? (seeds {seeds})",
        "",
        (f"Generated by `python scripts/selection_study.py train --agents {' '.join(agents)} --seeds {seeds}` "

        f"and `... analyze` with the same arguments: {len(names)} runs with the table's training configuration "
        "(robust pinned at eta = 1, its packaged value when the study ran), "
        f"{len(rows)} checkpoints (every 2500 steps and the last one). Each cell: mean ± std across seeds "
        "of the picked checkpoint's mean return (100 episodes, the table's evaluation seed); 'perturbed' is "
        "the mean over the three perturbed ids. Every rule uses the nominal env only; `a, then b` breaks "
        "ties of `a` by `b`; remaining ties go to the latest checkpoint. Signals: see the docstring of "
        "robustrl/experiments/selection.py."),
        "",
        "| agent | rule | " + " | ".join(short) + " | perturbed | seeds < 475 on some id |",
        "|---|---|" + "---|" * (len(short) + 2),
    ]
    for agent, runs in runs_of.items():
        for rule, keys in RULES.items():
            table = rule_table(per_run, runs, keys)
            cells = [f"{table[:, k].mean():.1f} ± {table[:, k].std(ddof=1):.1f}" for k in range(len(get_task().ids))]
            weak = int((table.min(axis=1) < 475).sum())
            lines.append(f"| {agent} | {rule} | " + " | ".join(cells)
                         + f" | {table[:, 1:].mean():.1f} | {weak}/{len(runs)} |")
    if "robust" in runs_of and "regular" in runs_of:
        lines += ["", "Robust − regular when both agents use the same rule [95% bootstrap CI over seeds]:", "",
                  "| rule | " + " | ".join(short) + " |", "|---|" + "---|" * len(short)]
        for rule, keys in RULES.items():
            a, b = rule_table(per_run, runs_of["robust"], keys), rule_table(per_run, runs_of["regular"], keys)
            cells = []
            for k in range(len(get_task().ids)):
                low, high = bootstrap_diff_ci(a[:, k], b[:, k])
                cells.append(f"{a[:, k].mean() - b[:, k].mean():+.1f} [{low:+.1f}, {high:+.1f}]")
            lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    lines += ["", "Oracle (not a rule: it looks at the perturbed ids), per run the checkpoint with the best "
              "perturbed mean:", ""]
    for agent, runs in runs_of.items():
        best = [max(per_run[n].values(), key=lambda s: np.mean([s[e] for e in get_task().ids[1:]])) for n in runs]
        table = np.array([[p[env_id] for env_id in get_task().ids] for p in best])
        lines.append(f"- {agent}: " + ", ".join(f"{h} {table[:, k].mean():.1f}" for k, h in enumerate(short)))
    text = "\n".join(lines) + "\n"
    (out_dir / f"selection-seeds{seeds}.md").write_text(text)
    return text

