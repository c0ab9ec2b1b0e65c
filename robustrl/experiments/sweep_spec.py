"""Sweep files: the spec of a seed and hyperparameter sweep, its validation, and its expansion into runs.

A sweep file names the agents, the seeds, a grid of hyperparameters (its Cartesian product gives the
settings), the evaluation ids and, optionally, a grid of physical parameters for robustness surfaces::

    name: rho-eta
    agents: [robust]
    seeds: 2                       # seeds 0..1, or an explicit list [0, 5, 7]
    grid: {rho: [0.05, 0.1], eta: [1.0, .inf]}
    overrides: {n_timesteps: 50000} # fixed for every run (optional)
    agent_overrides: {robust: {eta: 1.0}}  # fixed for one agent's runs (optional)
    evaluation: {ids: [NOMINAL_ID, PERTURBED_ID], episodes: 100}   # default: every id of the env's task
    surfaces: {episodes: 10, grid: {PARAM_A: [0.1, 1.0, 5.0], PARAM_B: [...]}, pairs: [[PARAM_A, PARAM_B]]}

``env_id`` (default: the default task's nominal id) is where the runs train; ids and parameters are those of its
task (:mod:`robustrl.tasks`), and so are the hyperparameters (the task's packaged file, ``sac.yml`` for Pendulum)
unless ``config: PATH`` names another file.

:func:`load_sweep_spec` checks the whole file before anything runs and names the file, the key path and
the problem on one line. Each (agent, setting, seed) is one :class:`SweepTask`; the backends
(:mod:`robustrl.experiments.sweep`) run the tasks and the report (:mod:`robustrl.experiments.sweep_report`)
tabulates the finished ones.

Why the checker is written by hand rather than with pydantic (evaluated with pydantic 2.14): the checker
is 186 lines. A pydantic model of the file's shape takes about 25 lines, but it replaces only the shape
checks (about 60 lines); the cross-field rules stay hand-written either way (repeated agents, seeds and
grid values; a key given in two of grid / overrides / agent_overrides; robust-only keys on an agent
without a robust target; every (agent, setting) resolved and its rho / eta checked; env ids; pairs of
surface parameters that are in the grid). Pydantic's own messages are less clear than the ones here:
``seedz: Extra inputs are not permitted`` (no list of valid keys), ``grid.rho: Input should be a valid
list`` (no "non-empty"), and for ``seeds: [0, -1]`` the first error is ``seeds.constrained-int: Input
should be a valid integer`` (the union's other branch), not ``seeds[1]: expected an integer >= 0``.
Keeping today's "file: key.path: problem" messages would take about 30 lines mapping pydantic's error
types and locations back, so the saving would be some 30 lines for a new dependency (pydantic and its
compiled core) and 0.12 s more import time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustrl.agents.factory import ROBUST_KEYS, AgentConfig, load_config
from robustrl.agents.sa_dqn import SA_KEYS
from robustrl.checks import MAX_SEED, check_seed, is_int, read_yaml
from robustrl.experiments.curves import surfaces_cached
from robustrl.envs import check_env_id
from robustrl.experiments.training import RunSpec, is_complete, is_evaluated

__all__ = ["SweepSpec", "SweepTask", "format_setting", "format_value", "load_sweep_spec"]

_TOP_KEYS = ("name", "env_id", "agents", "seeds", "grid", "overrides", "agent_overrides", "evaluation", "surfaces",
             "config")
_EVALUATION_KEYS = ("ids", "episodes")
_SURFACE_KEYS = ("episodes", "grid", "pairs")


def format_value(value: Any) -> str:
    """A grid value as text: floats in short form (``0.05``, ``inf``), anything else (``margin``) as is."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_setting(setting: dict[str, Any]) -> str:
    """The run-name tag of a grid setting, e.g. ``{"rho": 0.1, "eta": inf}`` -> ``"rho0.1-etainf"``."""
    return "-".join(f"{key}{format_value(value)}" for key, value in setting.items())


@dataclass(frozen=True)
class SweepTask:
    """One run of a sweep: what to train, where, and how to evaluate it (picklable, for any backend)."""

    spec: RunSpec
    runs_dir: str
    config: dict[str, Any]
    eval_ids: tuple[str, ...]
    episodes: int
    surfaces: dict[str, Any] | None = None
    setting: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        """The folder of this run."""
        return Path(self.runs_dir) / self.spec.name

    def finished(self) -> bool:
        """Whether the run is complete and its evaluation (and surfaces, if asked) are on disk."""
        if not (is_complete(self.run_dir) and is_evaluated(self.run_dir, self.eval_ids, self.episodes)):
            return False
        return not self.surfaces or surfaces_cached(self.run_dir, self.surfaces["grid"], self.surfaces["pairs"],
                                                    self.surfaces["episodes"])


