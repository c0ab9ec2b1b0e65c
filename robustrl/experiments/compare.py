"""Compare runs with reference runs (training is deterministic per seed), and compact older runs.

:func:`compare_runs` says, per run, whether a retrained run is identical to the committed one: same
``curve.csv`` bytes, same weights of the best and final models, same evaluation returns. A reference
without its weights (a committed sweep run) is compared through the checksums its ``eval.json`` records.
:func:`compact_run` converts a run saved with Stable-Baselines3 ``.zip`` files to compact checkpoints.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustrl.agents import AgentConfig, checkpoint_bytes, encode_checkpoint, load_agent, read_checkpoint
from robustrl.experiments.adopt import config_differences
from robustrl.experiments.curves import STALE, VIEWS, read_views
from robustrl.experiments.io import atomic_write_bytes, atomic_write_json, file_sha256, read_json
from robustrl.experiments.records import complete_runs, find_runs, read_evaluation, read_meta
from robustrl.experiments.run_files import (
    CHECKPOINT_SUFFIX,
    CHECKPOINTS,
    checkpoint_files,
    is_complete,
    is_trained,
    is_weightless,
    model_checksums,
)
from robustrl.tasks import id_label
from robustrl.experiments.training import load_run_model, save_final_checkpoint

__all__ = ["CROSS_CPU_DOC", "cell_moves", "checkpoint_encodings", "compact_final", "compact_run", "compare_run",
           "compare_runs", "preset_difference", "q_net_weights"]

#: The docs paragraph on why a run replayed on another CPU can differ from the committed one.
CROSS_CPU_DOC = 'docs/guide/setup.rst, "Replaying a run on another CPU"'

def q_net_weights(run_dir: str | Path, checkpoint: str) -> dict[str, torch.Tensor]:
    """The Q-network ``state_dict`` of a run's ``best`` or ``final`` model (compact or ``.zip``)."""
    path = checkpoint_files(run_dir)[checkpoint]
    if path.suffix == CHECKPOINT_SUFFIX:
        return read_checkpoint(path)["q_net"]
    return load_run_model(run_dir, checkpoint).q_net.state_dict()


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def checkpoint_encodings(run_dir: str | Path, checkpoint: str) -> dict[str, bytes]:
    """A checkpoint's model file in every encoding a run may store its weights in, by checksum: as it is,
    as a full compact checkpoint, and (the final one) against the run's best checkpoint."""
    files = checkpoint_files(run_dir)
    path = files[checkpoint]
    options = [path.read_bytes()]
    if path.suffix == CHECKPOINT_SUFFIX:
        state = read_checkpoint(path)
        options.append(encode_checkpoint(state))
        if files["best"] != path:
            options.append(encode_checkpoint(state, files["best"]))
    return {hashlib.sha256(data).hexdigest(): data for data in options}


def _same_checksum(run_dir: Path, reference_dir: Path, checkpoint: str) -> bool:
    """Whether the recorded checksum of a weightless side is one of the other side's encodings."""
    recorded = model_checksums(reference_dir, (checkpoint,))[checkpoint]["sha256"]
    if is_weightless(run_dir):
        return model_checksums(run_dir, (checkpoint,))[checkpoint]["sha256"] == recorded
    return recorded in checkpoint_encodings(run_dir, checkpoint)


def _weights_differences(run_dir: Path, reference_dir: Path) -> list[str]:
    """Which checkpoints' weights differ; through the recorded checksums when either side is weightless."""
    how = " (by checksum: the reference has no weights)" if is_weightless(reference_dir) else ""
    differ = []
    for checkpoint in CHECKPOINTS:
        if is_weightless(reference_dir):
            same = _same_checksum(run_dir, reference_dir, checkpoint)
        elif is_weightless(run_dir):
            same = _same_checksum(reference_dir, run_dir, checkpoint)
        else:
            same = _same_weights(q_net_weights(run_dir, checkpoint), q_net_weights(reference_dir, checkpoint))
        if not same:
            differ.append(f"{checkpoint} weights differ{how}")
    return differ


