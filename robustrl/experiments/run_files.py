"""The model files of a run folder: which ones ``meta.json`` names, whether they exist, their checksums.

A run is *complete* when its ``meta.json`` and model files exist: it can be evaluated and it is reused
as it is. A *weightless* run is a committed copy without its model files (a sweep under ``results/``
commits what its tables need, not its weights): its ``eval.json`` records the checksums of the model
files it was evaluated from, so its caches can still be read, and a rebuild is checked against them.
Imports neither torch nor Stable-Baselines3, so caches can be checked against the model files cheaply.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from robustrl.checks import check_option
from robustrl.experiments.io import file_sha256, read_json

__all__ = ["CHECKPOINTS", "CHECKPOINT_SUFFIX", "MissingWeightsError", "checkpoint_files", "check_checkpoint",
           "find_entry", "is_complete", "is_trained", "is_weightless", "model_checksums", "rebuild_command",
           "recorded_models", "renew_models", "run_task", "runs_task"]


class MissingWeightsError(ValueError):
    """A weightless run's model files are needed (to evaluate it, or to compare weights); names the rebuild."""

CHECKPOINTS = ("best", "final")
#: Suffix of the compact checkpoints (:func:`robustrl.agents.load_checkpoint`) a run is saved as.
CHECKPOINT_SUFFIX = ".pt"


def run_task(run_dir: str | Path) -> Any:
    """The packaged task whose ids include the run's training env id (``meta.json``), or the default task for a
    run folder without one (a :class:`robustrl.tasks.Task`)."""
    from robustrl.tasks import get_task, task_of

    meta = Path(run_dir) / "meta.json"
    env_id = read_json(meta).get("env_id") if meta.is_file() else None
    return task_of(env_id) if isinstance(env_id, str) else get_task()


def runs_task(run_dirs: Any) -> Any:
    """The one task of several runs (:func:`run_task`); ``ValueError`` if they belong to different tasks, the
    default task if there are none."""
    from robustrl.tasks import get_task

    tasks = {task.name: task for task in map(run_task, run_dirs)}
    if len(tasks) > 1:
        raise ValueError(f"runs of several tasks ({', '.join(sorted(tasks))}) cannot share a table or a plot")
    return next(iter(tasks.values())) if tasks else get_task()


def check_checkpoint(checkpoint: str) -> str:
    """``checkpoint`` if it is ``"best"`` or ``"final"``, else a ``ValueError`` naming it."""
    return check_option(checkpoint, CHECKPOINTS, "checkpoint")


def checkpoint_files(run_dir: str | Path, *, weights: bool = True) -> dict[str, Path]:
    """The model file of each checkpoint (``best``, ``final``) of a run, as its ``meta.json`` names them.

    When training ends on its best model, ``final`` names the same file as ``best`` (stored once).
    Runs saved before compact checkpoints have no ``checkpoints`` entry: theirs are ``best.zip`` and
    ``final.zip`` (Stable-Baselines3). For a weightless run (:func:`is_weightless`) this is a
    :class:`MissingWeightsError` naming the command that rebuilds them, unless ``weights`` is false (then
    the names are returned whether the files exist or not).
    """
    files = _named_files(run_dir)
    if weights and not any(path.is_file() for path in files.values()) and is_weightless(run_dir):
        command = rebuild_command(run_dir)
        unknown = " (SPEC: the sweep file that made these runs)" if " SPEC " in command else ""
        raise MissingWeightsError(f"{Path(run_dir)}: weights not committed; rebuild them with: {command}{unknown}")
    return files


def _named_files(run_dir: str | Path) -> dict[str, Path]:
    """The model files ``meta.json`` names, whether they exist or not."""
    run_dir = Path(run_dir)
    meta_path = run_dir / "meta.json"
    meta = read_json(meta_path)
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path} is not a run's meta.json (expected a mapping, got {type(meta).__name__})")
    names = meta.get("checkpoints", {c: f"{c}.zip" for c in CHECKPOINTS})
    if not (isinstance(names, dict) and set(names) == set(CHECKPOINTS) and all(
            isinstance(n, str) and n and Path(n).name == n for n in names.values())):
        raise ValueError(f"{meta_path}: checkpoints must map best and final to file names, got {names!r}")
    return {checkpoint: run_dir / names[checkpoint] for checkpoint in CHECKPOINTS}


