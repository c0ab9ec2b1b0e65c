"""Sweeps: spec validation, expansion, failure isolation and the Ray backend (kill and Ctrl-C: test_interrupt)."""

from __future__ import annotations

import copy
import time

import pytest
import yaml

from robustrl.cli import main
from robustrl.experiments import sweep as sweep_module
from robustrl.experiments.sweep import check_ray_address, run_sweep
from robustrl.experiments.sweep_spec import format_setting, load_sweep_spec

TINY = {
    "name": "tiny",
    "agents": ["regular", "robust"],
    "seeds": 1,
    "grid": {"learning_rate": [0.001, 0.0023]},
    "overrides": {"n_timesteps": 300, "learning_starts": 100, "eval_freq": 150, "eval_episodes": 2},
    "evaluation": {"ids": ["robustrl/CartPole-v1", "robustrl/CartPoleHeavy-v1"], "episodes": 3},
}


def _spec(**changes):
    data = copy.deepcopy(TINY)
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seedz": 2}, "seedz: unknown key"),
        ({"grid": {"rho": []}}, "grid.rho: expected a non-empty list"),
        ({"grid": {"rho": 0.1}}, "grid.rho: expected a non-empty list, got 0.1"),
        ({"seeds": "two"}, "seeds: expected an integer >= 1, got 'two'"),
        ({"seeds": [0, -1]}, "seeds[1]: seed must be an integer >= 0, got seed=-1"),
        ({"seeds": [0, True]}, "seeds[1]: seed must be an integer >= 0, got seed=True"),
        ({"seeds": [0, 2**32]}, "seeds[1]: seed must be <= 2**32 - 1 = 4294967295, got seed=4294967296"),
        ({"seeds": 2**32 + 1}, "seeds: expected at most 2**32 seeds (0 .. 2**32 - 1), got 4294967297"),
        ({"seeds": 5_000_000_000}, "seeds: expected at most 2**32 seeds (0 .. 2**32 - 1), got 5000000000"),
        ({"agents": []}, "agents: expected a non-empty list"),
        ({"agents": ["regular", "robustt"]}, "unknown agent 'robustt'"),
        ({"grid": {"learning_rat": [0.1]}}, "unknown hyperparameter 'learning_rat'"),
        ({"grid": {"rho": [0.1]}}, "grid.rho: agent 'regular' has no robust target"),
        ({"agents": ["robust"], "grid": {"rho": [-0.1]}}, "rho must be"),
        ({"evaluation": {"ids": ["robustrl/CartPole-v9"]}}, "evaluation.ids[0]"),
        ({"evaluation": {"episodes": 0}}, "evaluation.episodes: expected an integer >= 1"),
        ({"evaluation": {"episode": 3}}, "evaluation.episode: unknown key"),
        (
            {"surfaces": {"grid": {"masspole": [0.1, -1]}}},
            "surfaces.grid.masspole: masspole must be finite and > 0, got masspole[1]=-1.0",
        ),
        ({"surfaces": {"grid": {"length": ["0.5"]}}}, "surfaces.grid.length: length[0] must be a real number"),
        ({"surfaces": {"grid": {"tau": [0.02, True]}}}, "surfaces.grid.tau: tau[1] must be a real number"),
        ({"surfaces": {"grid": {"masspole": [0.1]}, "pairs": [["masspole", "length"]]}}, "surfaces.pairs[0]"),
        ({"overrides": {"learning_rate": 0.1}}, "overrides.learning_rate: also in grid"),
        ({"agent_overrides": {"robust-mean": {"eta": 1.0}}}, "agent_overrides.robust-mean: unknown key"),
        ({"agent_overrides": {"robust": {"learning_rate": 0.1}}}, "agent_overrides.robust.learning_rate: also in grid"),
        ({"agent_overrides": {"regular": {"eta": 1.0}}}, "agent_overrides.regular.eta: agent 'regular' has no robust"),
        ({"agent_overrides": {"robust": {"eta": -1.0}}}, "eta must be"),
    ],
)
def test_invalid_spec_names_the_key_path(changes, message):
    with pytest.raises(ValueError) as err:
        load_sweep_spec(_spec(**changes), source="s.yml")
    assert message in str(err.value)
    assert str(err.value).startswith("s.yml: ")
    assert "\n" not in str(err.value)