@dataclass
class SweepSpec:
    """A validated sweep file; :meth:`tasks` expands it into runs."""

    name: str
    agents: list[str]
    seeds: list[int]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    env_id: str = field(default_factory=lambda: _default_task().nominal_id)
    eval_ids: tuple[str, ...] = field(default_factory=lambda: _default_task().ids)
    episodes: int = 100
    surfaces: dict[str, Any] | None = None
    config_path: str | None = None
    agent_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def overrides_for(self, agent: str, setting: dict[str, Any]) -> dict[str, Any]:
        """What a run of ``agent`` at ``setting`` changes in the config: overrides, agent's, then the grid's."""
        return {**self.overrides, **self.agent_overrides.get(agent, {}), **setting}

    def settings(self) -> list[dict[str, Any]]:
        """The Cartesian product of the grid, in file order (one empty setting without a grid)."""
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def tasks(self, runs_dir: str | Path) -> list[SweepTask]:
        """Every (agent, setting, seed) run, as tasks rooted at ``runs_dir``."""
        config = _sweep_config(self.config_path, self.env_id)
        runs_dir = str(Path(runs_dir).resolve())
        tasks = []
        for agent in self.agents:
            for setting in self.settings():
                for seed in self.seeds:
                    spec = RunSpec(agent, seed, self.env_id, self.overrides_for(agent, setting),
                                   format_setting(setting))
                    tasks.append(
                        SweepTask(
                            spec, runs_dir, config, self.eval_ids, self.episodes, self.surfaces, dict(setting)
                        )
                    )
        return tasks


def _fail(source: str, path: str, problem: str) -> ValueError:
    return ValueError(f"{source}: {path}: {problem}")


