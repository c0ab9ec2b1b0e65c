"""Robustness curves and surfaces of a run: greedy return versus the physical parameters, one cache per run.

A *curve* is the mean greedy return of a run's model at each value of one physical parameter, the others
nominal, computed as one batched rollout (one sub-environment per (value, episode)); a *pair surface* is the
same over the product of two parameters' values. Two views ask for them:

- the robustness curves of the reward table (:func:`robustness_run`, ``robustrl evaluate --robustness``,
  ``robustrl reproduce``; plotted as ``robustness_curves.png``): the task's ``curve`` grids
  (:attr:`robustrl.tasks.Task.curve_grid`), 20 episodes per value;
- the robustness surfaces (:func:`surface_run`, ``robustrl surfaces`` and sweeps with ``surfaces:``;
  plotted as ``surface_curves.png`` and ``surface_pairs.png``): the task's ``surface`` grids
  (:attr:`robustrl.tasks.Task.surface_grid`) and its surface pairs, 10 episodes per value.

The task is the run's (its training env id in ``meta.json``).

Both read and extend one cache per run, ``robustness.json``::

    {"run": NAME, "layout": 2,
     "curves": [{"parameter", "values", "episodes", "seed", "checkpoint", "precision", "mean_returns"}, ...],
     "pairs": [{"parameters", "x", "y", "episodes", "seed", "checkpoint", "precision", "mean_returns"}, ...],
     "views": {"robustness": REQUEST, "surfaces": REQUEST},
     "models": {CHECKPOINT: {"file", "sha256"}}}

A curve is computed once for its (parameter, values, episodes, seed, checkpoint), whichever view asks first,
and ``views`` keeps each view's latest request so that the plots know what to draw. ``models`` records the
checksum of each model file the entries were computed from: when a file changes, its entries are dropped
and computed again, and until then :func:`read_view` does not answer from them (the plots name such runs).
The whole list of
values is part of a curve's identity: the initial states are drawn per sub-environment of the batched
rollout, so the returns at one value depend on its position in the list. Caches of the earlier layout (one
request per file, surfaces in a separate ``surfaces.json``) are converted by :func:`convert_cache`
(``python scripts/convert_robustness_caches.py RUNS_DIR``), which keeps every number as it was.

This module imports neither torch nor Stable-Baselines3 until a curve has to be computed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.checks import check_option
from robustrl.experiments.io import atomic_write_json, read_json, remove_temporaries
from robustrl.experiments.run_files import (
    find_entry,
    is_complete,
    is_trained,
    model_checksums,
    renew_models,
    run_task,
)

__all__ = [
    "CACHE_NAME",
    "NOT_COMPUTED",
    "STALE",
    "convert_cache",
    "models_in_use",
    "read_view",
    "read_views",
    "robustness_run",
    "surface_run",
    "surfaces_cached",
]

#: The file, in each run folder, that caches every curve and pair surface of the run.
CACHE_NAME = "robustness.json"
LAYOUT = 2
VIEWS = ("robustness", "surfaces")
#: Why :func:`read_views` leaves a run out: its cache holds no such view, or one of other model files.
NOT_COMPUTED = "not computed"
STALE = "model files changed since it was computed"

_PAIR_POINTS = 8  # values per axis of a pair surface (sub-sampled from the 1-D grid)


def _pair_values(values: Sequence[float]) -> list[float]:
    if len(values) <= _PAIR_POINTS:
        return list(values)
    index = np.unique(np.linspace(0, len(values) - 1, _PAIR_POINTS).round().astype(int))
    return [values[i] for i in index]


def _evaluation_defaults() -> tuple[int, str]:
    """The evaluation seed and precision (imported on use: the evaluation module imports torch)."""
    from robustrl.experiments.evaluation import EVALUATION_PRECISION, EVALUATION_SEED

    return EVALUATION_SEED, EVALUATION_PRECISION


def _check_grid(grid: dict[str, list[float]], task: Any) -> dict[str, list[float]]:
    if not grid:
        raise ValueError(f"task {task.name} has no parameter grid for robustness curves or surfaces (its task file "
                         "gives no `parameters`): judge it on its uncertainty sets with `robustrl robustness`")
    for parameter, values in grid.items():
        task.check_params({parameter: values}, num_envs=len(values))
    return {parameter: list(values) for parameter, values in grid.items()}


def _check_pairs(pairs: Iterable[Sequence[str]], grid: dict[str, list[float]]) -> list[list[str]]:
    pairs = [list(p) for p in pairs]
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1] or not all(p in grid for p in pair):
            raise ValueError(f"a pair must name two different parameters of the grid, got {pair!r}")
    return pairs


def _empty(run_dir: Path) -> dict[str, Any]:
    return {"run": run_dir.name, "layout": LAYOUT, "curves": [], "pairs": [], "views": {}, "models": {}}


def _read_cache(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CACHE_NAME
    if not path.is_file():
        return _empty(run_dir)
    cache = read_json(path)
    if not isinstance(cache, dict) or cache.get("layout") != LAYOUT:
        raise ValueError(f"{path} has an earlier layout; convert it (numbers unchanged) with "
                         f"python scripts/convert_robustness_caches.py {run_dir.parent}")
    return cache


def _curve_key(parameter: str, values: list[float], request: dict[str, Any]) -> dict[str, Any]:
    return {"parameter": parameter, "values": values, "episodes": request["episodes"], "seed": request["seed"],
            "checkpoint": request["checkpoint"], "precision": request.get("precision", "float32")}


def _pair_key(pair: list[str], grid: dict[str, list[float]], request: dict[str, Any]) -> dict[str, Any]:
    return {"parameters": pair, "x": _pair_values(grid[pair[0]]), "y": _pair_values(grid[pair[1]]),
            "episodes": request["episodes"], "seed": request["seed"], "checkpoint": request["checkpoint"],
            "precision": request.get("precision", "float32")}


def _compute(run_dir: Path, view: str, request: dict[str, Any]) -> dict[str, Any]:
    """Add the request's missing curves and pairs to the run's cache, record the view; returns the cache."""
    cache = _read_cache(run_dir)
    checkpoint = request["checkpoint"]
    models = renew_models(cache, run_dir, checkpoint, ("curves", "pairs"))
    precision = request["precision"]  # entries of another precision are never read again: drop them
    cache["curves"] = [e for e in cache["curves"] if e.get("precision", "float32") == precision]
    cache["pairs"] = [e for e in cache["pairs"] if e.get("precision", "float32") == precision]
    for other in [v for v in cache["views"] if _assemble(cache, v) is None]:  # they pointed to dropped entries
        del cache["views"][other]
    grid, pairs = request["grid"], request.get("pairs", [])
    missing_curves = [_curve_key(p, v, request) for p, v in grid.items()
                      if find_entry(cache["curves"], _curve_key(p, v, request)) is None]
    missing_pairs = [_pair_key(pair, grid, request) for pair in pairs
                     if find_entry(cache["pairs"], _pair_key(pair, grid, request)) is None]
    if not missing_curves and not missing_pairs and cache["views"].get(view) == request:
        return cache
    if missing_curves or missing_pairs:
        from robustrl.experiments.evaluation import greedy_policy, greedy_returns, mean_returns_over
        from robustrl.experiments.training import load_run_model

        remove_temporaries(run_dir)
        policy = greedy_policy(load_run_model(run_dir, request["checkpoint"]), precision)
        episodes, seed, task = request["episodes"], request["seed"], run_task(run_dir)
        for key in missing_curves:
            means = mean_returns_over(policy, key["parameter"], key["values"], episodes, seed, task)
            cache["curves"].append({**key, "mean_returns": means.tolist()})
        for key in missing_pairs:
            (first, second), xs, ys = key["parameters"], key["x"], key["y"]
            per_env = np.repeat(np.array(list(itertools.product(xs, ys)), dtype=float), episodes, axis=0)
            returns = greedy_returns(policy, task.nominal_id, len(per_env), seed,
                                     **{first: per_env[:, 0], second: per_env[:, 1]})
            cache["pairs"].append({**key, "mean_returns": returns.reshape(len(xs), len(ys), episodes).mean(2).tolist()})
        cache["models"][checkpoint] = models
    cache["views"][view] = request
    atomic_write_json(run_dir / CACHE_NAME, cache)
    return cache


def _assemble(cache: dict[str, Any], view: str) -> dict[str, Any] | None:
    """The result of ``view`` from a cache (its latest request), or None if the cache lacks a part of it."""
    request = cache["views"].get(view)
    if request is None:
        return None
    curves = {p: find_entry(cache["curves"], _curve_key(p, v, request)) for p, v in request["grid"].items()}
    pairs = {"|".join(pair): find_entry(cache["pairs"], _pair_key(pair, request["grid"], request))
             for pair in request.get("pairs", [])}
    if any(entry is None for entry in [*curves.values(), *pairs.values()]):
        return None
    if view == "robustness":
        return {"run": cache["run"], "request": request,
                "mean_returns": {p: entry["mean_returns"] for p, entry in curves.items()}}
    return {"run": cache["run"], "request": request,
            "curves": {p: {"values": entry["values"], "mean_returns": entry["mean_returns"]} for p, entry in curves.items()},
            "pairs": {name: {"x": entry["x"], "y": entry["y"], "mean_returns": entry["mean_returns"]}
                      for name, entry in pairs.items()}}


def _view_of(run_dir: Path, view: str) -> tuple[dict[str, Any] | None, str]:
    """The cached ``view`` of a run and, if there is none to use, why (:data:`NOT_COMPUTED`, :data:`STALE`)."""
    check_option(view, VIEWS, "view")
    if not (run_dir / CACHE_NAME).is_file():
        return None, NOT_COMPUTED
    cache = _read_cache(run_dir)
    result = _assemble(cache, view)
    if result is None:
        return None, NOT_COMPUTED
    checkpoint = result["request"]["checkpoint"]
    if not is_trained(run_dir) or cache.get("models", {}).get(checkpoint) != model_checksums(
            run_dir, (checkpoint,))[checkpoint]:
        return None, STALE
    return result, ""


def read_view(run_dir: str | Path, view: str) -> dict[str, Any] | None:
    """The latest ``"robustness"`` or ``"surfaces"`` result cached in a run (what the plots draw), or None
    if there is none or it was computed from other model files than the run's (checksums differ)."""
    return _view_of(Path(run_dir), view)[0]