def is_complete(run_dir: str | Path) -> bool:
    """A run is complete once its ``meta.json`` (written last) and every model file it names exist.

    A weightless run is not complete: training it again rebuilds its model files.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "meta.json").is_file():
        return False
    return all(path.is_file() for path in _named_files(run_dir).values())


def recorded_models(run_dir: str | Path) -> dict[str, dict[str, str]] | None:
    """The checksums of the model files that ``eval.json`` records (``{checkpoint: {"file", "sha256"}}``),
    or None if there is no readable record of every file ``meta.json`` names."""
    run_dir = Path(run_dir)
    if not (run_dir / "eval.json").is_file() or not (run_dir / "meta.json").is_file():
        return None
    try:
        models = read_json(run_dir / "eval.json").get("models")
        files = _named_files(run_dir)
    except (ValueError, AttributeError):
        return None
    if not isinstance(models, dict) or not all(
            isinstance(models.get(c), dict) and models[c].get("file") == files[c].name
            and isinstance(models[c].get("sha256"), str) for c in CHECKPOINTS):
        return None
    return {c: {"file": models[c]["file"], "sha256": models[c]["sha256"]} for c in CHECKPOINTS}


def is_weightless(run_dir: str | Path) -> bool:
    """Whether a run was trained to the end but holds none of its model files, and its ``eval.json`` records
    their checksums (a committed sweep run: its tables and caches can be read, its weights rebuilt)."""
    run_dir = Path(run_dir)
    if not (run_dir / "meta.json").is_file() or recorded_models(run_dir) is None:
        return False
    return not any(path.is_file() for path in _named_files(run_dir).values())


def is_trained(run_dir: str | Path) -> bool:
    """Whether a run was trained to the end: complete, or weightless (its results can be read)."""
    return is_complete(run_dir) or is_weightless(run_dir)


def rebuild_command(run_dir: str | Path) -> str:
    """The command that rebuilds a weightless run's model files.

    For a sweep's run (a ``status.json`` beside the runs folder names the sweep file SPEC): ``robustrl sweep SPEC
    --runs RUNS``, which trains it aside and keeps the weights if they match the records. For any other run (a
    table's): ``robustrl train`` with the run's task, id, agent, seed and tag (``meta.json``) and the ``--config``
    and ``--set`` options of the command that made it, into its runs folder: training a weightless run again
    rebuilds it in place.
    """
    run_dir = Path(run_dir)
    runs_dir = run_dir.parent
    spec = "SPEC"
    status = runs_dir.parent / "status.json"
    words = _words(read_json(status).get("command") if status.is_file() else None)
    if len(words) > 2 and words[1] == "sweep" and Path(words[0]).name == "robustrl":
        spec = words[2]
    meta = read_json(run_dir / "meta.json") if (run_dir / "meta.json").is_file() else {}
    if spec != "SPEC" or not all(isinstance(meta.get(k), t) for k, t in (("env_id", str), ("agent", str),
                                                                       ("seed", int))):
        return f"robustrl sweep {spec} --runs {runs_dir}"
    made_by = _words(meta.get("command"))
    carried = []  # the options of the making command that set the configuration: --config FILE, --set K=V ...
    for option in ("--config", "--set"):
        if option in made_by:
            start = made_by.index(option) + 1
            stop = next((i for i in range(start, len(made_by)) if made_by[i].startswith("--")), len(made_by))
            carried += [option, *made_by[start:stop if option == "--set" else start + 1]]
    task = run_task(run_dir)
    where = ["--task", task.name] + (["--env", meta["env_id"]] if meta["env_id"] != task.nominal_id else [])
    tag = ["--tag", meta["tag"]] if meta.get("tag") else []
    return shlex.join(["robustrl", "train", *where, "--agent", meta["agent"], "--seed", str(meta["seed"]), *tag,
                       *carried, "--out", str(runs_dir)])


def _words(command: Any) -> list[str]:
    """A command line's words, or none if it is not a string that splits."""
    try:
        return shlex.split(command) if isinstance(command, str) else []
    except ValueError:
        return []


def model_checksums(run_dir: str | Path, checkpoints: tuple[str, ...] = CHECKPOINTS) -> dict[str, dict[str, str]]:
    """``{checkpoint: {"file", "sha256"}}`` of a run's model files, saved beside every evaluation.

    A cached evaluation is used only while these still match, so a replaced or damaged model file is
    evaluated again (and a damaged one then fails, naming the file). A weightless run's are the ones its
    ``eval.json`` records, so its caches stay readable as long as they agree with that record.
    """
    for checkpoint in checkpoints:
        check_checkpoint(checkpoint)
    files = _named_files(run_dir)
    recorded = None if any(path.is_file() for path in files.values()) else recorded_models(run_dir)
    if recorded is not None:
        return {c: recorded[c] for c in checkpoints}
    return {c: {"file": files[c].name, "sha256": file_sha256(files[c])} for c in checkpoints}


def find_entry(entries: list[dict[str, Any]], key: dict[str, Any]) -> dict[str, Any] | None:
    """The first cached entry whose fields include every item of ``key``, or None."""
    return next((e for e in entries if all(e.get(k) == v for k, v in key.items())), None)


def renew_models(cache: dict[str, Any], run_dir: str | Path, checkpoint: str,
                 lists: tuple[str, ...]) -> dict[str, str]:
    """The checksums of ``checkpoint``'s model file now; if the per-run ``cache`` (with ``"models"`` and the
    entry lists ``lists``) was computed from another file, that checkpoint's entries are dropped first.

    The caller records the returned checksums in ``cache["models"][checkpoint]`` once it adds entries.
    """
    models = model_checksums(run_dir, (checkpoint,))[checkpoint]
    if cache.setdefault("models", {}).get(checkpoint) != models:  # computed from another file: drop them
        for name in lists:
            cache[name] = [e for e in cache[name] if e["checkpoint"] != checkpoint]
    return models