def _check_keys(source: str, prefix: str, data: Any, valid: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _fail(
            source, prefix.rstrip(".") or "(top level)", f"expected a mapping, got {type(data).__name__}"
        )
    for key in data:
        if key not in valid:
            raise _fail(source, f"{prefix}{key}", f"unknown key (valid: {', '.join(valid)})")
    return data


def _positive_int(source: str, path: str, value: Any) -> int:
    if not is_int(value, 1):
        raise _fail(source, path, f"expected an integer >= 1, got {value!r}")
    return value


def _nonempty_list(source: str, path: str, value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _fail(source, path, f"expected a non-empty list, got {value!r}")
    return value


def load_sweep_spec(path: str | Path | dict[str, Any], source: str | None = None) -> SweepSpec:
    """Read and validate a sweep file (or an already parsed mapping) before anything runs.

    Every problem is a ``ValueError`` with the file, the key path and the problem on one line, e.g.
    ``sweep.yml: grid.rho: expected a non-empty list, got 0.1``.
    """
    if isinstance(path, dict):
        data, source = path, source or "sweep"
    else:
        path = Path(path)
        source = source or str(path)
        if not path.is_file():
            raise FileNotFoundError(f"sweep file {path} does not exist")
        data = read_yaml(path, source)
    data = _check_keys(source, "", data, _TOP_KEYS)
    for key in ("name", "agents", "seeds"):
        if key not in data:
            raise _fail(source, key, "missing (required: name, agents, seeds)")
    name = data["name"]
    if not isinstance(name, str) or not name or "/" in name:
        raise _fail(source, "name", f"expected a folder-safe non-empty string, got {name!r}")
    config_path = data.get("config")
    if config_path is not None and not isinstance(config_path, str):
        raise _fail(source, "config", f"expected a path string, got {config_path!r}")
    env_id = data.get("env_id", _default_task().nominal_id)
    try:
        check_env_id(env_id)
    except ValueError as err:
        raise _fail(source, "env_id", str(err)) from None
    try:
        config = _sweep_config(config_path, env_id)
    except (ValueError, FileNotFoundError) as err:
        raise _fail(source, "config", str(err)) from None
    agents = _nonempty_list(source, "agents", data["agents"])
    if len(set(agents)) != len(agents):
        raise _fail(source, "agents", f"repeated agent in {agents}")
    seeds_value = data["seeds"]
    if isinstance(seeds_value, list):
        seeds = _nonempty_list(source, "seeds", seeds_value)
        for i, seed in enumerate(seeds):
            try:
                check_seed(seed)
            except ValueError as err:
                raise _fail(source, f"seeds[{i}]", str(err)) from None
        if len(set(seeds)) != len(seeds):
            raise _fail(source, "seeds", f"repeated seed in {seeds}")
    else:  # a count: seeds 0 .. N - 1, refused before the list is built
        count = _positive_int(source, "seeds", seeds_value)
        if count - 1 > MAX_SEED:
            raise _fail(source, "seeds", f"expected at most 2**32 seeds (0 .. 2**32 - 1), got {count!r}")
        seeds = list(range(count))
    grid = data.get("grid") or {}
    grid = _check_keys(source, "grid.", grid, tuple(grid) if isinstance(grid, dict) else ())
    for key, values in grid.items():
        _nonempty_list(source, f"grid.{key}", values)
        if len({repr(v) for v in values}) != len(values):
            raise _fail(source, f"grid.{key}", f"repeated value in {values}")
    overrides = data.get("overrides") or {}
    overrides = _check_keys(
        source, "overrides.", overrides, tuple(overrides) if isinstance(overrides, dict) else ()
    )
    for key in overrides:
        if key in grid:
            raise _fail(source, f"overrides.{key}", "also in grid; give it in one place")
    agent_overrides = _check_keys(source, "agent_overrides.", data.get("agent_overrides") or {}, tuple(agents))
    for agent, pinned in agent_overrides.items():
        pinned = _check_keys(source, f"agent_overrides.{agent}.", pinned or {},
                             tuple(pinned) if isinstance(pinned, dict) else ())
        for key in pinned:
            if key in grid or key in overrides:
                where = "grid" if key in grid else "overrides"
                raise _fail(source, f"agent_overrides.{agent}.{key}", f"also in {where}; give it in one place")
    evaluation = _check_keys(source, "evaluation.", data.get("evaluation") or {}, _EVALUATION_KEYS)
    task = _task_of(source, env_id)
    eval_ids = tuple(_nonempty_list(source, "evaluation.ids", evaluation.get("ids", list(task.ids))))
    for i, env in enumerate(eval_ids):
        try:
            check_env_id(env)
        except ValueError as err:
            raise _fail(source, f"evaluation.ids[{i}]", str(err)) from None
    episodes = _positive_int(source, "evaluation.episodes", evaluation.get("episodes", 100))
    surfaces = _check_surfaces(source, data.get("surfaces"), task)
    spec = SweepSpec(
        name,
        list(agents),
        seeds,
        {k: list(v) for k, v in grid.items()},
        dict(overrides),
        env_id,
        eval_ids,
        episodes,
        surfaces,
        config_path,
        {agent: dict(pinned or {}) for agent, pinned in agent_overrides.items()},
    )
    # Resolve every (agent, setting) now, so a bad name or value fails before the first run starts.
    for agent in agents:
        for setting in spec.settings():
            where = "grid" if setting else "overrides"
            merged = spec.overrides_for(agent, setting)
            try:
                AgentConfig.resolve(config, env_id, agent, merged)
            except ValueError as err:
                raise _fail(source, f"agents/{where}", f"{err} (agent {agent!r}, setting {merged})") from None
            robust_only = sorted(k for k in merged if k in ROBUST_KEYS or k in SA_KEYS)
            if robust_only and not (config[env_id]["agents"].get(agent) or {}):
                key = robust_only[0]
                path_ = (f"grid.{key}" if key in grid else f"overrides.{key}" if key in overrides
                         else f"agent_overrides.{agent}.{key}")
                raise _fail(source, path_, f"agent {agent!r} has no robust target, so {key!r} does not apply")
    return spec


def _sweep_config(config_path: str | None, env_id: str) -> dict[str, Any]:
    """The hyperparameters a sweep's runs read: the file ``config_path``, or else the packaged file of the task
    that ``env_id`` belongs to (its :attr:`~robustrl.tasks.Task.hyperparameters`)."""
    if config_path is not None:
        return load_config(config_path)
    from robustrl.tasks import task_of

    try:
        packaged = task_of(env_id).hyperparameters
    except ValueError:  # an id of no task: the default file, whose own error names the id
        return load_config()
    return load_config(None, packaged)


def _default_task() -> Any:
    from robustrl.tasks import get_task

    return get_task()


def _task_of(source: str, env_id: str) -> Any:
    from robustrl.tasks import task_of

    try:
        return task_of(env_id)
    except ValueError as err:
        raise _fail(source, "env_id", str(err)) from None


def _check_surfaces(source: str, surfaces: Any, task: Any) -> dict[str, Any] | None:
    if surfaces is None:
        return None
    surfaces = _check_keys(source, "surfaces.", surfaces, _SURFACE_KEYS)
    episodes = _positive_int(source, "surfaces.episodes", surfaces.get("episodes", 10))
    grid = surfaces.get("grid") or {}
    grid = _check_keys(source, "surfaces.grid.", grid, tuple(task.env_class().PARAMETERS))
    for key, values in grid.items():
        _nonempty_list(source, f"surfaces.grid.{key}", values)
        try:
            task.check_params({key: values}, num_envs=len(values))
        except (TypeError, ValueError) as err:
            raise _fail(source, f"surfaces.grid.{key}", str(err)) from None
    pairs = surfaces.get("pairs") or []
    if not isinstance(pairs, list):
        raise _fail(source, "surfaces.pairs", f"expected a list of [parameter, parameter], got {pairs!r}")
    for i, pair in enumerate(pairs):
        if not (
            isinstance(pair, list) and len(pair) == 2 and pair[0] != pair[1] and all(p in grid for p in pair)
        ):
            raise _fail(
                source,
                f"surfaces.pairs[{i}]",
                f"expected two different parameters of surfaces.grid, got {pair!r}",
            )
    if not grid:
        raise _fail(source, "surfaces.grid", "expected a non-empty mapping of parameter -> values")
    return {
        "episodes": episodes,
        "grid": {k: [float(v) for v in vals] for k, vals in grid.items()},
        "pairs": [list(p) for p in pairs],
    }