def cell_moves(new: dict[str, dict[str, list[float]]], old: dict[str, dict[str, list[float]]]) -> str:
    """How far each table cell (an id's mean return of one checkpoint) moved between two ``eval.json`` returns,
    e.g. ``table cells moved: Heavy pole best 487.3 -> 492.1 (7 other cells unchanged)``."""
    moved, unchanged = [], 0
    for env_id in dict.fromkeys([*old, *new]):
        for checkpoint in dict.fromkeys([*old.get(env_id, {}), *new.get(env_id, {})]):
            a, b = old.get(env_id, {}).get(checkpoint), new.get(env_id, {}).get(checkpoint)
            label = f"{id_label(env_id)} {checkpoint}"
            if a == b:
                unchanged += 1
            elif a is None or b is None:
                moved.append(f"{label} {'only in this run' if a is None else 'only in the reference'}")
            else:
                moved.append(f"{label} {np.mean(a):.1f} -> {np.mean(b):.1f}"
                             + (" (same mean, other episodes)" if np.mean(a) == np.mean(b) else ""))
    rest = f" ({unchanged} other cell{'s' * (unchanged != 1)} unchanged)" if unchanged else ""
    return "table cells moved: " + ", ".join(moved) + rest


def _curve_moves(name: str, new: dict[str, Any], old: dict[str, Any]) -> str:
    """Which curves (or surfaces) of a robustness cache moved, and by how much at most."""
    def returns(curve: Any) -> Any:  # a surface curve holds its grid values beside its mean returns
        return curve["mean_returns"] if isinstance(curve, dict) else curve

    moved = []
    for key in sorted(set(new) | set(old)):
        if new.get(key) == old.get(key):
            continue
        try:
            a, b = (np.asarray(returns(side[key]), dtype=float) for side in (new, old))
            gap = float(np.max(np.abs(a - b)))
            moved.append(f"{key} by up to {gap:.1f}")
        except (KeyError, ValueError, TypeError):  # absent on one side, or another grid: name it only
            moved.append(key)
    return f"{name} moved ({', '.join(moved)})"


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

    Compares the configuration (first: other settings make the rest meaningless), the weights of the
    best and final models (their checksums when a side is weightless), the ``curve.csv`` bytes, and the
    returns of ``eval.json`` (as the table cells that moved, old -> new: :func:`cell_moves`) and of the
    robustness curves and surfaces (``robustness.json``) where both were made with the same request.
    When anything differs, the last entry points to the docs on replaying a run on another CPU.
    """
    run_dir, reference_dir = Path(run_dir), Path(reference_dir)
    if not is_trained(reference_dir):
        return [f"no complete reference run at {reference_dir}"]
    if not is_trained(run_dir):
        return [f"{run_dir} is not a complete run"]
    config = config_differences(read_meta(run_dir, ("config",))["config"],
                                read_meta(reference_dir, ("config",))["config"], ("this run", "the reference"))
    if config:
        return [f"configuration differs ({'; '.join(config)}); nothing else compared"]
    differences = _weights_differences(run_dir, reference_dir)
    curve = _curve_difference(run_dir / "curve.csv", reference_dir / "curve.csv")
    if curve:
        differences.append(curve)
    results: dict[Path, dict[str, Any]] = {}
    stale: dict[str, list[str]] = {}
    for folder, side in ((run_dir, "this run"), (reference_dir, "the reference")):
        evaluation = read_evaluation(folder) if (folder / "eval.json").is_file() else None
        if evaluation is not None and evaluation.get("models") != model_checksums(folder):
            stale.setdefault("eval.json", []).append(side)
            evaluation = None
        results[folder] = {"eval.json": evaluation and {"request": evaluation.get("request"),
                                                        "values": evaluation["returns"]}}
        for view in VIEWS:
            views, left_out = read_views([folder], view)
            if left_out.get(folder.name) == STALE:
                stale.setdefault(f"{view} curves", []).append(side)
            cached = views.get(folder)
            results[folder][f"{view} curves"] = cached and {
                "request": cached["request"],
                "values": cached.get("mean_returns") or {**cached.get("curves", {}), **cached.get("pairs", {})}}
    for name, sides in stale.items():
        differences.append(f"{name} of {' and '.join(sides)} computed from other model files: not compared")
    for name, new in results[run_dir].items():
        old = results[reference_dir][name]
        if new is None or old is None:
            continue
        if new["request"] != old["request"]:
            differences.append(f"{name} made with other settings: not compared")
        elif new["values"] != old["values"]:
            differences.append(cell_moves(new["values"], old["values"]) if name == "eval.json"
                               else _curve_moves(name, new["values"], old["values"]))
    if differences:
        differences.append(f"see {CROSS_CPU_DOC}")
    return differences


def compare_runs(runs_dir: str | Path, reference_runs_dir: str | Path) -> dict[str, list[str]]:
    """:func:`compare_run` for every complete run of ``runs_dir`` against its namesake in ``reference_runs_dir``;
    an incomplete run folder is listed with what it lacks."""
    runs_dir, reference_runs_dir = Path(runs_dir), Path(reference_runs_dir)
    if not reference_runs_dir.is_dir():
        raise ValueError(f"runs folder {reference_runs_dir} does not exist")
    compared = {run.name: compare_run(run, reference_runs_dir / run.name) for run in complete_runs(runs_dir)}
    incomplete = {name: [f"{why}: not compared"] for name, why in find_runs(runs_dir)[1].items()}
    return dict(sorted({**compared, **incomplete}.items()))


def preset_difference(out: str | Path, reference: str | Path) -> str | None:
    """Why the runs of one ``robustrl reproduce`` output cannot be compared with another's (their
    ``reproduce.json``: agents and their configurations, seeds, episodes), or None if they can.

    A subset can: fewer seeds, or some of the agents, each with the reference's configuration, at the same
    evaluation episodes (each run is then compared with its namesake, e.g. ``robustrl reproduce --seeds 1
    --compare results`` checks seed 0 of every agent in a fraction of the time).
    """
    saved = {}
    for folder in (Path(out), Path(reference)):
        path = folder / "reproduce.json"
        if not path.is_file():
            return f"{path} does not exist"
        saved[folder] = read_json(path)
    new, old = saved.values()
    for key in ("episodes", "evaluation_seed"):
        if new.get(key) != old.get(key):
            return f"{key}: {new.get(key)!r} vs {old.get(key)!r}"
    if not isinstance(new.get("seeds"), int) or not isinstance(old.get("seeds"), int) or new["seeds"] > old["seeds"]:
        return f"seeds: {new.get('seeds')!r} vs {old.get('seeds')!r}"
    agents, reference_agents = new.get("agents") or {}, old.get("agents") or {}
    for agent, summary in agents.items():
        if agent not in reference_agents:
            return f"agent {agent!r} is not in {Path(reference) / 'reproduce.json'}"
        if summary != reference_agents[agent]:
            return f"agent {agent!r}: {summary!r} vs {reference_agents[agent]!r}"
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
    meta = read_meta(run_dir, ("config", "algo"))
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


def compact_final(run_dir: str | Path) -> bool:
    """Store a run's final checkpoint as the entries that differ from its best one (version 2), in place.

    The new file must read back to the final weights bit for bit (else a ``ValueError``, nothing written).
    The run's caches keep their numbers and name the new file's checksum instead of the old one's (the
    weights they were computed from are unchanged). Returns False if there is nothing to do: a ``.zip``
    run, a final model stored as the best one, or one already stored against it.
    """
    run_dir = Path(run_dir)
    if not is_complete(run_dir):
        raise ValueError(f"{run_dir} is not a complete run")
    files = checkpoint_files(run_dir)
    final = files["final"]
    if final == files["best"] or {p.suffix for p in files.values()} != {CHECKPOINT_SUFFIX}:
        return False
    state = read_checkpoint(final)
    if state["version"] != 1:
        return False
    data, old = encode_checkpoint(state, files["best"]), final.read_bytes()
    check = atomic_write_bytes(final.with_name(f".{final.name}.check"), data)
    try:
        stored = read_checkpoint(check)  # read as the run will read it, beside its best checkpoint
    finally:
        check.unlink()
    if encode_checkpoint(stored) != old:  # the same bytes once encoded in full: the same weights, bit for bit
        raise ValueError(f"{final}: the compact encoding does not read back to its weights")
    old = hashlib.sha256(old).hexdigest()
    atomic_write_bytes(final, data)
    new = file_sha256(final)
    for cache in sorted(run_dir.glob("*.json")):
        content = read_json(cache)
        models = content.get("models") if isinstance(content, dict) else None
        entries = [e for e in (models or {}).values() if e == {"file": final.name, "sha256": old}]
        for entry in entries:
            entry["sha256"] = new
        if entries:
            atomic_write_json(cache, content)
    return True
