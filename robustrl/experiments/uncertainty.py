"""Uncertainty sets over a task's physical parameters, and a run's greedy return at every setting of one.

A named *uncertainty set* is a grid over a box of physical parameters, read from a YAML file::

    name: moderate
    description: what the set is for (optional)
    parameters:
      PARAM_A: {range: [0.05, 0.5], values: [0.05, 0.1, 0.5]}
      PARAM_B: {range: [0.25, 0.75], values: [0.25, 0.5, 0.75]}
      ...

Each parameter states its range and the values of the grid inside it (a range need not contain the nominal value:
RRLS's Hopper sets, from M2TD3, lie below the nominal torso and thigh masses);
the settings are the product of the values, the parameters the set does not name stay nominal. Each task's sets
are packaged in ``robustrl/configs/uncertainty/TASK/`` (the default task's: ``moderate``, Packer et al., 2018,
"random" ranges, and ``wide``, reaching the reward table's perturbed ids); a user passes the path of their own
file instead of a name.

:func:`uncertainty_run` evaluates a run's model at every setting as one batched rollout (one sub-environment
per (setting, episode)) and caches the mean returns per run in ``uncertainty.json``, in the manner of the
robustness curves (:mod:`robustrl.experiments.curves`)::

    {"run": NAME, "layout": 1,
     "entries": [{"set", "grid", "episodes", "seed", "checkpoint", "precision", "mean_returns"}, ...],
     "models": {CHECKPOINT: {"file", "sha256"}}}

An entry is computed once for its key; when a model file's checksum changes, the entries of that checkpoint
are dropped and computed again. The statistics across seeds (mean, worst case, CVaR) are in
:mod:`robustrl.experiments.set_stats`.

This module imports neither torch nor Stable-Baselines3 until a set has to be evaluated.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.checks import check_int, check_mapping, file_error, is_number
from robustrl.experiments.io import (
    atomic_write_json,
    packaged_names,
    read_json,
    read_packaged_yaml,
    remove_temporaries,
)
from robustrl.experiments.run_files import check_checkpoint, find_entry, is_trained, renew_models, run_task
from robustrl.tasks import Task, get_task

__all__ = [
    "UNCERTAINTY_CACHE",
    "UncertaintySet",
    "load_uncertainty_set",
    "parse_uncertainty_set",
    "packaged_uncertainty_sets",
    "evaluate_set",
    "predict_policy",
    "uncertainty_returns",
    "uncertainty_run",
]

#: The file, in each run folder, that caches the mean returns over uncertainty sets.
UNCERTAINTY_CACHE = "uncertainty.json"
LAYOUT = 1
_PACKAGE_FOLDER = "configs/uncertainty"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class UncertaintySet:
    """A named grid over a box of physical parameters (the rest nominal).

    :param name: the set's name (folder-safe).
    :param ranges: parameter -> ``(low, high)``, the box (it may leave out the nominal value).
    :param values: parameter -> the grid's values, inside the range.
    :param description: one line on what the set is for.
    """

    name: str
    ranges: dict[str, tuple[float, float]]
    values: dict[str, list[float]]
    description: str = ""

    @property
    def parameters(self) -> list[str]:
        """The parameters the set varies, in the file's order (the columns of :meth:`settings`)."""
        return list(self.values)

    def settings(self) -> np.ndarray:
        """Every setting of the grid, shape ``(n_settings, n_parameters)``: the product of the values, the
        last parameter varying fastest."""
        return np.array(list(itertools.product(*self.values.values())), dtype=float)

    def grid(self) -> dict[str, list[float]]:
        """The values of each parameter, as stored in the cache key."""
        return {parameter: list(values) for parameter, values in self.values.items()}


def _numbers(source: str, path: str, value: Any, length: int | None = None) -> list[float]:
    if not isinstance(value, list) or not value or (length is not None and len(value) != length):
        expected = f"a list of {length} numbers" if length else "a non-empty list of numbers"
        raise file_error(source, path, f"expected {expected}, got {value!r}")
    for i, entry in enumerate(value):
        if not is_number(entry) or not np.isfinite(entry):
            raise file_error(source, f"{path}[{i}]", f"expected a finite number, got {entry!r}")
    return [float(entry) for entry in value]


def _parameter(source: str, name: str, data: Any, task: Task) -> tuple[tuple[float, float], list[float]]:
    path = f"parameters.{name}"
    nominal_params = task.nominal_params()
    try:
        task.check_params({name: nominal_params.get(name, 1.0)})
    except ValueError as err:
        raise file_error(source, path, str(err)) from None
    data = check_mapping(source, path, data, ("range", "values"))
    for key in ("range", "values"):
        if key not in data:
            raise file_error(source, f"{path}.{key}", "missing (required: range, values)")
    low, high = _numbers(source, f"{path}.range", data["range"], length=2)
    if low > high:
        raise file_error(source, f"{path}.range", f"empty range [{low}, {high}] (low > high)")
    values = _numbers(source, f"{path}.values", data["values"])
    try:
        task.check_params({name: values}, num_envs=len(values))
    except (TypeError, ValueError) as err:
        raise file_error(source, f"{path}.values", str(err)) from None
    outside = [v for v in values if not low <= v <= high]
    if outside:
        raise file_error(source, f"{path}.values", f"{outside} outside the range [{low}, {high}]")
    if len(set(values)) != len(values):
        raise file_error(source, f"{path}.values", f"repeated value in {values}")
    return (low, high), values