def read_views(run_dirs: Iterable[str | Path], view: str) -> tuple[dict[Path, dict[str, Any]], dict[str, str]]:
    """:func:`read_view` of each run: the results, and the runs without one as ``{run name: why}``
    (:data:`NOT_COMPUTED` or :data:`STALE`)."""
    found: dict[Path, dict[str, Any]] = {}
    left_out: dict[str, str] = {}
    for run_dir in map(Path, run_dirs):
        result, why = _view_of(run_dir, view)
        if result is None:
            left_out[run_dir.name] = why
        else:
            found[run_dir] = result
    return found, left_out


def robustness_run(run_dir: str | Path, grid: dict[str, list[float]] | None = None, episodes: int = 20,
                   seed: int | None = None, checkpoint: str = "best") -> dict[str, Any]:
    """Mean greedy return of one run's model versus each physical parameter of ``grid``; cached.

    :param grid: parameter -> values (default the run task's :attr:`~robustrl.tasks.Task.curve_grid`); the other
        parameters stay nominal.
    :param episodes: episodes per value, initial states from ``seed`` (default the evaluation seed).
    :returns: ``{"run", "request", "mean_returns": {parameter: [mean return per value]}}``.
    """
    task = run_task(run_dir)
    grid = _check_grid(dict(grid or task.curve_grid), task)
    default_seed, precision = _evaluation_defaults()
    seed = default_seed if seed is None else seed
    request = {"grid": grid, "episodes": episodes, "seed": seed, "checkpoint": checkpoint, "precision": precision}
    return _assemble(_compute(Path(run_dir), "robustness", request), "robustness")  # type: ignore[return-value]


