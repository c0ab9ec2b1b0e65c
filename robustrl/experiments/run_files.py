"""The model files of a run folder: which ones ``meta.json`` names, whether they exist, their checksums.

Imports neither torch nor Stable-Baselines3, so caches can be checked against the model files cheaply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustrl.experiments.io import file_sha256, read_json

__all__ = ["CHECKPOINTS", "CHECKPOINT_SUFFIX", "checkpoint_files", "check_checkpoint", "find_entry",
           "is_complete", "model_checksums", "renew_models"]

CHECKPOINTS = ("best", "final")
#: Suffix of the compact checkpoints (:func:`robustrl.agents.load_checkpoint`) a run is saved as.
CHECKPOINT_SUFFIX = ".pt"


def check_checkpoint(checkpoint: str) -> str:
    """``checkpoint`` if it is ``"best"`` or ``"final"``, else a ``ValueError`` naming it."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got checkpoint={checkpoint!r}")
    return checkpoint


def checkpoint_files(run_dir: str | Path) -> dict[str, Path]:
    """The model file of each checkpoint (``best``, ``final``) of a run, as its ``meta.json`` names them.

    When training ends on its best model, ``final`` names the same file as ``best`` (stored once).
    Runs saved before compact checkpoints have no ``checkpoints`` entry: theirs are ``best.zip`` and
    ``final.zip`` (Stable-Baselines3).
    """
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
    """A run is complete once its ``meta.json`` (written last) and every model file it names exist."""
    run_dir = Path(run_dir)
    if not (run_dir / "meta.json").is_file():
        return False
    return all(path.is_file() for path in checkpoint_files(run_dir).values())


def model_checksums(run_dir: str | Path, checkpoints: tuple[str, ...] = CHECKPOINTS) -> dict[str, dict[str, str]]:
    """``{checkpoint: {"file", "sha256"}}`` of a run's model files, saved beside every evaluation.

    A cached evaluation is used only while these still match, so a replaced or damaged model file is
    evaluated again (and a damaged one then fails, naming the file).
    """
    for checkpoint in checkpoints:
        check_checkpoint(checkpoint)
    files = checkpoint_files(run_dir)
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