def test_spec_expands_into_agent_setting_seed_runs(tmp_path):
    spec = load_sweep_spec(_spec(seeds=[3, 5], grid={"learning_rate": [0.001, 0.0023], "gamma": [0.9, 0.99]}))
    tasks = spec.tasks(tmp_path)
    assert len(tasks) == 2 * 4 * 2
    names = {t.spec.name for t in tasks}
    assert "CartPole-v1__robust-learning_rate0.001-gamma0.99__5" in names
    assert len(names) == len(tasks)
    assert format_setting({"rho": 0.1, "eta": float("inf")}) == "rho0.1-etainf"


def test_agent_overrides_pin_one_agents_runs_without_renaming_them(tmp_path):
    spec = load_sweep_spec(_spec(agent_overrides={"robust": {"eta": 0.5, "rho": 0.1}}))
    for task in spec.tasks(tmp_path):
        cfg = task.spec.resolve(task.config)
        assert "-eta" not in task.spec.name and "-rho" not in task.spec.name
        if task.spec.agent == "robust":
            assert (cfg.robust_kwargs["eta"], cfg.robust_kwargs["rho"]) == (0.5, 0.1)
            assert cfg.dqn_kwargs["learning_rate"] == task.setting["learning_rate"]
        else:
            assert cfg.robust_kwargs == {}


def test_a_sweep_on_another_task_reads_that_tasks_packaged_hyperparameters(tmp_path):
    spec = load_sweep_spec({"name": "p", "env_id": "robustrl/Pendulum-v1", "agents": ["robust"], "seeds": [10],
                            "grid": {"estimator": ["saa", "linear"]}})
    tasks = spec.tasks(tmp_path)
    configs = [task.spec.resolve(task.config) for task in tasks]
    assert [c.algo for c in configs] == ["RobustSAC", "RobustSAC"]  # sac.yml's, not dqn.yml's
    assert [c.robust_kwargs["estimator"] for c in configs] == ["saa", "linear"]
    assert spec.eval_ids[0] == "robustrl/Pendulum-v1" and len(spec.eval_ids) == 4