def _surface_request(run_dir: Path, grid: dict[str, list[float]] | None, pairs: Iterable[Sequence[str]] | None,
                     episodes: int, seed: int | None, checkpoint: str) -> dict[str, Any]:
    task = run_task(run_dir)
    grid = _check_grid(dict(grid or task.surface_grid), task)
    if pairs is None:
        pairs = [list(p) for p in task.surface_pairs if p[0] in grid and p[1] in grid]
    default_seed, precision = _evaluation_defaults()
    seed = default_seed if seed is None else seed
    return {"grid": grid, "pairs": _check_pairs(pairs, grid), "episodes": episodes, "seed": seed,
            "checkpoint": checkpoint, "precision": precision}


def surface_run(
    run_dir: str | Path,
    grid: dict[str, list[float]] | None = None,
    pairs: Iterable[Sequence[str]] | None = None,
    episodes: int = 10,
    seed: int | None = None,
    checkpoint: str = "best",
) -> dict[str, Any]:
    """Mean greedy return of one run's model over each 1-D grid and each pair grid; cached.

    :param grid: parameter -> values (default the run task's :attr:`~robustrl.tasks.Task.surface_grid`); the
        other parameters stay nominal.
    :param pairs: pairs of parameters of ``grid`` evaluated on the product of (up to 8 of) their values
        (default the task's surface pairs restricted to ``grid``).
    :param episodes: episodes per grid point, initial states from ``seed`` (default the evaluation seed).
    :returns: ``{"curves": {p: {"values", "mean_returns"}}, "pairs": {"p|q": {"x", "y", "mean_returns"}}}``
        (``mean_returns[i][j]`` at ``x[i]``, ``y[j]``), with ``"run"`` and ``"request"``.
    """
    request = _surface_request(Path(run_dir), grid, pairs, episodes, seed, checkpoint)
    return _assemble(_compute(Path(run_dir), "surfaces", request), "surfaces")  # type: ignore[return-value]


