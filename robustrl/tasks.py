"""Tasks as data: everything an experiment needs to know about one environment family, in one YAML file.

A task (``robustrl/configs/tasks/NAME.yml``) names its nominal id (where agents train and models are selected),
its perturbed ids and their labels (the columns of the reward table), the physical parameters of its robustness
curves and surfaces with their grids, its return range (normalised statistics, plot limits), the state scale of
its perturbations, its uncertainty sets (``configs/uncertainty/NAME/``) and the hyperparameter file of its agents
(keyed by env id, in the manner of rl-baselines3-zoo, with the model-selection settings of the nominal id)::

    name: cartpole
    title: CartPole
    nominal_id: robustrl/CartPole-v1
    ids: {robustrl/CartPole-v1: Original, robustrl/CartPoleHeavy-v1: Heavy pole}
    return_range: [0, 500]
    state_scale: [2.4, 3.0, 0.21, 3.0]
    hyperparameters: dqn.yml
    parameters:
      masspole: {curve: [0.05, 0.1, 5.0], surface: [0.05, 0.1, 1.0, 5.0]}
      length: {label: pole half-length (m), surface: [0.1, 0.5, 1.0]}
    surface_pairs: [[masspole, length]]

A task whose agents come in families (SAC and TD3) may add ``decision_pairs: {robust-td3: td3}``: beside the
decision table of ``robust`` against the baseline, ``robustrl robustness`` writes one more per pair, each robust
agent against its own family's plain agent (``decision_table_robust-td3.md``).

A task on which the packaged suite's budgets say nothing (a stabilising task, whose visited states, and so its
state scale, are small) names its own suite with ``suite: NAME`` (``robustrl/configs/suites/NAME.yml``), which
``robustrl robustness`` then uses for its runs.

What a parameter *is* (its nominal value, valid range and unit) lives with the environment
(:class:`robustrl.envs.params.Parameter`); what a perturbed id changes lives in its Gymnasium registration. The
task refers to both and checks them when it is loaded, so nothing is said twice. Model selection breaks ties of
the nominal return by the environment's ``safety_margin`` where the family has one (CartPole), and by the latest
checkpoint where it has none. Every experiment command takes
``--task NAME`` (default ``cartpole``); the experiment modules read the task and never name an environment.

This module imports neither torch nor Stable-Baselines3.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from robustrl.checks import check_mapping, is_number

__all__ = ["DEFAULT_TASK", "Task", "TaskParameter", "get_task", "id_label", "load_task", "order_ids", "parse_task",
           "task_names", "task_of", "tasks_table"]

#: The task of every command that is given none.
DEFAULT_TASK = "cartpole"
_FOLDER = "configs/tasks"


@dataclass(frozen=True)
class TaskParameter:
    """One physical parameter a task studies: its label and its grids (each containing the nominal value).

    :param name: the environment's parameter name.
    :param label: axis label with unit (default: the environment's description of the parameter).
    :param nominal: the nominal value (the environment's).
    :param curve: the grid of the reward table's robustness curve (empty: no curve for this parameter).
    :param surface: the dense grid of ``robustrl surfaces``.
    """

    name: str
    label: str
    nominal: float
    curve: tuple[float, ...] = ()
    surface: tuple[float, ...] = ()


@dataclass(frozen=True)
class Task:
    """One task: its ids, parameters, return range, state scale and agent hyperparameters.

    Built by :func:`load_task` from a YAML file; see the module docstring for the format. ``state_scale`` is
    empty and ``hyperparameters`` ``""`` for a task no packaged agent trains on yet (an evaluation-only task,
    such as RRLS's MuJoCo sets).
    """

    name: str
    title: str
    nominal_id: str
    labels: Mapping[str, str]
    return_range: tuple[float, float]
    state_scale: tuple[float, ...]
    hyperparameters: str
    parameters: Mapping[str, TaskParameter]
    surface_pairs: tuple[tuple[str, str], ...] = ()
    description: str = ""
    decision_pairs: Mapping[str, str] = field(default_factory=dict)
    suite: str = ""
    source: str = field(default="", compare=False)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every id of the reward table, the nominal one first."""
        return tuple(self.labels)

    @property
    def perturbed_ids(self) -> tuple[str, ...]:
        """The test conditions: every id but the nominal one."""
        return tuple(env_id for env_id in self.labels if env_id != self.nominal_id)

    @property
    def max_return(self) -> float:
        """The upper end of :attr:`return_range` (a normalised score of 1)."""
        return self.return_range[1]

    @property
    def curve_grid(self) -> dict[str, list[float]]:
        """Parameter -> grid of the reward table's robustness curves."""
        return {name: list(p.curve) for name, p in self.parameters.items() if p.curve}

    @property
    def surface_grid(self) -> dict[str, list[float]]:
        """Parameter -> dense grid of ``robustrl surfaces``."""
        return {name: list(p.surface) for name, p in self.parameters.items() if p.surface}

    @property
    def parameter_labels(self) -> dict[str, str]:
        """Parameter -> axis label (with unit)."""
        return {name: p.label for name, p in self.parameters.items()}

    def env_class(self) -> type:
        """The environment class of :attr:`nominal_id` (imported on use: a Box2D or MuJoCo family needs its
        extra)."""
        return _entry_class(self.nominal_id)

    def nominal_params(self) -> dict[str, float]:
        """The nominal value of every parameter of the environment family."""
        return {name: p.nominal for name, p in self.env_class().PARAMETERS.items()}

    def check_params(self, values: Mapping[str, Any], num_envs: int | None = None) -> dict[str, Any]:
        """Validate parameter values for this task's family (``ValueError``/``TypeError`` naming the parameter)."""
        return self.env_class().check_params(values, num_envs)

    def variant(self, env_id: str) -> dict[str, float]:
        """What ``env_id`` changes from the nominal physics (its registered keyword arguments that are parameters)."""
        self.check_id(env_id)
        import gymnasium as gym

        physics = getattr(self.env_class(), "PARAMETERS", {})
        return {k: v for k, v in gym.spec(env_id).kwargs.items() if k in physics}

    @property
    def variants(self) -> dict[str, dict[str, float]]:
        """Every id -> what it changes from the nominal physics (empty for the nominal id)."""
        return {env_id: self.variant(env_id) for env_id in self.labels}

    def check_id(self, env_id: str) -> str:
        """``env_id`` if it is one of this task's ids, else ``ValueError`` listing them."""
        if env_id not in self.labels:
            raise ValueError(f"unknown env id {env_id!r} for task {self.name!r}; valid: {', '.join(self.ids)}")
        return env_id

    def max_episode_steps(self, env_id: str | None = None) -> int:
        """The registered step limit of ``env_id`` (default: the nominal id)."""
        import gymnasium as gym

        return int(gym.spec(env_id or self.nominal_id).max_episode_steps)


def _entry_class(env_id: str) -> type:
    import gymnasium as gym

    import robustrl.envs  # noqa: F401  (registers the ids)

    entry = gym.spec(env_id).entry_point
    if not isinstance(entry, str):
        return entry  # type: ignore[return-value]
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)


def task_names() -> list[str]:
    """The names of the packaged tasks."""
    from robustrl.experiments.io import packaged_names

    return packaged_names(_FOLDER)


def _numbers(source: str, key: str, value: Any, length: int | None = None) -> tuple[float, ...]:
    if (not isinstance(value, list) or not value or not all(is_number(v) for v in value)
            or (length is not None and len(value) != length)):
        expected = f"a list of {length} numbers" if length else "a non-empty list of numbers"
        raise ValueError(f"{source}: {key} must be {expected}, got {key}={value!r}")
    return tuple(float(v) for v in value)


_KEYS = {"name", "title", "description", "nominal_id", "ids", "return_range", "state_scale", "hyperparameters",
         "parameters", "surface_pairs", "decision_pairs", "suite"}


def parse_task(data: Any, source: str) -> Task:
    """A :class:`Task` from parsed YAML; every key is checked (``ValueError`` naming ``source`` and the key)."""
    import gymnasium as gym

    import robustrl.envs  # noqa: F401  (registers the ids)

    check_mapping(source, "", data, tuple(sorted(_KEYS)))
    for key in ("name", "title", "nominal_id", "ids", "return_range"):
        if key not in data:
            raise ValueError(f"{source}: missing key {key!r}")
    ids = data["ids"]
    if not isinstance(ids, dict) or not ids or not all(isinstance(v, str) for v in ids.values()):
        raise ValueError(f"{source}: ids must map each env id to its label, got ids={ids!r}")
    nominal = data["nominal_id"]
    if next(iter(ids)) != nominal:
        raise ValueError(f"{source}: the first of ids must be nominal_id {nominal!r}, got {next(iter(ids))!r}")
    for env_id in ids:
        if env_id not in gym.registry:
            raise ValueError(f"{source}: env id {env_id!r} is not registered")
    low, high = _numbers(source, "return_range", data["return_range"], 2)
    if not low < high:
        raise ValueError(f"{source}: return_range must be [low, high] with low < high, got {[low, high]}")
    family = _entry_class(nominal)
    family_parameters = getattr(family, "PARAMETERS", {})
    for env_id in ids:
        if _entry_class(env_id) is not family:
            raise ValueError(f"{source}: {env_id!r} is not of the family of {nominal!r}")
        if family_parameters:
            family.check_params({k: v for k, v in gym.spec(env_id).kwargs.items() if k in family_parameters})
    parameters: dict[str, TaskParameter] = {}
    raw = data.get("parameters") or {}
    check_mapping(source, "parameters", raw, tuple(family_parameters))
    for name, spec in raw.items():
        spec = spec or {}
        check_mapping(source, f"parameters.{name}", spec, ("curve", "label", "surface"))
        grids = {key: _numbers(source, f"parameters.{name}.{key}", spec[key]) for key in ("curve", "surface")
                 if key in spec}
        for key, grid in grids.items():
            family.check_params({name: list(grid)}, num_envs=len(grid))
        record = family_parameters[name]
        parameters[name] = TaskParameter(name, str(spec.get("label", record.doc)), record.nominal,
                                         grids.get("curve", ()), grids.get("surface", ()))
    pairs = []
    for pair in data.get("surface_pairs") or []:
        if (not isinstance(pair, list) or len(pair) != 2 or pair[0] == pair[1]
                or not all(p in parameters and parameters[p].surface for p in pair)):
            raise ValueError(f"{source}: a surface pair names two different parameters with a surface grid, "
                             f"got {pair!r}")
        pairs.append((str(pair[0]), str(pair[1])))
    decision_pairs = data.get("decision_pairs") or {}
    if (not isinstance(decision_pairs, dict) or "robust" in decision_pairs
            or not all(isinstance(k, str) and isinstance(v, str) and k != v for k, v in decision_pairs.items())):
        raise ValueError(f"{source}: decision_pairs maps a robust agent other than 'robust' to a different plain "
                         f"agent, as {{robust-td3: td3}}, got decision_pairs={decision_pairs!r}")
    suite = data.get("suite", "")
    if suite != "":
        from robustrl.experiments.io import packaged_names

        if suite not in packaged_names("configs/suites"):
            raise ValueError(f"{source}: suite names a packaged suite ({', '.join(packaged_names('configs/suites'))}"
                             f"), got suite={suite!r}")
    return Task(
        name=str(data["name"]), title=str(data["title"]), nominal_id=nominal, labels=dict(ids),
        return_range=(low, high),
        state_scale=_numbers(source, "state_scale", data["state_scale"]) if "state_scale" in data else (),
        hyperparameters=str(data.get("hyperparameters", "")), parameters=parameters, surface_pairs=tuple(pairs),
        description=str(data.get("description", "")), decision_pairs=dict(decision_pairs),
        suite=suite, source=source)


def load_task(name_or_path: str) -> Task:
    """A packaged task by name (:func:`task_names`) or a user's task file by path.

    ``ValueError`` names an unknown task with the packaged ones, or the file and key of a bad value.
    """
    from robustrl.experiments.io import read_packaged_yaml

    try:
        data, source = read_packaged_yaml(name_or_path, _FOLDER, "task")
    except FileNotFoundError as error:
        raise ValueError(str(error)) from None
    return parse_task(data, source)


@functools.lru_cache(maxsize=None)
def _packaged(name: str) -> Task:
    return load_task(name)


def get_task(task: Task | str | None = None) -> Task:
    """``task`` itself, or the packaged task of that name (cached), or the default task for ``None``."""
    if isinstance(task, Task):
        return task
    name = DEFAULT_TASK if task is None else task
    if name in task_names():
        return _packaged(name)
    return load_task(name)


@functools.lru_cache(maxsize=None)
def _packaged_ids(name: str) -> tuple[str, ...]:
    """The ids of a packaged task as its file lists them (read without loading the task, so that finding the task
    of an id imports no simulator of another task's family)."""
    from robustrl.experiments.io import read_packaged_yaml

    data, _ = read_packaged_yaml(name, _FOLDER, "task")
    ids = data.get("ids") if isinstance(data, dict) else None
    return tuple(ids) if isinstance(ids, dict) else ()


def task_of(env_id: str) -> Task:
    """The packaged task one of whose ids is ``env_id`` (``ValueError`` if none is)."""
    for name in task_names():
        if env_id in _packaged_ids(name):
            return _packaged(name)
    raise ValueError(f"no packaged task has env id {env_id!r}; tasks: {', '.join(task_names())}")


def id_label(env_id: str) -> str:
    """The table label of ``env_id`` in its packaged task (e.g. ``"Heavy pole"``), or ``env_id`` itself."""
    for name in task_names():
        if env_id in _packaged_ids(name):
            return _packaged(name).labels[env_id]
    return env_id


def order_ids(env_ids: Any) -> list[str]:
    """``env_ids`` without repeats in table order: each packaged task's ids in its order (nominal first), then
    the ids of no packaged task in the order given."""
    given = list(dict.fromkeys(env_ids))
    known = [env_id for name in task_names() for env_id in _packaged_ids(name) if env_id in given]
    return known + [env_id for env_id in given if env_id not in known]


_EXTRAS = {"robustrl.envs.box2d": "robustrl[box2d]", "robustrl.envs.mujoco": "robustrl[mujoco]"}


def tasks_table() -> str:
    """A Markdown table of every robustrl environment family: its nominal id, the packaged task that uses it, its
    parameters with their nominal values, the perturbed ids and packaged uncertainty sets of the task, and the
    extra it needs (what ``robustrl tasks`` prints)."""
    import gymnasium as gym

    from robustrl.envs import robustrl_ids

    owners = {env_id: name for name in task_names() for env_id in _packaged_ids(name)}
    from robustrl.experiments.uncertainty import packaged_uncertainty_sets

    lines = ["| id | task | parameters (nominal value) | perturbed ids of the task | uncertainty sets | needs |",
             "|---|---|---|---|---|---|"]
    for env_id in robustrl_ids():
        spec = gym.spec(env_id)
        task = owners.get(env_id)
        if task is not None and _packaged_ids(task)[0] != env_id:
            continue  # a perturbed id: listed in its task's row
        module = spec.entry_point.partition(":")[0]
        extra = next((e for prefix, e in _EXTRAS.items() if module.startswith(prefix)), "")
        try:
            family = _entry_class(env_id)
            parameters = ", ".join(f"{name} {p.nominal:g}" for name, p in family.PARAMETERS.items())
        except ImportError:
            parameters = f"(install {extra} to list them)"
        perturbed, sets = "", ""
        if task is not None:
            sets = ", ".join(packaged_uncertainty_sets(task))
            loaded = _packaged(task)
            perturbed = "; ".join(f"{loaded.labels[i]}: " + ", ".join(f"{k} {v:g}" for k, v in loaded.variant(i).items())
                                  for i in loaded.perturbed_ids)
        lines.append(f"| `{env_id}` | {task or ''} | {parameters} | {perturbed} | {sets} | {extra} |")
    return "\n".join(lines) + "\n"
