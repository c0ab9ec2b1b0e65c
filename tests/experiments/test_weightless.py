"""Weightless runs (a sweep committed without its weights): read from records, compared through checksums,
rebuilt by the sweep and kept only if the rebuilt weights match the recorded checksums."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from robustrl.agents import encode_checkpoint, read_checkpoint
from robustrl.cli import main
from robustrl.envs import NOMINAL_ID
from robustrl.experiments.compare import cell_moves, compare_runs
from robustrl.experiments.io import atomic_write_json, file_sha256
from robustrl.experiments.records import find_runs
from robustrl.experiments.run_files import is_complete, is_trained, is_weightless, rebuild_command
from robustrl.experiments.sweep import run_sweep
from robustrl.experiments.sweep_spec import load_sweep_spec
from tests.experiments.test_records import complete_runs, one_line_error

SWEEP = {
    "name": "tiny",
    "agents": ["regular"],
    "seeds": 1,
    "grid": {"learning_rate": [0.0023]},
    "overrides": {"n_timesteps": 200, "learning_starts": 100, "eval_freq": 100, "eval_episodes": 1,
                  "policy_kwargs": {"net_arch": [16, 16]}},
    "evaluation": {"ids": ["robustrl/CartPole-v1", "robustrl/CartPoleHeavy-v1"], "episodes": 2},
}


def _drop_weights(runs: Path) -> None:
    for path in runs.glob("*/*.pt"):
        path.unlink()


def test_a_weightless_run_is_read_from_its_records_and_says_how_to_rebuild_its_weights(tmp_path, capsys):
    runs = tmp_path / "sweeps" / "tiny" / "runs"
    complete_runs(runs)
    assert main(["table", "--runs", str(runs), "--out", str(tmp_path / "with")]) == 0
    _drop_weights(runs)
    run = sorted(runs.iterdir())[0]
    assert is_weightless(run) and is_trained(run) and not is_complete(run)
    assert main(["table", "--runs", str(runs), "--out", str(tmp_path / "without")]) == 0
    table = (tmp_path / "with" / "reward_table.csv").read_text()
    assert (tmp_path / "without" / "reward_table.csv").read_text() == table
    atomic_write_json(runs.parent / "status.json", {"command": "robustrl sweep sweeps/tiny.yml --jobs 2"})
    assert main(["evaluate", "--runs", str(runs)]) == 2
    assert one_line_error(capsys).endswith(
        f"weights not committed; rebuild them with: robustrl sweep sweeps/tiny.yml --runs {runs}")
    # Without the checksums of the missing files, the run is damaged, not weightless.
    evaluation = json.loads((run / "eval.json").read_text())
    atomic_write_json(run / "eval.json", {**evaluation, "models": {}})
    assert not is_weightless(run) and "does not exist" in find_runs(runs)[1][run.name]


def test_a_weightless_table_run_names_the_training_that_rebuilds_it_in_place(tmp_path, capsys):
    runs = tmp_path / "acrobot" / "runs"
    complete_runs(runs)
    _drop_weights(runs)
    for run in runs.iterdir():  # as training writes it
        atomic_write_json(run / "meta.json", {**json.loads((run / "meta.json").read_text()), "env_id": NOMINAL_ID})
    run = runs / "CartPole-v1__robust__1"
    meta = json.loads((run / "meta.json").read_text())
    atomic_write_json(run / "meta.json", {**meta, "tag": "small", "command": (
        "robustrl reproduce --set rho=0.02 'eta=0.1' --jobs 2 --config my.yml --out results/x")})
    assert rebuild_command(run) == ("robustrl train --task cartpole --agent robust --seed 1 --tag small "
                                    f"--config my.yml --set rho=0.02 eta=0.1 --out {runs}")
    atomic_write_json(run / "meta.json", {**meta, "env_id": "robustrl/CartPoleHeavy-v1",
                                          "command": "robustrl reproduce --out 'x"})  # a command that cannot split
    assert rebuild_command(run) == ("robustrl train --task cartpole --env robustrl/CartPoleHeavy-v1 --agent robust "
                                    f"--seed 1 --out {runs}")
    assert main(["evaluate", "--runs", str(runs), "--episodes", "3"]) == 2
    assert "weights not committed; rebuild them with: robustrl train --task cartpole --agent" in one_line_error(capsys)


def test_cell_moves_say_how_far_each_table_cell_moved():
    old = {NOMINAL_ID: {"best": [500.0, 480.0], "final": [300.0]}, "robustrl/CartPoleHeavy-v1": {"best": [10.0]}}
    new = {NOMINAL_ID: {"best": [500.0, 470.0], "final": [300.0]}, "robustrl/CartPoleHeavy-v1": {"best": [12.5]}}
    assert cell_moves(new, old) == ("table cells moved: Original best 490.0 -> 485.0, "
                                    "Heavy pole best 10.0 -> 12.5 (1 other cell unchanged)")


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A one-run sweep, trained and evaluated once: (spec file, runs folder, output folder)."""
    root = tmp_path_factory.mktemp("sweep")
    spec = root / "tiny.yml"
    spec.write_text(json.dumps(SWEEP))
    status = run_sweep(load_sweep_spec(str(spec)), root / "runs", root / "out", jobs=1)
    assert status["ran"] == 1 and not status["failed"]
    return spec, root / "runs", root / "out"


