"""The model files of a run folder: which ones ``meta.json`` names, whether they exist, their checksums.

Imports neither torch nor Stable-Baselines3, so caches can be checked against the model files cheaply.
"""

from __future__ import annotations

from pathlib import Path

from robustrl.experiments.io import file_sha256, read_json

__all__ = ["CHECKPOINTS", "CHECKPOINT_SUFFIX", "checkpoint_files", "check_checkpoint", "is_complete",
           "model_checksums"]

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
