"""Convert runs to the most compact checkpoints, and prove nothing changed.

For each run folder given (or each run under a runs folder): the run is evaluated afresh with its zips (in a
temporary copy, with the settings of its saved ``eval.json`` and ``robustness.json``); then
:func:`robustrl.experiments.compare.compact_run` writes ``best.pt``/``final.pt`` (one file when they are equal,
with the zips' Q-network weights bit for bit) and deletes the zips, and the run is evaluated again from the
compact files. The two evaluations must be equal (a RuntimeError otherwise). The saved caches keep their returns
(the weights they were computed from are unchanged) and gain the checksums of the new files.

The script also says whether this machine's returns equal the saved ones: they can differ in a few episodes
when the saved ones were computed with other CPU matrix kernels (the README explains why).

Then a final checkpoint stored in full is stored as the entries that differ from the run's best checkpoint
(:func:`robustrl.experiments.compare.compact_final`: about 95 KB instead of 270 KB for the reward table's
networks); it reads back to the same weights bit for bit, so the caches keep their numbers and name its new
checksum.

Usage: python scripts/compact_runs.py FOLDER [FOLDER ...]   (a run folder or a folder of run folders)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from robustrl.experiments.compare import compact_final, compact_run
from robustrl.experiments.curves import VIEWS, models_in_use, read_view, robustness_run, surface_run
from robustrl.experiments.io import atomic_write_json, read_json
from robustrl.experiments.records import complete_runs
from robustrl.experiments.run_files import checkpoint_files, model_checksums
from robustrl.experiments.training import evaluate_run

CACHES = ("eval.json", "robustness.json")


def run_folders(folders: list[Path]) -> list[Path]:
    """Every run folder named, or every complete run one level under a named folder."""
    runs: list[Path] = []
    for folder in folders:
        if (folder / "meta.json").is_file():
            runs.append(folder)
        else:
            runs += complete_runs(folder)
    return runs


def _saved_results(run_dir: Path) -> dict[str, Any]:
    """The evaluation returns and each cached robustness view of a run, as saved."""
    saved: dict[str, Any] = {}
    if (run_dir / "eval.json").is_file():
        saved["eval.json"] = read_json(run_dir / "eval.json")
    for view in VIEWS:
        result = read_view(run_dir, view)
        if result is not None:
            saved[view] = result
    return saved


def _evaluate(run_dir: Path, saved: dict[str, Any]) -> dict[str, Any]:
    """Recompute each saved evaluation and view of ``run_dir`` (writes its caches); returns the results."""
    results: dict[str, Any] = {}
    if "eval.json" in saved:
        request = saved["eval.json"]["request"]
        results["eval.json"] = evaluate_run(run_dir, tuple(saved["eval.json"]["returns"]), request["episodes"],
                                            request["seed"])["returns"]
    for view, compute in (("robustness", robustness_run), ("surfaces", surface_run)):
        if view in saved:  # the precision is this version's (it is not an argument)
            request = {key: value for key, value in saved[view]["request"].items() if key != "precision"}
            results[view] = compute(run_dir, **request)
    return results


def _saved_values(saved: dict[str, Any], name: str) -> Any:
    return saved[name]["returns"] if name == "eval.json" else saved[name]


def convert_and_verify(run_dir: Path) -> list[str]:
    """Compact one run and check it evaluates as its zips did; returns what this machine computes otherwise."""
    saved = _saved_results(run_dir)
    caches = {name: read_json(run_dir / name) for name in CACHES if (run_dir / name).is_file()}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / run_dir.name
        shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(*CACHES))
        from_zips = _evaluate(copy, saved)
    compact_run(run_dir)
    compact = _evaluate(run_dir, saved)
    if compact != from_zips:
        raise RuntimeError(f"{run_dir}: the compact checkpoints evaluate differently from the zips")
    for name, cache in caches.items():  # the saved numbers stay; they now name the compact files
        if name == "eval.json":
            cache["models"] = model_checksums(run_dir)
        else:
            cache["models"] = models_in_use(run_dir, cache)
        atomic_write_json(run_dir / name, cache)
    return [name for name, values in compact.items() if values != _saved_values(saved, name)]


def main(argv: list[str] | None = None) -> int:
    """Convert and verify every run of the folders given (a failed check raises)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    runs = run_folders(args.folders)
    other_kernels = converted = finals = 0
    for run_dir in runs:
        if any(path.suffix == ".zip" for path in checkpoint_files(run_dir).values()):
            differing = convert_and_verify(run_dir)
            converted += 1
            other_kernels += bool(differing)
            note = f"; this machine computes other returns for {', '.join(differing)}" if differing else ""
            print(f"{run_dir}: compact, evaluates exactly as its zips{note}", flush=True)
        if compact_final(run_dir):
            finals += 1
            print(f"{run_dir}: final checkpoint stored against the best one (the same weights, bit for bit)",
                  flush=True)
    print(f"{converted} run(s) converted from zips, {other_kernels} with saved returns this machine computes "
          f"otherwise; {finals} final checkpoint(s) stored against the best one")
    return 0

if __name__ == "__main__":
    sys.exit(main())
