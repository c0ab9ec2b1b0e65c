"""Reading what run folders hold (``meta.json``, ``eval.json``), with errors naming the file and the problem.

A table or a statistic is computed from a set of evaluated runs. :func:`collect_evaluated_runs` is that
set: it refuses runs that are not trained to the end or not evaluated on every id (unless a partial result
is asked for, and then it says which runs are left out) and it refuses evaluations with different numbers
of episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustrl.checks import is_number, is_of
from robustrl.experiments.io import read_json

__all__ = ["EvaluatedRun", "collect_evaluated_runs", "read_evaluation", "read_meta", "run_folders"]

_META_FIELDS: dict[str, type] = {"agent": str, "tag": str, "seed": int, "algo": str, "config": dict}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def read_meta(run_dir: str | Path, required: tuple[str, ...] = ("agent", "seed")) -> dict[str, Any]:
    """``meta.json`` of a run folder; ``ValueError`` naming the file if it is not a JSON object, lacks a
    ``required`` field, or has a field of the wrong type (``agent``, ``tag``, ``algo``: text; ``seed``:
    integer; ``config``: object)."""
    path = Path(run_dir) / "meta.json"
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise ValueError(f"{path} is not a run record: expected a JSON object, got {_kind(meta)}")
    for key in required:
        if key not in meta:
            raise ValueError(f"{path} is not a run record: no {key!r}")
    for key, kind in _META_FIELDS.items():
        if key in meta and not is_of(meta[key], kind):
            raise ValueError(f"{path} is not a run record: {key!r} is {meta[key]!r}")
    return meta


def read_evaluation(run_dir: str | Path) -> dict[str, Any]:
    """``eval.json`` of a run folder, checked to hold ``{"returns": {env_id: {checkpoint: [numbers]}}}``."""
    path = Path(run_dir) / "eval.json"
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not an evaluation: expected a JSON object, got {_kind(data)}")
    returns = data.get("returns")
    if not isinstance(returns, dict):
        raise ValueError(f"{path} is not an evaluation: 'returns' is {returns!r}, expected {{env_id: ...}}")
    for env_id, by_checkpoint in returns.items():
        if not isinstance(by_checkpoint, dict):
            raise ValueError(f"{path} is not an evaluation: returns of {env_id} are {_kind(by_checkpoint)}, "
                             "expected {checkpoint: [returns]}")
        for checkpoint, values in by_checkpoint.items():
            if not isinstance(values, list) or not all(is_number(v) for v in values):
                raise ValueError(f"{path} is not an evaluation: returns of {env_id} ({checkpoint}) "
                                 "are not a list of numbers")
    return data


def run_folders(runs_dir: str | Path) -> list[Path]:
    """The run folders under ``runs_dir``: sub-folders holding a ``meta.json`` or an ``eval.json``."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir()
                  if p.is_dir() and ((p / "meta.json").is_file() or (p / "eval.json").is_file()))


@dataclass
class EvaluatedRun:
    """One complete, evaluated run: its folder, ``meta.json``, returns and episodes per id and checkpoint."""

    run_dir: Path
    meta: dict[str, Any]
    returns: dict[str, dict[str, list[float]]]
    episodes: int


def _missing(returns: dict[str, dict[str, list[float]]], env_ids: list[str],
             checkpoints: tuple[str, ...]) -> str | None:
    for env_id in env_ids:
        for checkpoint in checkpoints:
            if not returns.get(env_id, {}).get(checkpoint):
                return f"no {checkpoint} returns on {env_id} in eval.json"
    return None


def collect_evaluated_runs(
    runs_dir: str | Path,
    env_ids: tuple[str, ...] | None = None,
    checkpoints: tuple[str, ...] = ("best", "final"),
    allow_partial: bool = False,
) -> tuple[list[EvaluatedRun], dict[str, str]]:
    """The evaluated runs under ``runs_dir`` and the incomplete ones, as ``{run name: what is missing}``.

    A run is incomplete if it has no ``meta.json`` (training did not finish), no ``eval.json``, or no
    returns for one of ``env_ids`` (default: every id any run was evaluated on) and ``checkpoints``.

    :raises ValueError: if a run is incomplete and ``allow_partial`` is false (naming every incomplete run),
        if the runs were evaluated with different numbers of episodes (naming the runs and their counts),
        or if a ``meta.json`` or ``eval.json`` is malformed (naming the file).
    """
    folders = run_folders(runs_dir)
    evaluations: dict[Path, dict[str, Any]] = {}
    missing: dict[str, str] = {}
    metas: dict[Path, dict[str, Any]] = {}
    for folder in folders:
        if not (folder / "meta.json").is_file():
            missing[folder.name] = "not trained to the end (no meta.json)"
            continue
        metas[folder] = read_meta(folder)
        if not (folder / "eval.json").is_file():
            missing[folder.name] = "not evaluated (no eval.json; run `robustrl evaluate`)"
            continue
        evaluations[folder] = read_evaluation(folder)["returns"]
    ids = list(env_ids) if env_ids is not None else list(dict.fromkeys(
        e for returns in evaluations.values() for e, by_checkpoint in returns.items()
        if any(by_checkpoint.get(c) for c in checkpoints)))
    runs = []
    for folder, returns in evaluations.items():
        problem = _missing(returns, ids, checkpoints)
        if problem is not None:
            missing[folder.name] = problem
            continue
        counts = {len(returns[e][c]) for e in ids for c in checkpoints}
        if len(counts) > 1:
            raise ValueError(f"{folder / 'eval.json'} mixes episode counts {sorted(counts)} across ids")
        selected = {e: {c: returns[e][c] for c in checkpoints} for e in ids}
        runs.append(EvaluatedRun(folder, metas[folder], selected, counts.pop() if counts else 0))
    if missing and not allow_partial:
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(missing.items()))
        raise ValueError(f"{len(missing)} incomplete run(s) under {runs_dir}: {listed} "
                         "(finish them, remove them, or ask for a partial result with --allow-partial)")
    by_count: dict[int, list[str]] = {}
    for run in runs:
        by_count.setdefault(run.episodes, []).append(run.run_dir.name)
    if len(by_count) > 1:
        listed = "; ".join(f"{n} episodes: {', '.join(names)}" for n, names in sorted(by_count.items()))
        raise ValueError(f"runs under {runs_dir} were evaluated with different numbers of episodes "
                         f"({listed}); evaluate them all with the same --episodes")
    return runs, missing
