"""Train one run (env, agent, seed) with nominal model selection, resumably and atomically."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

import robustrl
from robustrl.agents import (
    AgentConfig,
    checkpoint_bytes,
    load_agent,
    load_checkpoint,
    load_config,
    make_agent,
)
from robustrl.checks import check_name, check_seed, is_int
from robustrl.envs import check_env_id
from robustrl.experiments.evaluation import (
    EVALUATION_PRECISION,
    EVALUATION_SEED,
    NominalSelectionCallback,
    greedy_policy,
    greedy_returns_by_id,
)
from robustrl.experiments.io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_json,
    remove_temporaries,
)
from robustrl.experiments.locks import run_lock
from robustrl.experiments.progress import Reporter, training_reports
from robustrl.experiments.records import read_evaluation, read_meta
from robustrl.experiments.run_files import (
    CHECKPOINT_SUFFIX,
    CHECKPOINTS,
    check_checkpoint,
    checkpoint_files,
    is_complete,
    is_trained,
    is_weightless,
    model_checksums,
    run_task,
)
from robustrl.experiments.tables import agent_label
from robustrl.kernels import kernel_report
from robustrl.tasks import get_task

__all__ = [
    "RunSpec",
    "TrainingProgress",
    "evaluate_run",
    "is_complete",
    "is_evaluated",
    "jsonable",
    "load_run_model",
    "planned_steps",
    "save_final_checkpoint",
    "target_stats_csv",
    "train_run",
    "verify_evaluation",
]


def planned_steps(model: Any, total_timesteps: int) -> int:
    """The environment steps ``model.learn(total_timesteps)`` will take from ``model.num_timesteps``.

    SB3's off-policy ``learn`` collects whole rollouts of ``train_freq`` steps on each of ``n_envs`` envs
    until ``num_timesteps`` reaches the budget, so it trains the budget rounded up to a whole rollout:
    ``n_timesteps: 5000`` with ``train_freq: 256`` trains 5,120 steps (SB3's own progress bar then reads
    "5,120/5,000"). A ``train_freq`` counted in episodes has no fixed length: the budget is returned.
    """
    remaining = max(total_timesteps - model.num_timesteps, 0)
    train_freq = getattr(model, "train_freq", None)
    if train_freq is None or getattr(train_freq.unit, "value", train_freq.unit) != "step":
        return remaining
    rollout = train_freq.frequency * model.n_envs
    return math.ceil(remaining / rollout) * rollout


class TrainingProgress(BaseCallback):
    """SB3 callback reporting the steps of one run to ``report`` (at most every ``interval`` seconds).

    The last report, at the end of training, has ``done == total``: the steps trained.
    """

    def __init__(self, run: str, report: Reporter, interval: float = 0.25) -> None:
        super().__init__()
        self.run, self.report, self.interval = run, report, interval
        self.start, self.total, self.last = 0, 0, 0.0

    def _done(self) -> int:
        return self.model.num_timesteps - self.start

    def _on_training_start(self) -> None:
        self.start = self.model.num_timesteps
        self.total = planned_steps(self.model, self.locals["total_timesteps"])
        self.last = time.monotonic()
        self.report(self.run, 0, self.total)

    def _on_step(self) -> bool:
        now, done = time.monotonic(), self._done()
        if now - self.last >= self.interval and done < self.total:  # the end is reported once, below
            self.last = now
            self.report(self.run, done, self.total)
        return True

    def _on_training_end(self) -> None:
        self.report(self.run, self._done(), self._done())


@dataclass(frozen=True)
class RunSpec:
    """One training run: agent ``agent`` from the config, trained on ``env_id`` with ``seed``.

    ``overrides`` replace hyperparameters of the config; ``tag`` distinguishes such settings in the run
    name ``{env}__{agent}[-{tag}]__{seed}`` (CleanRL / rl-zoo style).
    """

    agent: str
    seed: int
    env_id: str = field(default_factory=lambda: get_task().nominal_id)
    overrides: dict[str, Any] = field(default_factory=dict)
    tag: str = ""

    @property
    def name(self) -> str:
        """Run folder name."""
        env = self.env_id.split("/")[-1]
        return f"{env}__{agent_label(self.agent, self.tag)}__{self.seed}"

    def resolve(self, config: dict[str, Any] | None = None) -> AgentConfig:
        """The agent configuration of this run; ``ValueError`` for a bad seed or hyperparameter."""
        check_seed(self.seed)
        if self.tag:
            check_name(self.tag, "tag")
        if config is None:
            from robustrl.tasks import task_of

            config = load_config(None, task_of(self.env_id).hyperparameters)
        return AgentConfig.resolve(config, self.env_id, self.agent, self.overrides)



#: The file, in a robust run's folder, with the robust target's statistics (q_spread, target_gap): one row per window
#: of :data:`TARGET_STATS_WINDOW` environment steps, the mean over the ``train`` calls that end in it.
TARGET_STATS = "target_stats.csv"
#: A train call every 256 steps keeps one row per call; one every 4 steps (rl-baselines3-zoo's setting for many
#: tasks) averages 64 calls a row, so a 100k-step run's file stays ~9 KB instead of ~600 KB.
TARGET_STATS_WINDOW = 256


def target_stats_csv(history: list[dict[str, float]], window: int = TARGET_STATS_WINDOW) -> str:
    """The text of :data:`TARGET_STATS` for a robust agent's ``target_history``: per window of ``window`` environment
    steps, the last call's ``timesteps`` and the mean of each statistic over the calls in the window that have it."""
    columns = sorted({key for row in history for key in row} - {"timesteps"})
    windows: dict[int, list[dict[str, float]]] = {}
    for row in history:
        windows.setdefault(-(-int(row["timesteps"]) // window), []).append(row)
    lines = ["timesteps," + ",".join(columns)]
    for rows in windows.values():
        means = [float(np.mean(values)) if (values := [r[c] for r in rows if c in r]) else float("nan")
                 for c in columns]
        lines.append(f"{rows[-1]['timesteps']}," + ",".join(f"{m:.6g}" for m in means))
    return "\n".join(lines) + "\n"


def train_run(spec: RunSpec, runs_dir: str | Path, config: dict[str, Any] | None = None, *,
              progress_bar: bool = False, torch_threads: int | None = 1,
              keep_checkpoints: bool = False, reuse_weightless: bool = False) -> Path:
    """Train ``spec`` into ``runs_dir/spec.name``; skip it if a complete run with the same config exists (or,
    with ``reuse_weightless``, a weightless one: :func:`~robustrl.experiments.run_files.is_weightless`).

    Writes ``best.pt`` (best nominal checkpoint), ``final.pt``, ``curve.csv`` and, last, ``meta.json``;
    the checkpoints are compact (:func:`robustrl.agents.load_checkpoint`), and when the final model is
    the best one it is stored once (``meta.json`` names ``best.pt`` for both). Every file is written
    atomically, so an interrupted run is retrained from step 0 on the next call (which first removes the
    interrupted writes' temporary files). One process at a time trains into a folder: another one holding
    it raises :class:`~robustrl.experiments.locks.RunInUseError` (a ``ValueError``) naming it. With
    ``keep_checkpoints`` every evaluated model is also kept, as ``checkpoints/{timesteps:07d}.pt``
    (saving does not touch the training's random state, so the run trains identically).
    Training uses ``torch_threads`` torch threads (default 1; None keeps the process's setting): the split of a
    reduction over threads changes its last bits, so the same seed gives the same run on any machine only at a
    fixed count, and robustrl's networks are too small to gain from more. The CPU kernels the run trained with
    are recorded in ``meta.json`` (``kernels``: :func:`robustrl.kernels.kernel_report`).
    ``progress_bar`` shows the steps trained (the budget rounded up to whole ``train_freq`` rollouts) when
    no pool or command already collects the progress of this process's runs. With the config's
    ``tensorboard_log`` (an output option, not part of the saved config) SB3 also writes TensorBoard event
    files into ``tensorboard_log/{spec.name}_1`` (``_2``, ... for later trainings of the same name); a
    complete run that is reused writes none.
    """
    check_env_id(spec.env_id)
    cfg = spec.resolve(config)
    run_dir = Path(runs_dir) / spec.name
    if is_complete(run_dir) or (reuse_weightless and is_weightless(run_dir)):
        saved = read_meta(run_dir, ("config",))["config"]
        if saved != jsonable(cfg.to_dict()):
            raise ValueError(f"{run_dir} holds a run with another configuration; remove it or use another --out")
        return run_dir
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with run_lock(run_dir):
            if is_complete(run_dir):  # another process finished it since the check above
                return train_run(spec, runs_dir, config)
            (run_dir / "meta.json").unlink(missing_ok=True)  # a meta.json without its model files is stale
            remove_temporaries(run_dir)
            start = time.perf_counter()
            model = make_agent(cfg, cfg.make_training_env(), seed=spec.seed, verbose=0, device="cpu")
            checkpoint_dir = run_dir / "checkpoints" if keep_checkpoints else None
            selection = NominalSelectionCallback(
                run_dir / f"best{CHECKPOINT_SUFFIX}", cfg.eval_freq, cfg.eval_episodes, env_id=spec.env_id,
                ties=cfg.selection_ties,
                checkpoint_dir=checkpoint_dir, serialize=functools.partial(checkpoint_bytes, config=cfg))
            try:
                with training_reports(progress_bar) as report:
                    progress = [TrainingProgress(spec.name, report)] if report else []
                    # tb_log_name: the run's TensorBoard subfolder is named after it (with _1, _2 ...)
                    model.learn(cfg.n_timesteps, callback=[selection, *progress], tb_log_name=spec.name)
                if not selection.curve or selection.curve[-1][0] != model.num_timesteps:
                    selection.evaluate_now()
            finally:
                if cfg.tensorboard_log is not None:
                    _close_tensorboard(model)
            train_seconds = time.perf_counter() - start
            checkpoints = save_final_checkpoint(
                checkpoint_bytes(model, cfg, base=run_dir / f"best{CHECKPOINT_SUFFIX}"), run_dir)
            atomic_write_text(run_dir / "curve.csv", "timesteps,mean_return,std_return\n" + "".join(
                f"{t},{m:.2f},{s:.2f}\n" for t, m, s in selection.curve))
            history = getattr(model, "target_history", None)
            if history:  # the robust target's spread of Q over the ball and its gap to the plain target
                atomic_write_text(run_dir / TARGET_STATS, target_stats_csv(history))
            atomic_write_json(run_dir / "meta.json", {
                "run": spec.name, "env_id": spec.env_id, "agent": spec.agent, "seed": spec.seed, "tag": spec.tag,
                "algo": cfg.algo, "config": jsonable(cfg.to_dict()), "checkpoints": checkpoints,
                "train_seconds": round(train_seconds, 2),
                "best_timesteps": selection.best_timesteps, "best_selection_mean": selection.best_mean,
                "best_selection_margin": round(selection.best_margin, 6),
                "robustrl": robustrl.__version__, "torch": torch.__version__, "command": " ".join(sys.argv),
                "kernels": kernel_report(),
            })
    except BaseException:
        if created:  # an interrupted or failed first training leaves no empty folder behind
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        raise
    return run_dir


def _close_tensorboard(model: Any) -> None:
    """Write what the model logged since SB3's last dump (the last ``train`` call's values, the final
    evaluation) and close its logger, so the event files are complete and no writer stays open in a process
    that trains more runs."""
    logger = getattr(model, "_logger", None)
    if logger is not None:
        logger.dump(model.num_timesteps)
        logger.close()


def save_final_checkpoint(final: bytes, run_dir: Path) -> dict[str, str]:
    """Write the final checkpoint unless it equals ``best.pt``; returns the ``checkpoints`` entry of meta.json."""
    best = f"best{CHECKPOINT_SUFFIX}"
    final_path = run_dir / f"final{CHECKPOINT_SUFFIX}"
    if (run_dir / best).read_bytes() == final:
        final_path.unlink(missing_ok=True)
        return {"best": best, "final": best}
    atomic_write_bytes(final_path, final)
    return {"best": best, "final": final_path.name}


def jsonable(data: Any) -> Any:
    """Round-trip through the JSON encoder used for meta.json (tuples -> lists, inf -> Infinity)."""
    return json.loads(json.dumps(data))


def load_run_model(run_dir: str | Path, checkpoint: str = "best") -> Any:
    """Load the ``best`` or ``final`` model of a complete run (compact checkpoint, or an older run's ``.zip``)."""
    check_checkpoint(checkpoint)
    run_dir = Path(run_dir)
    path = checkpoint_files(run_dir)[checkpoint]
    if path.suffix == ".zip":
        return load_agent(path, read_meta(run_dir, ("algo",))["algo"])
    return load_checkpoint(path)


def _evaluation_request(episodes: int, seed: int) -> dict[str, Any]:
    # "layout" names how episodes meet seeds: all ids of a checkpoint in one batched rollout.
    return {"episodes": episodes, "seed": seed, "layout": "ids-batched", "precision": EVALUATION_PRECISION}


def is_evaluated(run_dir: str | Path, env_ids: tuple[str, ...] | None = None, episodes: int = 100,
                 seed: int = EVALUATION_SEED) -> bool:
    """Whether ``eval.json`` of ``run_dir`` holds this evaluation (same episodes, seed, layout and ids, every
    checkpoint's returns) of the model files as they are now (same checksums). ``env_ids`` defaults to every id
    of the run's task. A weightless run's are the ones its ``eval.json`` records.

    ``eval.json`` is a cache: one that cannot be read or is not an evaluation (:func:`read_evaluation`)
    holds no evaluation, so :func:`evaluate_run` computes it again and overwrites it.
    """
    if not (Path(run_dir) / "eval.json").is_file() or not is_trained(run_dir):
        return False
    try:
        saved = read_evaluation(run_dir)
    except ValueError:
        return False
    returns = saved["returns"]
    env_ids = run_task(run_dir).ids if env_ids is None else env_ids
    return (saved.get("request") == _evaluation_request(episodes, seed)
            and all(isinstance(returns.get(e), dict) and len(returns[e].get(c, [])) == episodes
                    for e in env_ids for c in CHECKPOINTS)
            and saved.get("models") == model_checksums(run_dir))


def evaluate_run(run_dir: str | Path, env_ids: tuple[str, ...] | None = None, episodes: int = 100,
                 seed: int = EVALUATION_SEED) -> dict[str, Any]:
    """Greedy returns of the best and final models on each id (default: every id of the run's task); cached in
    ``eval.json``.

    All ids of one checkpoint run as one batched rollout (:func:`greedy_returns_by_id`). The cache
    records the checksum of each model file (:func:`model_checksums`) and is used only while they match.
    """
    run_dir = Path(run_dir)
    env_ids = run_task(run_dir).ids if env_ids is None else tuple(env_ids)
    for env_id in env_ids:
        check_env_id(env_id)
    cache = run_dir / "eval.json"
    if is_evaluated(run_dir, env_ids, episodes, seed):
        return read_json(cache)
    remove_temporaries(run_dir)
    result = _evaluate(run_dir, tuple(env_ids), episodes, seed)
    atomic_write_json(cache, result)
    return result


def _evaluate(run_dir: Path, env_ids: tuple[str, ...], episodes: int, seed: int) -> dict[str, Any]:
    """The ``eval.json`` content of ``run_dir``, computed now (nothing read from or written to the cache)."""
    models = model_checksums(run_dir)
    returns: dict[str, dict[str, list[float]]] = {env_id: {} for env_id in env_ids}
    for checkpoint in CHECKPOINTS:
        policy = greedy_policy(load_run_model(run_dir, checkpoint))
        for env_id, values in greedy_returns_by_id(policy, env_ids, episodes, seed).items():
            returns[env_id][checkpoint] = values.tolist()
    return {"run": run_dir.name, "request": _evaluation_request(episodes, seed), "models": models,
            "returns": returns}


def verify_evaluation(run_dir: str | Path) -> list[str]:
    """Evaluate ``run_dir`` again as its ``eval.json`` says it was evaluated and list what differs.

    An empty list means the saved returns are exactly what the run's model files give now, on this
    machine: the check a reader of a table can run without training anything. Each entry names a
    difference (model files changed since the evaluation; returns of a checkpoint on an id).
    """
    run_dir = Path(run_dir)
    saved = read_evaluation(run_dir)
    request = saved.get("request")
    episodes, seed = (request.get("episodes"), request.get("seed")) if isinstance(request, dict) else (None, None)
    if not is_int(episodes, 1) or not is_int(seed, 0) or request != _evaluation_request(episodes, seed):
        return [f"evaluated as {request!r}, which is not how this robustrl evaluates; "
                f"`robustrl evaluate` evaluates it again"]
    env_ids = tuple(check_env_id(env_id) for env_id in saved["returns"])
    now = _evaluate(run_dir, env_ids, episodes, seed)
    differences = [] if saved.get("models") == now["models"] else ["model files changed since the evaluation"]
    for env_id, by_checkpoint in saved["returns"].items():
        for checkpoint, values in by_checkpoint.items():
            if values != now["returns"][env_id][checkpoint]:
                differences.append(f"{checkpoint} on {env_id}: mean {float(np.mean(values)):.2f} saved, "
                                   f"{float(np.mean(now['returns'][env_id][checkpoint])):.2f} now")
    return differences