def _copy(swept: tuple[Path, Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    _, runs, out = swept
    return Path(shutil.copytree(runs, tmp_path / "runs")), Path(shutil.copytree(out, tmp_path / "out"))


def test_compare_with_a_weightless_reference_uses_its_checksums_and_says_what_moved(swept, tmp_path, capsys):
    runs, _ = _copy(swept, tmp_path)
    reference = Path(shutil.copytree(runs, tmp_path / "reference"))
    _drop_weights(reference)
    run = next(p for p in runs.iterdir() if p.is_dir())
    assert compare_runs(runs, reference) == {run.name: []}
    state = read_checkpoint(run / "best.pt")
    next(iter(state["q_net"].values()))[0] += 1.0
    (run / "best.pt").write_bytes(encode_checkpoint(state))
    evaluation = json.loads((run / "eval.json").read_text())
    evaluation["returns"][NOMINAL_ID]["final"] = [v + 1.0 for v in evaluation["returns"][NOMINAL_ID]["final"]]
    models = {c: {**e, "sha256": file_sha256(run / e["file"])} for c, e in evaluation["models"].items()}
    atomic_write_json(run / "eval.json", {**evaluation, "models": models})
    assert main(["compare", str(runs), str(reference)]) == 1
    line, summary = capsys.readouterr().out.strip().splitlines()
    old = sum(json.loads((reference / run.name / "eval.json").read_text())["returns"][NOMINAL_ID]["final"]) / 2
    assert line.startswith(f"{run.name}: best weights differ (by checksum: the reference has no weights); ")
    assert f"Original final {old:.1f} -> {old + 1:.1f} (3 other cells unchanged)" in line
    assert line.endswith('see docs/guide/setup.rst, "Replaying a run on another CPU"')
    assert summary == f"compared 1 run(s) with {reference}: 0 identical, 1 differ"


def test_a_sweep_rebuilds_weightless_runs_and_keeps_weights_only_if_they_match(swept, tmp_path, capsys):
    spec_file, original, _ = swept
    runs, out = _copy(swept, tmp_path)
    run = next(p for p in runs.iterdir() if p.is_dir())
    tables = {p.name: p.read_bytes() for p in out.iterdir() if p.name in ("runs.csv", "settings.csv", "best.json")}
    _drop_weights(runs)
    spec = load_sweep_spec(str(spec_file))
    status = run_sweep(spec, runs, out, jobs=1)
    assert status["rebuilt"] == [run.name] and not status["failed"]
    assert "weights rebuilt; they match the checksums in" in capsys.readouterr().out
    assert (run / "best.pt").read_bytes() == (original / run.name / "best.pt").read_bytes()
    assert not (runs / ".rebuild").exists()
    assert {name: (out / name).read_bytes() for name in tables} == tables
    # Recorded checksums that a rebuild cannot give: the run stays weightless, its records and tables unchanged.
    _drop_weights(runs)
    evaluation = json.loads((run / "eval.json").read_text())
    evaluation["models"]["best"]["sha256"] = "0" * 64
    atomic_write_json(run / "eval.json", evaluation)
    status = run_sweep(spec, runs, out, jobs=1)
    assert "rebuilt weights do not match the checksums" in status["failed"][run.name]
    assert "best weights differ" in status["failed"][run.name] and "Replaying a run on another CPU" in status[
        "failed"][run.name]
    assert is_weightless(run) and (runs / ".rebuild" / run.name / "best.pt").is_file()
    assert {name: (out / name).read_bytes() for name in tables} == tables