def test_cli_invalid_spec_exits_2_before_running(tmp_path, capsys):
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(_spec(grid={"rho": []})))
    assert main(["sweep", str(path), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "grid.rho" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


def test_failed_run_is_recorded_and_only_it_is_retried(tmp_path, monkeypatch):
    spec = load_sweep_spec(_spec(agents=["regular"], grid={"learning_rate": [0.001]}, seeds=2))
    real_train = sweep_module.train_run

    def flaky(run_spec, *args, **kwargs):
        if run_spec.seed == 1:
            raise RuntimeError("simulated crash")
        return real_train(run_spec, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "train_run", flaky)
    status = run_sweep(spec, tmp_path / "runs", tmp_path / "out", jobs=1)
    failed_name = "CartPole-v1__regular-learning_rate0.001__1"
    assert list(status["failed"]) == [failed_name]
    record = yaml.safe_load((tmp_path / "runs" / failed_name / "failed.json").read_text())
    assert "simulated crash" in record["traceback"] and "Traceback" in record["traceback"]
    assert (tmp_path / "runs" / "CartPole-v1__regular-learning_rate0.001__0" / "eval.json").is_file()
    assert "1 run(s) are missing or failed" in (tmp_path / "out" / "settings.md").read_text()

    monkeypatch.setattr(sweep_module, "train_run", real_train)
    status = run_sweep(spec, tmp_path / "runs", tmp_path / "out", jobs=1)
    assert status["ran"] == 1 and not status["failed"]
    assert not (tmp_path / "runs" / failed_name / "failed.json").exists()
    assert run_sweep(spec, tmp_path / "runs", tmp_path / "out", jobs=1)["ran"] == 0


def test_unreachable_ray_address_fails_fast():
    start = time.perf_counter()
    with pytest.raises(ValueError, match="cannot reach a Ray cluster at '127.0.0.1:9'"):
        check_ray_address("127.0.0.1:9", timeout=2)
    assert time.perf_counter() - start < 10
    with pytest.raises(ValueError, match="HOST:PORT"):
        check_ray_address("nonsense")


@pytest.mark.slow  # starts a real local Ray (10-30 s idle, minutes on a loaded machine): pytest -m slow
def test_ray_backend_gives_the_same_tables_as_local(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed here (pip install 'robustrl[ray]')")
    spec = load_sweep_spec(_spec(agents=["robust"], seeds=2, grid={"learning_rate": [0.0023]}))
    local = run_sweep(spec, tmp_path / "local" / "runs", tmp_path / "local" / "out", backend="local", jobs=2)
    ray = run_sweep(spec, tmp_path / "ray" / "runs", tmp_path / "ray" / "out", backend="ray", jobs=2)
    assert local["ran"] == ray["ran"] == 2 and not local["failed"] and not ray["failed"]
    for name in ("runs.csv", "settings.csv", "best.json"):
        assert (tmp_path / "local" / "out" / name).read_bytes() == (
            tmp_path / "ray" / "out" / name
        ).read_bytes()


def _packaged_sweeps() -> list[str]:
    """Every sweep file shipped in robustrl/configs/sweeps/ (found, not listed by hand)."""
    from importlib import resources

    folder = resources.files("robustrl").joinpath("configs/sweeps")
    return sorted(entry.name.removesuffix(".yml") for entry in folder.iterdir() if entry.name.endswith(".yml"))


@pytest.mark.parametrize("name", _packaged_sweeps())
def test_packaged_sweep_specs_load_and_name_their_runs(name, tmp_path):
    from importlib import resources

    path = resources.files("robustrl").joinpath(f"configs/sweeps/{name}.yml")
    spec = load_sweep_spec(str(path))
    tasks = spec.tasks(tmp_path)
    names = [task.spec.name for task in tasks]
    assert spec.name == name and tasks
    assert len(set(names)) == len(names), "two runs of one sweep share a folder"


def test_heatmap_and_table_label_string_grid_values(tmp_path):
    from robustrl.experiments.sweep_report import markdown_table, plot_setting_heatmap

    spec = load_sweep_spec(_spec(agents=["robust"], grid={"eta": [1.0, float("inf")], "ties": ["margin"]}))
    rows = [{"agent": "robust", "checkpoint": "best", "eta": eta, "ties": "margin", "seeds": 1,
             "robustrl/CartPole-v1": 500.0, "robustrl/CartPoleHeavy-v1": value, "perturbed_mean": value,
             "iqm_normalized": 1.0, "iqm_ci_low": 1.0, "iqm_ci_high": 1.0}
            for eta, value in ((1.0, 480.0), (float("inf"), 420.0))]
    path = plot_setting_heatmap(spec, rows, tmp_path / "heatmap.png")
    assert path.stat().st_size > 0
    text = markdown_table(spec, rows, "robustrl sweep s.yml", 0)
    assert "| robust | 1 | margin | best |" in text and "| robust | inf | margin | best |" in text


def test_sweep_modules_import_downwards_only():
    """The spec knows neither backend nor report, the report does not know the backends: no cycle."""
    import ast
    from pathlib import Path

    import robustrl.experiments as package

    def imported(module: str) -> set[str]:
        tree = ast.parse((Path(package.__file__).parent / f"{module}.py").read_text())
        return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}

    assert not imported("sweep_spec") & {"robustrl.experiments.sweep", "robustrl.experiments.sweep_report"}
    assert "robustrl.experiments.sweep" not in imported("sweep_report")
