"""Convert runs saved with Stable-Baselines3 ``.zip`` files to compact checkpoints, and prove nothing changed.

For each run folder given (or each run under a runs folder): :func:`robustrl.experiments.compare.compact_run`
writes ``best.pt``/``final.pt`` (one file when they are equal) and deletes the zips; then the run is evaluated
again with the settings of its saved ``eval.json`` and ``robustness.json``, and the new returns must equal the
saved ones exactly. The caches are rewritten with the checksums of the new files. Exit code 1 if any run's
returns changed (its files are left converted, for inspection).

Usage: python scripts/compact_runs.py FOLDER [FOLDER ...]   (a run folder or a folder of run folders)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from robustrl.experiments.compare import compact_run
from robustrl.experiments.io import read_json
from robustrl.experiments.training import evaluate_run, robustness_run


def run_folders(folders: list[Path]) -> list[Path]:
    """Every run folder named, or found one level under a named folder."""
    runs: list[Path] = []
    for folder in folders:
        if (folder / "meta.json").is_file():
            runs.append(folder)
        else:
            runs += sorted(p.parent for p in folder.glob("*/meta.json"))
    return runs


def convert_and_verify(run_dir: Path) -> list[str]:
    """Compact one run and re-evaluate it; returns what differs from the saved evaluations."""
    saved = {name: read_json(run_dir / name) for name in ("eval.json", "robustness.json")
             if (run_dir / name).is_file()}
    compact_run(run_dir)
    differences = []
    if "eval.json" in saved:
        old = saved["eval.json"]
        request = old["request"]
        new = evaluate_run(run_dir, tuple(old["returns"]), request["episodes"], request["seed"])
        if new["returns"] != old["returns"]:
            differences.append("eval.json returns")
    if "robustness.json" in saved:
        old = saved["robustness.json"]
        request = old["request"]
        new = robustness_run(run_dir, request["grid"], request["episodes"], request["seed"], request["checkpoint"])
        if new["mean_returns"] != old["mean_returns"]:
            differences.append("robustness.json mean returns")
    return differences


def main(argv: list[str] | None = None) -> int:
    """Convert and verify every run of the folders given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    runs = run_folders(args.folders)
    failed = 0
    for run_dir in runs:
        differences = convert_and_verify(run_dir)
        failed += bool(differences)
        print(f"{run_dir}: " + ("identical returns" if not differences else "CHANGED: " + ", ".join(differences)),
              flush=True)
    print(f"{len(runs)} run(s) converted, {failed} with changed returns")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