def surfaces_cached(run_dir: str | Path, grid: dict[str, list[float]] | None = None,
                    pairs: Iterable[Sequence[str]] | None = None, episodes: int = 10, seed: int | None = None,
                    checkpoint: str = "best") -> bool:
    """Whether every curve and pair of this :func:`surface_run` request is already in the run's cache."""
    run_dir = Path(run_dir)
    if not (run_dir / CACHE_NAME).is_file():
        return False
    cache = _read_cache(run_dir)
    request = _surface_request(Path(run_dir), grid, pairs, episodes, seed, checkpoint)
    if cache.get("models", {}).get(checkpoint) != model_checksums(run_dir, (checkpoint,))[checkpoint]:
        return False
    return (all(find_entry(cache["curves"], _curve_key(p, v, request)) for p, v in request["grid"].items())
            and all(find_entry(cache["pairs"], _pair_key(pair, request["grid"], request)) for pair in request["pairs"]))


def models_in_use(run_dir: str | Path, cache: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The checksums of the run's model files that the curves and pairs of ``cache`` were computed from."""
    used = tuple(sorted({entry["checkpoint"] for entry in cache["curves"] + cache["pairs"]}))
    return model_checksums(Path(run_dir), used)


def convert_cache(run_dir: str | Path) -> bool:
    """Convert a run's caches of the earlier layout into one ``robustness.json``; numbers are copied as they are.

    The earlier layout held one request per file: ``robustness.json`` = ``{"run", "request": {"grid",
    "episodes", "seed", "checkpoint"}, "mean_returns"}`` and ``surfaces.json`` = ``{"run", "request": {...,
    "pairs"}, "curves", "pairs"}``. Both become entries and views of the new cache, and ``surfaces.json`` is
    removed. The cache records the checksums of the run's model files as they are (if the run is complete),
    so its numbers are used for those files only. Returns whether anything changed (a second call returns
    False).
    """
    run_dir = Path(run_dir)
    path, surfaces_path = run_dir / CACHE_NAME, run_dir / "surfaces.json"
    old = read_json(path) if path.is_file() else None
    if isinstance(old, dict) and old.get("layout") == LAYOUT:
        cache, old = old, None
    else:
        cache = _empty(run_dir)
    if old is None and not surfaces_path.is_file():
        return False
    if old is not None:
        request = old["request"]
        for parameter, values in request["grid"].items():
            key = _curve_key(parameter, values, request)
            if find_entry(cache["curves"], key) is None:
                cache["curves"].append({**key, "mean_returns": old["mean_returns"][parameter]})
        cache["views"]["robustness"] = request
    if surfaces_path.is_file():
        surfaces = read_json(surfaces_path)
        request = surfaces["request"]
        for parameter, curve in surfaces["curves"].items():
            key = _curve_key(parameter, curve["values"], request)
            if find_entry(cache["curves"], key) is None:
                cache["curves"].append({**key, "mean_returns": curve["mean_returns"]})
        for pair in request.get("pairs", []):
            key = _pair_key(pair, request["grid"], request)
            if find_entry(cache["pairs"], key) is None:
                cache["pairs"].append({**key, "mean_returns": surfaces["pairs"]["|".join(pair)]["mean_returns"]})
        cache["views"]["surfaces"] = request
    if is_complete(run_dir):
        cache["models"] = models_in_use(run_dir, cache)
    atomic_write_json(path, cache)
    surfaces_path.unlink(missing_ok=True)
    return True
