"""The main job: train agents over seeds, evaluate them, write the reward table and the plots."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from robustrl.agents import AgentConfig, available_agents, load_config, read_checkpoint
from robustrl.checks import check_int
from robustrl.experiments.evaluation import EVALUATION_SEED
from robustrl.experiments.io import atomic_write_json
from robustrl.experiments.parallel import run_calls
from robustrl.experiments.ray_backend import check_backend, run_calls_on_ray
from robustrl.experiments.plots import plot_robustness_curves, plot_training_curves
from robustrl.experiments.tables import config_summary, write_reward_tables
from robustrl.experiments.curves import robustness_run
from robustrl.experiments.run_files import (
    CHECKPOINT_SUFFIX,
    MissingWeightsError,
    checkpoint_files,
    is_weightless,
)
from robustrl.experiments.training import RunSpec, evaluate_run, is_complete, load_run_model, train_run
from robustrl.tasks import DEFAULT_TASK, Task, get_task

__all__ = ["ReproduceConfig", "QUICK", "TABLE_AGENTS", "evaluate_runs", "records_hold", "reproduce",
           "train_runs"]


#: The order of the agents in the tables (regular first: the baseline of every difference).
TABLE_AGENTS = ("regular", "robust", "robust-mean", "robust-hard", "domain-randomization", "robust-pgd", "sa-dqn",
                "robust-sa")


@dataclass
class ReproduceConfig:
    """What ``robustrl reproduce`` runs. ``QUICK`` is the few-minute preset."""

    seeds: int = 10
    #: the agents to train; None: every agent the task's hyperparameters configure, in :data:`TABLE_AGENTS`' order
    agents: tuple[str, ...] | None = None
    episodes: int = 100
    #: episodes per value of the task's robustness-curve grid (none are run for a task without a grid)
    robustness_episodes: int = 20
    out: Path = Path("runs/reproduce")
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    overrides: dict[str, Any] = field(default_factory=dict)
    config_path: Path | None = None
    #: ``"local"`` (a process pool) or ``"ray"`` (Ray tasks; ``address`` names a cluster, default a local Ray)
    backend: str = "local"
    address: str | None = None
    #: the task (a packaged task's name or a task file): its nominal id trains, its ids are evaluated
    task: str = DEFAULT_TASK

    @property
    def resolved_task(self) -> Task:
        """The :class:`~robustrl.tasks.Task` of :attr:`task`."""
        return get_task(self.task)

    @property
    def resolved_agents(self) -> tuple[str, ...]:
        """:attr:`agents`, or every agent configured for the task's nominal id (:data:`TABLE_AGENTS` first)."""
        if self.agents is not None:
            return tuple(self.agents)
        configured = available_agents(self.load_config(), self.resolved_task.nominal_id)
        return (*[a for a in TABLE_AGENTS if a in configured], *[a for a in configured if a not in TABLE_AGENTS])

    def load_config(self) -> dict[str, Any]:
        """The hyperparameters: :attr:`config_path`, or the task's packaged file."""
        return load_config(self.config_path, self.resolved_task.hyperparameters)

    def validate(self) -> None:
        """Raise ``ValueError`` for values that cannot work, before anything runs."""
        for name in ("seeds", "episodes", "robustness_episodes", "jobs"):
            value = getattr(self, name)
            check_int(value, name, 1)
        check_backend(self.backend, self.address)
        config, nominal = self.load_config(), self.resolved_task.nominal_id
        if not self.resolved_agents:
            raise ValueError(f"no agents given; valid: {', '.join(available_agents(config, nominal))}")
        for agent in self.resolved_agents:
            AgentConfig.resolve(config, nominal, agent, self.overrides)  # checks names and values


#: The few-minute preset of ``robustrl reproduce --quick``: fields of :class:`ReproduceConfig` (2 seeds of the
#: regular and robust agents, 15k steps, 20 evaluation episodes, output ``runs/quick``).
QUICK = dict(seeds=2, agents=("regular", "robust"), episodes=20, robustness_episodes=5, out=Path("runs/quick"),
             overrides={"n_timesteps": 15_000, "eval_freq": 2_500, "eval_episodes": 10})


def _train_worker(spec: RunSpec, runs_dir: Path, config: dict[str, Any]) -> str:
    train_run(spec, runs_dir, config, torch_threads=1)
    return spec.name


def records_hold(run_dir: Path, env_ids: tuple[str, ...] | None, episodes: int, robustness_episodes: int) -> bool:
    """Whether a weightless run's records (``eval.json``, ``robustness.json``) hold what :func:`evaluate_runs` asks
    of it (``episodes`` on each id, default every id of its task; the robustness grid at ``robustness_episodes``,
    0: none), so its weights are not needed."""
    try:
        evaluate_run(run_dir, env_ids, episodes, EVALUATION_SEED)
        if robustness_episodes:
            robustness_run(run_dir, episodes=robustness_episodes)
    except MissingWeightsError:  # raised before anything is written
        return False
    return True


def _run(fn: Any, calls: list[tuple[Any, ...]], jobs: int, backend: str, address: str | None,
         done: Any) -> None:
    if backend == "ray" and calls:
        run_calls_on_ray(fn, calls, min(jobs, len(calls)), address, done)
    else:
        run_calls(fn, calls, jobs, done)


