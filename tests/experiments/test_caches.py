"""Caches beside a run are used only while they fit: malformed ones are recomputed, stale ones refused;
temporary files of writers at work survive cleaning; a cached evaluation loads no agent."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import gymnasium as gym
import pytest

from robustrl.agents import AgentConfig, checkpoint_bytes, load_config, make_agent
from robustrl.cli import main
from robustrl.envs import ENV_IDS, NOMINAL_ID
from robustrl.experiments import RunSpec, evaluate_run, evaluate_runs, robustness_run, surface_run, train_run
from robustrl.experiments import io as io_module
from robustrl.experiments.compare import compare_runs
from robustrl.experiments.curves import STALE, read_view, read_views
from robustrl.experiments.io import atomic_write_bytes, read_json, remove_temporaries
from robustrl.experiments.records import collect_evaluated_runs, complete_runs
from robustrl.experiments.surfaces import collect_surfaces
from robustrl.experiments.sweep import run_sweep
from robustrl.experiments.sweep_spec import SweepSpec
from robustrl.experiments.training import is_evaluated

from .test_checkpoints import TINY

GRID = {"length": [0.2, 1.0]}
IDS = ENV_IDS
NO_CONFIG = json.dumps({"agent": "robust", "seed": 0, "checkpoints": {"best": "best.pt", "final": "best.pt"}})


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    """Two tiny runs of one seed (copies of one training), evaluated with robustness curves and surfaces."""
    runs = tmp_path_factory.mktemp("cached") / "runs"
    first = train_run(RunSpec("robust", 0, overrides=TINY), runs)
    shutil.copytree(first, runs / "CartPole-v1__robust__1")
    for run in sorted(runs.iterdir()):
        evaluate_run(run, IDS, episodes=2)
        robustness_run(run, GRID, episodes=1)
        surface_run(run, GRID, [], episodes=1)
    return runs


@pytest.fixture
def runs(evaluated, tmp_path) -> Path:
    return Path(shutil.copytree(evaluated, tmp_path / "runs"))


def other_model_bytes() -> bytes:
    config = AgentConfig.resolve(load_config(), NOMINAL_ID, "robust", TINY)
    return checkpoint_bytes(make_agent(config, gym.make(NOMINAL_ID), seed=9, device="cpu"), config)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("robustrl: error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("content", ["[]", "{}", "no returns", "{not json"])
def test_a_malformed_eval_json_is_evaluated_again(runs, capsys, content):
    run = runs / "CartPole-v1__robust__0"
    if content == "no returns":  # this very request of these model files, but without returns
        content = json.dumps({**read_json(run / "eval.json"), "returns": {env_id: {} for env_id in IDS}})
    (run / "eval.json").write_text(content)
    assert not is_evaluated(run, IDS, episodes=2)
    assert main(["evaluate", "--run", str(run), "--env", *IDS, "--episodes", "2"]) == 0
    saved = read_json(run / "eval.json")
    assert len(saved["returns"][IDS[0]]["best"]) == 2 and is_evaluated(run, IDS, episodes=2)


def test_tables_and_plots_refuse_caches_of_replaced_model_files(runs, tmp_path, capsys):
    stale, good = runs / "CartPole-v1__robust__0", runs / "CartPole-v1__robust__1"
    (stale / "best.pt").write_bytes(other_model_bytes())
    out = tmp_path / "out"
    for command in (["table"], ["stats", "--resamples", "10"]):
        assert main([*command, "--runs", str(runs), "--out", str(out)]) == 2
        err = one_line_error(capsys)
        assert stale.name in err and good.name not in err and "model files changed since evaluation" in err
    assert not out.exists()
    assert main(["table", "--runs", str(runs), "--out", str(out), "--allow-partial"]) == 0
    header = (out / "reward_table.md").read_text()
    assert f"PARTIAL TABLE: 1 incomplete run(s) left out: {stale.name} (model files changed since evaluation" in header
    assert [r.run_dir for r in collect_evaluated_runs(runs, allow_partial=True)[0]] == [good]

    assert read_view(stale, "robustness") is None and read_view(good, "robustness") is not None
    assert read_views([stale, good], "surfaces")[1] == {stale.name: STALE}
    assert main(["plot", "--runs", str(runs), "--out", str(out / "plots")]) == 2
    err = one_line_error(capsys)
    assert f"{stale.name}: {STALE}" in err and "robustrl evaluate --robustness" in err
    assert not (out / "plots").exists()
    with pytest.raises(ValueError, match=f"{stale.name}: {STALE}"):
        collect_surfaces([stale, good])
    assert any("computed from other model files" in d for d in compare_runs(runs, runs)[stale.name])

    # Evaluated again, the run is back in the table and the plots.
    evaluate_run(stale, IDS, episodes=2)
    robustness_run(stale, GRID, episodes=1)
    assert main(["table", "--runs", str(runs), "--out", str(out)]) == 0
    assert main(["plot", "--runs", str(runs), "--out", str(out)]) == 0
    assert (out / "robustness_curves.png").is_file()


def test_a_plot_names_runs_without_robustness_curves(runs, tmp_path, capsys):
    (runs / "CartPole-v1__robust__1" / "robustness.json").unlink()
    assert main(["plot", "--runs", str(runs), "--out", str(tmp_path / "out")]) == 2
    assert "CartPole-v1__robust__1: not computed" in one_line_error(capsys)
    (runs / "CartPole-v1__robust__0" / "robustness.json").unlink()  # none has them: training curves only
    assert main(["plot", "--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    assert not (tmp_path / "out" / "robustness_curves.png").exists()


def test_a_cache_of_another_precision_drops_the_views_it_held(runs):
    run = runs / "CartPole-v1__robust__0"
    cache = read_json(run / "robustness.json")
    for entry in cache["curves"]:
        entry["precision"] = "float32"
    for view in cache["views"].values():
        view["precision"] = "float32"
    (run / "robustness.json").write_text(json.dumps(cache))
    robustness_run(run, GRID, episodes=1)
    cache = read_json(run / "robustness.json")
    assert set(cache["views"]) == {"robustness"}  # the surfaces view pointed to dropped entries
    assert read_view(run, "surfaces") is None


def test_one_helper_lists_complete_runs_and_names_a_missing_model_file(runs, tmp_path):
    assert complete_runs(runs) == sorted(runs.iterdir())
    (runs / "interrupted").mkdir()  # a training that has not written meta.json yet is not a run
    (runs / "interrupted" / "curve.csv").write_text("")
    assert complete_runs(runs) == sorted(p for p in runs.iterdir() if p.name != "interrupted")
    (runs / "CartPole-v1__robust__1" / "best.pt").unlink()  # weightless: its eval.json records the checksums
    assert runs / "CartPole-v1__robust__1" in complete_runs(runs)
    (runs / "CartPole-v1__robust__1" / "eval.json").unlink()  # no record of the missing file: damaged
    with pytest.raises(ValueError, match=str(runs / "CartPole-v1__robust__1" / "best.pt")):
        complete_runs(runs)
    with pytest.raises(ValueError, match="does not exist"):
        complete_runs(tmp_path / "nowhere")


class _HeldWriter:
    """An atomic write in another thread, stopped between writing its temporary file and renaming it."""

    def __init__(self, path: Path, monkeypatch) -> None:
        self.path, self.started, self.go, self.error = path, threading.Event(), threading.Event(), None
        replace = os.replace

        def held_replace(src, dst, *args, **kwargs):
            if Path(dst) == path:
                self.started.set()
                self.go.wait(30)
            return replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(io_module.os, "replace", held_replace)
        self.thread = threading.Thread(target=self._write)
        self.thread.start()
        assert self.started.wait(30)

    def _write(self) -> None:
        try:
            atomic_write_bytes(self.path, b"written by another process")
        except BaseException as err:  # noqa: BLE001 - reported by finish()
            self.error = err

    def finish(self) -> None:
        self.go.set()
        self.thread.join(30)
        assert self.error is None and self.path.read_bytes() == b"written by another process"


def test_cleaning_leaves_the_temporary_files_of_writers_at_work(runs, tmp_path, monkeypatch):
    run = runs / "CartPole-v1__robust__0"
    writer = _HeldWriter(run / "notes.txt", monkeypatch)
    leftover = run / ".eval.json.0badf00d.tmp"  # a killed writer's: nobody holds it
    leftover.write_bytes(b"half")
    try:
        evaluate_run(run, IDS, episodes=3)  # not cached: cleans the run folder first
        assert not leftover.exists()
        spec = SweepSpec(name="s", agents=["regular"], seeds=[0], grid={}, overrides={},
                         eval_ids=IDS, episodes=2)
        monkeypatch.setattr("robustrl.experiments.sweep.run_calls", lambda *args: None)
        run_sweep(spec, runs, tmp_path / "sweep")  # cleans the whole runs folder at its start
        assert len(list(run.glob(".notes.txt.*.tmp"))) == 1
    finally:
        writer.finish()
    assert remove_temporaries(runs) == []


def test_evaluate_runs_builds_no_agent_for_cached_evaluations(runs, monkeypatch):
    def no_agent(*args, **kwargs):
        raise AssertionError("an agent was built although every evaluation is cached")

    monkeypatch.setattr("robustrl.agents.checkpoint.make_agent", no_agent)
    evaluate_runs(sorted(runs.iterdir()), episodes=2, robustness_episodes=0, env_ids=IDS)


@pytest.mark.parametrize("name, content", [("meta.json", "{}"), ("meta.json", NO_CONFIG),
                                           ("eval.json", "[]"), ("eval.json", '{"returns": []}')])
def test_compare_names_a_malformed_record(runs, capsys, name, content):
    reference = runs / "CartPole-v1__robust__1"
    (reference / name).write_text(content)
    assert main(["compare", str(runs), str(runs)]) == 2
    assert str(reference / name) in one_line_error(capsys)
