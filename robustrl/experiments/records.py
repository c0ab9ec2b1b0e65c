"""Reading what run folders hold (``meta.json``, ``eval.json``), with errors naming the file and the problem.

:func:`find_runs` says which sub-folders of a runs folder hold complete runs (and what the others lack);
:func:`complete_runs` is the list every command works on. A table or a statistic is computed from a set
of evaluated runs. :func:`collect_evaluated_runs` is that set: it refuses runs that are not trained to the
end, not evaluated on every id, or evaluated from model files that have changed since (unless a partial
result is asked for, and then it says which runs are left out) and it refuses evaluations with different
numbers of episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustrl.checks import is_number, is_of
from robustrl.experiments.io import read_json
from robustrl.experiments.run_files import checkpoint_files, is_weightless, model_checksums

__all__ = ["EvaluatedRun", "collect_evaluated_runs", "complete_runs", "find_runs", "read_evaluation", "read_meta"]

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


def find_runs(runs_dir: str | Path) -> tuple[list[Path], dict[str, str]]:
    """The complete runs in the sub-folders of ``runs_dir`` (sorted) and the incomplete ones as
    ``{run name: what is missing}``.

    A sub-folder holding a ``meta.json`` or an ``eval.json`` is a run folder; its run is complete once its
    ``meta.json`` (written last) and every model file it names exist, or when it is weightless (none of its
    model files, their checksums recorded in ``eval.json``: its results can be read, and what needs its
    weights says how to rebuild them). A malformed ``meta.json`` is a ``ValueError`` naming it
    (:func:`read_meta`), not an incomplete run.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return [], {}
    complete, incomplete = [], {}
    for folder in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        if not (folder / "meta.json").is_file():
            if (folder / "eval.json").is_file():
                incomplete[folder.name] = "not trained to the end (no meta.json)"
            continue
        read_meta(folder)
        absent = sorted({str(path) for path in checkpoint_files(folder, weights=False).values()
                         if not path.is_file()})
        if absent and not is_weightless(folder):
            incomplete[folder.name] = (f"model file {absent[0]} does not exist" if len(absent) == 1
                                       else f"model files {', '.join(absent)} do not exist")
        else:
            complete.append(folder)
    return complete, incomplete


def complete_runs(runs_dir: str | Path) -> list[Path]:
    """The complete runs under ``runs_dir`` (:func:`find_runs`).

    ``ValueError`` naming the folder if it does not exist or holds no complete run, and naming the file if
    a run's ``meta.json`` names a model file that does not exist (a run folder without ``meta.json`` is a
    training that did not finish: it is not listed).
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise ValueError(f"runs folder {runs_dir} does not exist")
    found, incomplete = find_runs(runs_dir)
    damaged = [f"{name}: {why}" for name, why in incomplete.items() if (runs_dir / name / "meta.json").is_file()]
    if damaged:
        raise ValueError(f"{'; '.join(damaged)} (train the run again or remove it)")
    if not found:
        raise ValueError(f"no complete runs under {runs_dir}")
    return found


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

    A run is incomplete if it is not trained to the end (:func:`find_runs`), has no ``eval.json``, has
    an ``eval.json`` computed from other model files than the run's (their checksums differ: a model file
    was replaced since), or has no returns for one of ``env_ids`` (default: every id any run was evaluated
    on) and ``checkpoints``.

    :raises ValueError: if a run is incomplete and ``allow_partial`` is false (naming every incomplete run),
        if the runs were evaluated with different numbers of episodes (naming the runs and their counts),
        or if a ``meta.json`` or ``eval.json`` is malformed (naming the file).
    """
    folders, missing = find_runs(runs_dir)
    evaluations: dict[Path, dict[str, Any]] = {}
    metas: dict[Path, dict[str, Any]] = {}
    for folder in folders:
        metas[folder] = read_meta(folder)
        if not (folder / "eval.json").is_file():
            missing[folder.name] = "not evaluated (no eval.json; run `robustrl evaluate`)"
            continue
        evaluation = read_evaluation(folder)
        if evaluation.get("models") != model_checksums(folder):
            missing[folder.name] = "model files changed since evaluation; run `robustrl evaluate`"
            continue
        evaluations[folder] = evaluation["returns"]
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