def train_runs(specs: Iterable[RunSpec], runs_dir: Path, config: dict[str, Any], jobs: int = 1,
               backend: str = "local", address: str | None = None, reuse: Iterable[str] = ()) -> list[Path]:
    """Train every incomplete run of ``specs`` (``jobs`` processes or Ray tasks, one torch thread each).

    Each running run shows a progress bar under the overall one. On Ctrl-C the runs not started are
    cancelled and the running ones stop: complete runs stay, and a rerun trains the others from step 0.
    The weightless runs named in ``reuse`` are kept as they are (their records stand for the run); any
    other weightless run is trained again, which rebuilds its weights.
    """
    specs, reuse = list(specs), set(reuse)
    todo = [s for s in specs if not is_complete(runs_dir / s.name)
            and not (s.name in reuse and is_weightless(runs_dir / s.name))]
    with tqdm(total=len(todo), desc="training runs", unit="run", disable=not todo) as bar:
        _run(_train_worker, [(spec, runs_dir, config) for spec in todo], jobs, backend, address,
             lambda _: bar.update(1))
    for spec in specs:  # a complete (or reused weightless) run with another config raises here, naming its folder
        train_run(spec, runs_dir, config, reuse_weightless=spec.name in reuse)
    return [runs_dir / s.name for s in specs]


def _evaluate_worker(run_dir: Path, episodes: int, robustness_episodes: int, env_ids: tuple[str, ...] | None) -> str:
    torch.set_num_threads(1)
    evaluate_run(run_dir, env_ids, episodes, EVALUATION_SEED)
    if robustness_episodes:
        robustness_run(run_dir, episodes=robustness_episodes)
    return run_dir.name


def evaluate_runs(run_dirs: Iterable[Path], episodes: int = 100, robustness_episodes: int = 20,
                  env_ids: tuple[str, ...] | None = None, jobs: int = 1, backend: str = "local",
                  address: str | None = None) -> None:
    """Evaluate each run on every id (``eval.json``; default: every id of the run's task) and over the robustness
    grid (``robustness.json``).

    With ``jobs > 1`` the runs are split over that many processes (one torch thread each). Every model
    file of every run is read first (the weights of a compact checkpoint, a whole ``.zip`` model), so a
    missing or damaged one stops this (naming its file) before any evaluation is written. A weightless run is
    read from its records if they hold this evaluation (:func:`records_hold`); if not, this stops first, naming
    the command that rebuilds its weights.
    """
    run_dirs = list(run_dirs)
    for run_dir in run_dirs:
        if is_weightless(run_dir):
            if not records_hold(run_dir, env_ids, episodes, robustness_episodes):
                checkpoint_files(run_dir)  # a MissingWeightsError naming the command that rebuilds them
            continue
        for checkpoint, path in checkpoint_files(run_dir).items():
            if path.suffix == CHECKPOINT_SUFFIX:
                read_checkpoint(path)
            else:
                load_run_model(run_dir, checkpoint)
    with tqdm(total=len(run_dirs), desc="evaluating runs", unit="run") as bar:
        _run(_evaluate_worker, [(d, episodes, robustness_episodes, env_ids) for d in run_dirs], jobs, backend,
             address, lambda _: bar.update(1))


def reproduce(cfg: ReproduceConfig, command: str | None = None) -> list[Path]:
    """Train, evaluate, tabulate and plot; resumable (complete runs and evaluations are reused).

    The table holds every evaluated run in ``cfg.out / "runs"``; its header names those this command did not
    make (another command's agents or seeds) and gives their saved configurations.

    A weightless run (a table committed without its weights) is reused when its records hold this command's
    evaluations (:func:`records_hold`); otherwise it is trained again, which rebuilds its weights.
    """
    cfg.validate()
    config, task = cfg.load_config(), cfg.resolved_task
    runs_dir = cfg.out / "runs"
    specs = [RunSpec(agent, seed, task.nominal_id, overrides=dict(cfg.overrides))
             for agent in cfg.resolved_agents for seed in range(cfg.seeds)]
    # A task without a parameter grid (judged on its uncertainty sets by `robustrl robustness`) has no curves.
    robustness_episodes = cfg.robustness_episodes if task.curve_grid else 0
    reuse = [s.name for s in specs if is_weightless(runs_dir / s.name)
             and records_hold(runs_dir / s.name, task.ids, cfg.episodes, robustness_episodes)]
    run_dirs = train_runs(specs, runs_dir, config, cfg.jobs, cfg.backend, cfg.address, reuse=reuse)
    evaluate_runs(run_dirs, cfg.episodes, robustness_episodes, task.ids, jobs=cfg.jobs, backend=cfg.backend,
                  address=cfg.address)
    command = command or "robustrl " + shlex.join(sys.argv[1:])
    summary = {agent: config_summary(AgentConfig.resolve(config, task.nominal_id, agent, cfg.overrides).to_dict())
               for agent in cfg.resolved_agents}
    outputs = write_reward_tables(runs_dir, cfg.out, command, summary, made=[s.name for s in specs])
    outputs.append(plot_training_curves(runs_dir, cfg.out / "training_curves.png"))
    if robustness_episodes:
        outputs.append(plot_robustness_curves(runs_dir, cfg.out / "robustness_curves.png"))
    outputs.append(atomic_write_json(cfg.out / "reproduce.json", {
        "command": command, "seeds": cfg.seeds, "episodes": cfg.episodes, "agents": summary,
        "evaluation_seed": EVALUATION_SEED}))
    return outputs

