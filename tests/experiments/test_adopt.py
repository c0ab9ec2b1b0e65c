"""robustrl.experiments.adopt: only a run with the table's exact configuration is adopted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustrl.agents import AgentConfig, load_config
from robustrl.envs import NOMINAL_ID
from robustrl.experiments.adopt import adopt_run as adopt
from robustrl.experiments.training import RunSpec, jsonable


def _fake_run(root: Path, agent: str, seed: int, overrides: dict, tag: str) -> Path:
    cfg = AgentConfig.resolve(load_config(), NOMINAL_ID, agent, overrides)
    run = root / f"CartPole-v1__{agent}-{tag}__{seed}"
    run.mkdir(parents=True)
    (run / "best.zip").write_bytes(b"best")
    (run / "eval.json").write_text("{}")
    meta = {"agent": agent, "seed": seed, "env_id": NOMINAL_ID, "run": run.name, "tag": tag,
            "command": "robustrl sweep x.yml", "config": jsonable(cfg.to_dict())}
    (run / "meta.json").write_text(json.dumps(meta))
    return run


def test_adopts_a_run_whose_config_is_the_tables(tmp_path: Path) -> None:
    budget = load_config()[NOMINAL_ID]["n_timesteps"]
    source = _fake_run(tmp_path / "sweep", "robust", 3, {"n_timesteps": budget}, f"n_timesteps{budget}")
    target = adopt(source, tmp_path / "out", load_config())
    assert target.name == "CartPole-v1__robust__3"
    meta = json.loads((target / "meta.json").read_text())
    assert meta["run"] == target.name and meta["tag"] == ""
    assert meta["copied_from"]["run"] == source.name
    assert meta["config"] == json.loads((source / "meta.json").read_text())["config"]
    assert (target / "best.zip").read_bytes() == b"best"
    assert not list((tmp_path / "out").glob(".*tmp"))
    with pytest.raises(ValueError, match="exists"):
        adopt(source, tmp_path / "out", load_config())


def test_refuses_a_run_with_another_config_naming_the_key(tmp_path: Path) -> None:
    source = _fake_run(tmp_path / "sweep", "robust", 0, {"rho": 0.1}, "rho0.1")
    with pytest.raises(ValueError, match=r"rho: run has 0\.1, the table config 0\.05"):
        adopt(source, tmp_path / "out", load_config())
    assert not (tmp_path / "out").exists()


def test_adopts_under_another_agent_only_with_equal_settings(tmp_path: Path) -> None:
    hard = load_config()[NOMINAL_ID]["agents"]["robust-hard"]
    source = _fake_run(tmp_path / "sweep", "robust-hard", 2, {}, "x")
    # The packaged robust agent has another eta: refused, naming it, nothing written.
    with pytest.raises(ValueError, match="robust_kwargs.eta: run has"):
        adopt(source, tmp_path / "out", load_config(), agent="robust")
    assert not (tmp_path / "out").exists()
    # A config whose robust agent has robust-hard's settings: adopted as robust, labelled robust.
    config = load_config()
    config[NOMINAL_ID]["agents"]["robust"] = dict(hard)
    target = adopt(source, tmp_path / "out", config, agent="robust")
    meta = json.loads((target / "meta.json").read_text())
    assert target.name == "CartPole-v1__robust__2"
    assert meta["agent"] == meta["config"]["agent"] == "robust"
    assert meta["copied_from"]["agent"] == "robust-hard"
    spec = RunSpec("robust", 2)
    assert meta["config"] == jsonable(spec.resolve(config).to_dict())


def test_adoption_carries_the_runs_caches_renamed_to_the_table_run(tmp_path: Path) -> None:
    """A weightless run keeps its suite and uncertainty-set caches (keyed by the model's checksum) through
    adoption, and every record that names the run names the table run."""
    budget = load_config()[NOMINAL_ID]["n_timesteps"]
    source = _fake_run(tmp_path / "sweep", "robust", 1, {"n_timesteps": budget}, f"n_timesteps{budget}")
    records = {name: {"run": source.name, "entries": [{"returns": [1.5, 2.5]}]}
               for name in ("eval.json", "robustness.json", "suite.json", "uncertainty.json")}
    for name, record in records.items():
        (source / name).write_text(json.dumps(record))
    (source / "target_stats.csv").write_text("step,gap\n256,0.5\n")
    target = adopt(source, tmp_path / "out", load_config())
    for name, record in records.items():
        assert json.loads((target / name).read_text()) == {**record, "run": "CartPole-v1__robust__1"}, name
    assert (target / "target_stats.csv").read_text() == "step,gap\n256,0.5\n"
    # the sweep's own records are untouched
    assert json.loads((source / "suite.json").read_text())["run"] == source.name
