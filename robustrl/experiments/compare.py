"""Compare runs with reference runs (training is deterministic per seed), and compact older runs.

:func:`compare_runs` says, per run, whether a retrained run is identical to the committed one: same
``curve.csv`` bytes, same weights of the best and final models, same evaluation returns.
:func:`compact_run` converts a run saved with Stable-Baselines3 ``.zip`` files to compact checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robustrl.agents import AgentConfig, checkpoint_bytes, load_agent, read_checkpoint
from robustrl.experiments.curves import VIEWS, read_view
from robustrl.experiments.io import atomic_write_bytes, atomic_write_json, read_json
from robustrl.experiments.run_files import CHECKPOINT_SUFFIX, CHECKPOINTS, checkpoint_files, is_complete
from robustrl.experiments.training import load_run_model, save_final_checkpoint

__all__ = ["compact_run", "compare_run", "compare_runs", "preset_difference", "q_net_weights"]

def q_net_weights(run_dir: str | Path, checkpoint: str) -> dict[str, torch.Tensor]:
    """The Q-network ``state_dict`` of a run's ``best`` or ``final`` model (compact or ``.zip``)."""
    path = checkpoint_files(run_dir)[checkpoint]
    if path.suffix == CHECKPOINT_SUFFIX:
        return read_checkpoint(path)["q_net"]
    return load_run_model(run_dir, checkpoint).q_net.state_dict()


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _config_difference(new: dict[str, Any], old: dict[str, Any], prefix: str = "") -> str | None:
    for key in sorted(set(new) | set(old)):
        a, b = new.get(key), old.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _config_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} vs {b!r}"
    return None


def _curve_difference(new: Path, old: Path) -> str | None:
    if not new.is_file() or not old.is_file():
        return None if new.is_file() == old.is_file() else "curve.csv missing on one side"
    if new.read_bytes() == old.read_bytes():
        return None
    new_lines, old_lines = new.read_text().splitlines(), old.read_text().splitlines()
    for number, (a, b) in enumerate(zip(new_lines, old_lines), start=1):
        if a != b:
            return f"curve.csv line {number}: {a} vs {b}"
    return f"curve.csv has {len(new_lines)} lines vs {len(old_lines)}"


def compare_run(run_dir: str | Path, reference_dir: str | Path) -> list[str]:
    """What differs between a run and a reference run of the same name; an empty list if identical.

    Compares the configuration (first: other settings make the rest meaningless), the ``curve.csv``
    bytes, the weights of the best and final models, and the returns of ``eval.json`` and of the
    robustness curves and surfaces (``robustness.json``) where both were made with the same request.
    """
    run_dir, reference_dir = Path(run_dir), Path(reference_dir)
    if not is_complete(reference_dir):
        return [f"no complete reference run at {reference_dir}"]
    if not is_complete(run_dir):
        return [f"{run_dir} is not a complete run"]
    config = _config_difference(read_json(run_dir / "meta.json")["config"],
                                read_json(reference_dir / "meta.json")["config"])
    if config:
        return [f"configuration differs ({config}); nothing else compared"]
    differences = []
    curve = _curve_difference(run_dir / "curve.csv", reference_dir / "curve.csv")
    if curve:
        differences.append(curve)
    for checkpoint in CHECKPOINTS:
        if not _same_weights(q_net_weights(run_dir, checkpoint), q_net_weights(reference_dir, checkpoint)):
            differences.append(f"{checkpoint} weights differ")
    results = {}
    for folder in (run_dir, reference_dir):
        path = folder / "eval.json"
        evaluation = read_json(path) if path.is_file() else None
        results[folder] = {"eval.json": evaluation and {"request": evaluation["request"],
                                                        "values": evaluation["returns"]}}
        for view in VIEWS:
            cached = read_view(folder, view)
            results[folder][f"{view} curves"] = cached and {
                "request": cached["request"],
                "values": cached.get("mean_returns") or {**cached.get("curves", {}), **cached.get("pairs", {})}}
    for name, new in results[run_dir].items():
        old = results[reference_dir][name]
        if new is None or old is None:
            continue
        if new["request"] != old["request"]:
            differences.append(f"{name} made with other settings: not compared")
        elif new["values"] != old["values"]:
            new, old = new["values"], old["values"]
            differing = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k))
            differences.append(f"{name} returns differ ({', '.join(differing)})")
    return differences


def compare_runs(runs_dir: str | Path, reference_runs_dir: str | Path) -> dict[str, list[str]]:
    """:func:`compare_run` for every run folder of ``runs_dir`` against its namesake in ``reference_runs_dir``."""
    runs_dir, reference_runs_dir = Path(runs_dir), Path(reference_runs_dir)
    for folder in (runs_dir, reference_runs_dir):
        if not folder.is_dir():
            raise ValueError(f"runs folder {folder} does not exist")
    names = sorted(p.parent.name for p in runs_dir.glob("*/meta.json"))
    if not names:
        raise ValueError(f"no complete runs under {runs_dir}")
    return {name: compare_run(runs_dir / name, reference_runs_dir / name) for name in names}


def preset_difference(out: str | Path, reference: str | Path) -> str | None:
    """What differs between the settings two ``robustrl reproduce`` outputs were made with (their
    ``reproduce.json``: agents and their configurations, seeds, episodes), or None if nothing does."""
    saved = {}
    for folder in (Path(out), Path(reference)):
        path = folder / "reproduce.json"
        if not path.is_file():
            return f"{path} does not exist"
        saved[folder] = read_json(path)
    new, old = saved.values()
    for key in ("seeds", "episodes", "agents"):
        if new.get(key) != old.get(key):
            return f"{key}: {new.get(key)!r} vs {old.get(key)!r}"
    return None


def compact_run(run_dir: str | Path) -> bool:
    """Convert a run saved with Stable-Baselines3 ``.zip`` files to compact checkpoints, in place.

    Writes ``best.pt`` (and ``final.pt`` unless the final model is the best one), checks that they hold
    the same Q-network weights as the zips, names them in ``meta.json``, then deletes the zips. Cached
    evaluations are kept; they lack the new files' checksums, so the next evaluation recomputes them.
    Returns False if the run already has compact checkpoints.
    """
    run_dir = Path(run_dir)
    if not is_complete(run_dir):
        raise ValueError(f"{run_dir} is not a complete run")
    files = checkpoint_files(run_dir)
    if all(path.suffix == CHECKPOINT_SUFFIX for path in files.values()):
        return False
    meta = read_json(run_dir / "meta.json")
    config = AgentConfig(**meta["config"])
    models = {c: load_agent(files[c], meta["algo"]) for c in CHECKPOINTS}
    atomic_write_bytes(run_dir / f"best{CHECKPOINT_SUFFIX}", checkpoint_bytes(models["best"], config))
    names = save_final_checkpoint(checkpoint_bytes(models["final"], config), run_dir)
    for checkpoint in CHECKPOINTS:
        saved = read_checkpoint(run_dir / names[checkpoint])["q_net"]
        if not _same_weights(saved, models[checkpoint].q_net.state_dict()):
            raise ValueError(f"{run_dir / names[checkpoint]} does not hold the weights of {files[checkpoint]}")
    atomic_write_json(run_dir / "meta.json", {**meta, "checkpoints": names})
    for path in set(files.values()):
        path.unlink()
    return True