def parse_uncertainty_set(data: Any, source: str, task: Task | str | None = None) -> UncertaintySet:
    """Validate a parsed uncertainty-set mapping over ``task``'s parameters (default
    :data:`robustrl.tasks.DEFAULT_TASK`); errors read ``source: key.path: problem``."""
    task = get_task(task)
    data = check_mapping(source, "", data, ("name", "description", "parameters"))
    for key in ("name", "parameters"):
        if key not in data:
            raise file_error(source, key, "missing (required: name, parameters)")
    name = data["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise file_error(source, "name", f"expected a folder-safe non-empty string, got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise file_error(source, "description", f"expected a string, got {description!r}")
    parameters = data["parameters"]
    if not isinstance(parameters, dict) or not parameters:
        raise file_error(source, "parameters", f"expected a non-empty mapping of parameter -> range and values, "
                                          f"got {parameters!r}")
    ranges, values = {}, {}
    for parameter, entry in parameters.items():
        ranges[parameter], values[parameter] = _parameter(source, str(parameter), entry, task)
    return UncertaintySet(name, ranges, values, description)


def _folder(task: Task) -> str:
    return f"{_PACKAGE_FOLDER}/{task.name}"


def packaged_uncertainty_sets(task: Task | str | None = None) -> list[str]:
    """The names of a task's packaged uncertainty sets (``robustrl/configs/uncertainty/TASK/*.yml``; default task
    :data:`robustrl.tasks.DEFAULT_TASK`)."""
    from importlib import resources

    folder = _folder(get_task(task))
    return packaged_names(folder) if resources.files("robustrl").joinpath(folder).is_dir() else []


def load_uncertainty_set(name_or_path: str | Path, task: Task | str | None = None) -> UncertaintySet:
    """A task's packaged uncertainty set by name (see :func:`packaged_uncertainty_sets`) or a user's YAML file by
    path, over the parameters of ``task`` (default :data:`robustrl.tasks.DEFAULT_TASK`).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file, the key path and the
    problem (unknown parameter, empty range, values that are not numbers or lie outside the range).
    """
    task = get_task(task)
    data, source = read_packaged_yaml(name_or_path, _folder(task), "uncertainty set")
    return parse_uncertainty_set(data, source, task)


def uncertainty_returns(policy: Any, uncertainty_set: UncertaintySet, episodes: int, seed: int,
                        env_id: str | None = None) -> np.ndarray:
    """Mean greedy return at each setting of ``uncertainty_set`` (rows of its :meth:`~UncertaintySet.settings`),
    from one batched rollout of ``episodes`` sub-environments per setting; initial states from ``seed``.

    The initial states are drawn per sub-environment, so setting ``k`` gets those of sub-environments
    ``[k * episodes, (k + 1) * episodes)``: the returns depend on the whole grid, which is part of the cache key.
    The rollout runs on ``env_id`` (default: the default task's nominal id).
    """
    from robustrl.experiments.evaluation import greedy_returns

    check_int(episodes, "episodes", 1)
    per_env = np.repeat(uncertainty_set.settings(), episodes, axis=0)
    physics = {parameter: per_env[:, i] for i, parameter in enumerate(uncertainty_set.parameters)}
    returns = greedy_returns(policy, env_id or get_task().nominal_id, len(per_env), seed, **physics)
    return returns.reshape(-1, episodes).mean(axis=1)


def predict_policy(agent: Any) -> Any:
    """A batched policy from anything with a Stable-Baselines3 ``predict`` method (DQN, SAC, TD3, PPO, or a user's
    own agent): ``agent.predict(observations, deterministic=True)[0]``."""
    if not callable(getattr(agent, "predict", None)):
        raise TypeError(f"an agent with a predict(observations, deterministic=True) method is needed, got "
                        f"{type(agent).__name__}")

    def act(observations: np.ndarray) -> np.ndarray:
        return np.asarray(agent.predict(observations, deterministic=True)[0])

    return act


def evaluate_set(agent: Any, uncertainty_set: UncertaintySet | str | Path, task: Task | str | None = None,
                 episodes: int = 1, seed: int | None = None, alpha: float = 0.1) -> dict[str, Any]:
    """An agent's return over every setting of an uncertainty set, and its mean, worst case and CVaR ``alpha``.

    The protocol of RRLS (Zouitine et al., 2024): the agent acts deterministically in the task's nominal id with
    each setting of the grid (the parameters the set does not name stay nominal), ``episodes`` episodes per
    setting from ``seed`` (default the evaluation seed), and the set is summarised by the mean over settings, the
    worst setting and the mean of the worst ``ceil(alpha * n)`` settings. ``agent`` is anything with a
    ``predict`` method (:func:`predict_policy`) or a batched policy (observations -> actions); ``uncertainty_set``
    a set or the name of one of the task's packaged sets (e.g. ``"rrls-2d"`` of ``"invertedpendulum"``).

    :returns: ``{"set", "task", "settings" (n x parameters), "parameters", "mean_returns" (n), "mean",
        "worst_case", "worst_setting", "cvar", "alpha", "episodes", "seed"}``.
    """
    from robustrl.experiments.evaluation import EVALUATION_SEED
    from robustrl.experiments.set_stats import cvar, set_mean, worst_case

    task = get_task(task)
    if not isinstance(uncertainty_set, UncertaintySet):
        uncertainty_set = load_uncertainty_set(uncertainty_set, task)
    check_int(episodes, "episodes", 1)
    seed = EVALUATION_SEED if seed is None else check_int(seed, "seed", 0)
    policy = predict_policy(agent) if hasattr(agent, "predict") else agent
    if not callable(policy):
        raise TypeError(f"agent must have a predict method or be a batched policy, got {type(agent).__name__}")
    means = uncertainty_returns(policy, uncertainty_set, episodes, seed, task.nominal_id)
    row = means[None, :]
    settings = uncertainty_set.settings()
    return {"set": uncertainty_set.name, "task": task.name, "parameters": uncertainty_set.parameters,
            "settings": settings.tolist(), "mean_returns": means.tolist(), "mean": set_mean(row),
            "worst_case": worst_case(row), "worst_setting": settings[int(np.argmin(means))].tolist(),
            "cvar": cvar(row, alpha), "alpha": alpha, "episodes": episodes, "seed": seed}


def _empty(run_dir: Path) -> dict[str, Any]:
    return {"run": run_dir.name, "layout": LAYOUT, "entries": [], "models": {}}


def _read_cache(run_dir: Path) -> dict[str, Any]:
    path = run_dir / UNCERTAINTY_CACHE
    if not path.is_file():
        return _empty(run_dir)
    cache = read_json(path)
    if not isinstance(cache, dict) or cache.get("layout") != LAYOUT:
        raise ValueError(f"{path}: not an uncertainty cache of layout {LAYOUT}; remove it to compute it again")
    return cache


def uncertainty_run(run_dir: str | Path, uncertainty_set: UncertaintySet | str | Path, episodes: int = 10,
                    seed: int | None = None, checkpoint: str = "best") -> dict[str, Any]:
    """Mean greedy return of one run's model at every setting of an uncertainty set; cached per run.

    :param uncertainty_set: a set, or a packaged set's name or a YAML file (:func:`load_uncertainty_set`).
    :param episodes: episodes per setting, initial states from ``seed`` (default the evaluation seed).
    :param checkpoint: ``"best"`` or ``"final"``.
    :returns: ``{"run", "set", "grid", "episodes", "seed", "checkpoint", "precision", "mean_returns"}``, the
        mean returns in the order of the set's settings. The policy runs in the evaluation precision
        (float64); the entry is reused while the key and the model file's checksum are unchanged.
    """
    from robustrl.experiments.evaluation import EVALUATION_PRECISION, EVALUATION_SEED

    run_dir = Path(run_dir)
    task = run_task(run_dir) if (run_dir / "meta.json").is_file() else get_task()
    if not isinstance(uncertainty_set, UncertaintySet):
        uncertainty_set = load_uncertainty_set(uncertainty_set, task)
    check_checkpoint(checkpoint)
    check_int(episodes, "episodes", 1)
    seed = EVALUATION_SEED if seed is None else check_int(seed, "seed", 0)
    if not is_trained(run_dir):
        raise ValueError(f"{run_dir} is not a complete run (meta.json or a model file is missing)")
    key = {"set": uncertainty_set.name, "grid": uncertainty_set.grid(), "episodes": episodes, "seed": seed,
           "checkpoint": checkpoint, "precision": EVALUATION_PRECISION}
    cache = _read_cache(run_dir)
    models = renew_models(cache, run_dir, checkpoint, ("entries",))
    entry = find_entry(cache["entries"], key)
    if entry is None:
        from robustrl.experiments.evaluation import greedy_policy
        from robustrl.experiments.training import load_run_model

        remove_temporaries(run_dir)
        policy = greedy_policy(load_run_model(run_dir, checkpoint), EVALUATION_PRECISION)
        entry = {**key, "mean_returns": uncertainty_returns(policy, uncertainty_set, episodes, seed,
                                                                    task.nominal_id).tolist()}
        cache["entries"].append(entry)
        cache["models"][checkpoint] = models
        atomic_write_json(run_dir / UNCERTAINTY_CACHE, cache)
    return {"run": cache["run"], **entry}
