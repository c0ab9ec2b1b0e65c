"""Sweep backends: run a sweep's tasks locally (process pool) or on Ray, then hand the finished ones to the report.

The spec and its validation live in :mod:`robustrl.experiments.sweep_spec`, the tables and plots in
:mod:`robustrl.experiments.sweep_report`. Each task is trained with nominal model selection
(:func:`~robustrl.experiments.train_run`) and evaluated on the ids (:func:`~robustrl.experiments.evaluate_run`).
A run whose outputs are complete is skipped, a run that raises is recorded with its traceback in
``failed.json`` without stopping the others, and a rerun retries only the failed and missing runs. The
``local`` backend is a process pool sized to the cores; the ``ray`` backend submits the same function as
Ray tasks (``pip install robustrl[ray]``; on a multi-node cluster the runs folder must be on storage that
every node sees). Every run uses one torch thread and its own seed, so the two
backends produce identical numbers.

A sweep committed under ``results/`` keeps its runs' records but not their weights (``.gitignore``). Such a
weightless run still counts in the tables; a sweep over its folder rebuilds its weights
(:func:`rebuild_run`) and keeps them only if they match the checksums its ``eval.json`` recorded.
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from robustrl.checks import check_int
from robustrl.experiments.io import atomic_write_bytes, atomic_write_json, remove_temporaries
from robustrl.experiments.parallel import run_calls
from robustrl.experiments.ray_backend import BACKENDS, check_backend, check_ray_address, run_calls_on_ray
from robustrl.experiments.records import read_meta
from robustrl.experiments.run_files import (
    checkpoint_files,
    is_weightless,
    model_checksums,
    recorded_models,
)
from robustrl.experiments.sweep_report import write_sweep_outputs
from robustrl.experiments.sweep_spec import SweepSpec, SweepTask
from robustrl.experiments.training import evaluate_run, is_complete, is_evaluated, jsonable, train_run

__all__ = ["BACKENDS", "REBUILD_FOLDER", "check_ray_address", "rebuild_run", "run_sweep",
           "run_sweep_task"]

#: Where a weightless run's weights are rebuilt, inside its runs folder (skipped by every reader of runs).
REBUILD_FOLDER = ".rebuild"


def rebuild_run(task: SweepTask) -> str:
    """Train a weightless run again and give it the rebuilt model files if they match its records.

    The run is trained into ``RUNS/.rebuild/NAME``; when the checksums of its model files equal the ones
    the weightless run's ``eval.json`` recorded (a final model stored in full or against the best one
    counts in either encoding: it is written in the recorded one), the files move into the run folder (its
    committed files stay as they are) and the scratch run is removed. Returns what was done.

    :raises ValueError: if the run was made with another configuration, or if the rebuilt weights differ
        from the recorded ones (then the rebuilt run is evaluated like the sweep's runs and kept, the run
        is left weightless, and the message says how far each evaluation moved).
    """
    from robustrl.experiments.compare import CROSS_CPU_DOC, checkpoint_encodings, compare_run

    run_dir = task.run_dir
    if read_meta(run_dir, ("config",))["config"] != jsonable(task.spec.resolve(task.config).to_dict()):
        raise ValueError(f"{run_dir} holds a run with another configuration; remove it or use another --runs")
    recorded = recorded_models(run_dir)
    scratch = Path(task.runs_dir) / REBUILD_FOLDER
    rebuilt = train_run(task.spec, scratch, task.config, torch_threads=1)
    for checkpoint, now in model_checksums(rebuilt).items():  # the same weights, stored in the recorded encoding
        alternative = checkpoint_encodings(rebuilt, checkpoint).get(recorded[checkpoint]["sha256"])
        if now != recorded[checkpoint] and now["file"] == recorded[checkpoint]["file"] and alternative:
            atomic_write_bytes(rebuilt / now["file"], alternative)
    if model_checksums(rebuilt) != recorded:
        evaluate_run(rebuilt, task.eval_ids, task.episodes)
        found = compare_run(rebuilt, run_dir) or ["its model files are named otherwise", f"see {CROSS_CPU_DOC}"]
        raise ValueError(f"rebuilt weights do not match the checksums in {run_dir / 'eval.json'} (the rebuilt "
                         f"run is kept in {rebuilt}): {'; '.join(found)}")
    for path in set(checkpoint_files(rebuilt).values()):
        os.replace(path, run_dir / path.name)
    shutil.rmtree(rebuilt)
    try:
        scratch.rmdir()
    except OSError:  # other runs are being rebuilt there
        pass
    return f"weights rebuilt; they match the checksums in {run_dir / 'eval.json'}"


def _recorded(task: SweepTask) -> bool:
    """Whether a weightless run's ``eval.json`` holds this sweep's evaluation (its tables can be made)."""
    return is_weightless(task.run_dir) and is_evaluated(task.run_dir, task.eval_ids, task.episodes)


def run_sweep_task(task: SweepTask) -> dict[str, Any]:
    """Train and evaluate one run; never raises: a failure is returned and saved with its traceback.

    Returns ``{"run", "status" ("done" | "rebuilt" | "skipped" | "failed"), "seconds", "error", "note"}``;
    a weightless run is rebuilt (:func:`rebuild_run`) before it is evaluated.
    """
    import torch

    torch.set_num_threads(1)
    run_dir = task.run_dir
    start = time.perf_counter()
    was_complete = is_complete(run_dir) and is_evaluated(run_dir, task.eval_ids, task.episodes)
    note = None
    try:
        if is_weightless(run_dir):
            note = rebuild_run(task)
        train_run(task.spec, task.runs_dir, task.config, torch_threads=1)
        evaluate_run(run_dir, task.eval_ids, task.episodes)
        if task.surfaces:
            from robustrl.experiments.curves import surface_run

            surface_run(run_dir, task.surfaces["grid"], task.surfaces["pairs"], task.surfaces["episodes"])
    except Exception as err:  # noqa: BLE001 - one run's failure must not stop the sweep
        error = f"{type(err).__name__}: {err}"
        atomic_write_json(
            run_dir / "failed.json",
            {"run": task.spec.name, "error": error, "traceback": traceback.format_exc()},
        )
        return {
            "run": task.spec.name,
            "status": "failed",
            "seconds": time.perf_counter() - start,
            "error": error,
            "note": None,
        }
    (run_dir / "failed.json").unlink(missing_ok=True)
    status = "rebuilt" if note else "skipped" if was_complete else "done"
    return {"run": task.spec.name, "status": status, "seconds": time.perf_counter() - start, "error": None,
            "note": note}


def _run_local(tasks: list[SweepTask], jobs: int, progress: Callable[[dict[str, Any]], None]) -> None:
    run_calls(run_sweep_task, [(task,) for task in tasks], jobs, progress)


def _run_ray(
    tasks: list[SweepTask], jobs: int, address: str | None, progress: Callable[[dict[str, Any]], None]
) -> None:
    run_calls_on_ray(run_sweep_task, [(task,) for task in tasks], jobs, address, progress)


def run_sweep(
    spec: SweepSpec,
    runs_dir: str | Path,
    out: str | Path,
    backend: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Run every missing or failed run of ``spec`` on ``backend``, then write the sweep's tables.

    :param runs_dir: folder of run folders (models, evaluations).
    :param out: folder for the sweep's outputs (``status.json``, tables and plots of
        :func:`robustrl.experiments.sweep_report.write_sweep_outputs`).
    :param backend: ``"local"`` (process pool) or ``"ray"``.
    :param jobs: parallel runs (default: the number of cores).
    :param address: Ray cluster address (``ray`` backend only; default: start a local instance).
    :returns: the status: runs done, skipped, rebuilt (weightless runs whose rebuilt weights match their
        records) and failed (with their errors).
    """
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    check_int(jobs, "jobs", 1)
    check_backend(backend, address)  # fail fast, before any run or progress bar
    runs_dir, out = Path(runs_dir), Path(out)
    for folder in (runs_dir, out):
        remove_temporaries(folder)
    tasks = spec.tasks(runs_dir)
    todo = [t for t in tasks if not t.finished()]
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    with tqdm(total=len(todo), desc=f"sweep {spec.name} ({backend})", unit="run", disable=not todo) as bar:

        def progress(result: dict[str, Any]) -> None:
            results.append(result)
            bar.update(1)
            if result["status"] == "failed":
                bar.write(f"run {result['run']} failed: {result['error']}")
            elif result["note"]:
                bar.write(f"run {result['run']}: {result['note']}")

        if todo:
            if backend == "local":
                _run_local(todo, min(jobs, len(todo)), progress)
            else:
                _run_ray(todo, min(jobs, len(todo)), address, progress)
    wall = time.perf_counter() - start
    failed = {r["run"]: r["error"] for r in results if r["status"] == "failed"}
    status = {
        "name": spec.name,
        "backend": backend,
        "jobs": jobs,
        "runs": len(tasks),
        "ran": len(todo),
        "failed": failed,
        "rebuilt": sorted(r["run"] for r in results if r["status"] == "rebuilt"),
        "wall_seconds": round(wall, 2),
        "run_seconds": round(sum(r["seconds"] for r in results), 2),
        "command": command,
    }
    done = [t for t in tasks if t.finished() or _recorded(t)]  # a run left weightless keeps its records
    write_sweep_outputs(spec, done, out, command, missing=len(tasks) - len(done))
    atomic_write_json(out / "status.json", status)
    return status


