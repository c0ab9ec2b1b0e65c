"""Uncertainty sets: the loader's errors, the packaged sets, the batched evaluation and its cache per run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from robustrl.envs import NOMINAL_ID, NOMINAL_PARAMETERS, VARIANTS
from robustrl.experiments import (
    RunSpec,
    UncertaintySet,
    load_run_model,
    load_uncertainty_set,
    packaged_uncertainty_sets,
    train_run,
    uncertainty_returns,
    uncertainty_run,
)
from robustrl.experiments.evaluation import EVALUATION_SEED, greedy_policy, greedy_returns
from robustrl.experiments.run_files import checkpoint_files
from robustrl.experiments.uncertainty import UNCERTAINTY_CACHE
from tests.test_startup import HEAVY, run_python

TINY = {"n_timesteps": 400, "eval_freq": 200, "eval_episodes": 2, "learning_starts": 100,
        "train_freq": 64, "gradient_steps": 2, "batch_size": 16, "buffer_size": 1000,
        "policy_kwargs": {"net_arch": [16, 16]}}
TINY_SET = UncertaintySet("tiny", {"masspole": (0.1, 2.0), "length": (0.2, 0.5)},
                          {"masspole": [0.1, 2.0], "length": [0.2, 0.5]})
VALID = """\
name: mine
parameters:
  masspole: {range: [0.05, 1.0], values: [0.05, 0.1, 1.0]}
  gravity: {range: [5, 20], values: [5, 9.8, 20]}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny run trained once; tests copy it before changing it."""
    return train_run(RunSpec("regular", 0, overrides=TINY), tmp_path_factory.mktemp("runs"))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "set.yml"
    path.write_text(text)
    return path


def test_a_users_file_loads(tmp_path):
    uset = load_uncertainty_set(_write(tmp_path, VALID))
    assert uset.name == "mine" and uset.parameters == ["masspole", "gravity"]
    assert uset.ranges == {"masspole": (0.05, 1.0), "gravity": (5.0, 20.0)}
    assert uset.settings().shape == (9, 2) and uset.settings()[1].tolist() == [0.05, 9.8]


@pytest.mark.parametrize(("old", "new", "where", "problem"), [
    ("gravity:", "gravitas:", "parameters.gravitas", "unknown CartPole parameter"),
    ("[5, 20]", "[20, 5]", "parameters.gravity.range", "empty range"),
    ("[5, 9.8, 20]", "[]", "parameters.gravity.values", "non-empty list"),
    ("[5, 9.8, 20]", "[5, heavy, 20]", r"parameters.gravity.values\[1\]", "finite number, got 'heavy'"),
    ("[5, 9.8, 20]", "[5, true, 20]", r"parameters.gravity.values\[1\]", "finite number, got True"),
    ("[5, 20]", "[5]", "parameters.gravity.range", "a list of 2 numbers"),
    ("[5, 9.8, 20]", "[5, 9.8, 30]", "parameters.gravity.values", "outside the range"),
    ("[5, 9.8, 20]", "[5, 9.8, 9.8]", "parameters.gravity.values", "repeated value"),
    ("{range: [5, 20], values: [5, 9.8, 20]}", "{range: [5, 20]}", "parameters.gravity.values", "missing"),
    ("{range: [5, 20],", "{rnage: [5, 20],", "parameters.gravity.rnage", "unknown key"),
    ("name: mine", "name: ../up", "name", "folder-safe"),
])
def test_loader_errors_name_file_key_and_problem(tmp_path, old, new, where, problem):
    path = _write(tmp_path, VALID.replace(old, new))
    with pytest.raises(ValueError, match=rf"^{path}: {where}: .*{problem}"):
        load_uncertainty_set(path)


def test_a_range_may_leave_out_the_nominal_value_as_rrls_hopper_sets_do(tmp_path):
    uset = load_uncertainty_set(_write(tmp_path, VALID.replace("[5, 20]", "[10, 20]").replace("[5, 9.8, 20]",
                                                                                             "[10, 15, 20]")))
    assert uset.ranges["gravity"] == (10.0, 20.0) and not any(row[1] == 9.8 for row in uset.settings())


@pytest.mark.parametrize(("task", "name", "settings"), [
    ("invertedpendulum", "rrls-2d", 100), ("hopper", "rrls-3d", 1000), ("halfcheetah", "rrls-3d", 1000),
    ("walker2d", "rrls-1d", 10)])
def test_rrls_sets_load_for_their_task_with_ten_points_per_parameter_bounds_included(task, name, settings):
    uset = load_uncertainty_set(name, task)
    assert len(uset.settings()) == settings
    for parameter, (low, high) in uset.ranges.items():
        assert len(uset.values[parameter]) == 10
        assert uset.values[parameter][0] == low and uset.values[parameter][-1] == high


def test_a_missing_set_names_the_packaged_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.yml.*moderate, wide"):
        load_uncertainty_set(tmp_path / "nowhere.yml")


def test_packaged_sets_contain_nominal_and_one_reaches_the_tables_perturbations():
    assert packaged_uncertainty_sets() == ["moderate", "wide"]
    for name in packaged_uncertainty_sets():
        uset = load_uncertainty_set(name)
        assert uset.name == name
        assert {"masspole", "length", "gravity", "force_mag"} <= set(uset.parameters)
        for parameter, (low, high) in uset.ranges.items():
            assert len(uset.values[parameter]) >= 3 and low <= NOMINAL_PARAMETERS[parameter] <= high
        nominal = [NOMINAL_PARAMETERS[p] for p in uset.parameters]
        assert any(np.array_equal(setting, nominal) for setting in uset.settings())
    perturbed = {p: v for physics in VARIANTS.values() for p, v in physics.items()}
    wide, moderate = load_uncertainty_set("wide"), load_uncertainty_set("moderate")
    assert all(v in wide.values[p] for p, v in perturbed.items())
    assert not any(low <= perturbed[p] <= high for p, (low, high) in moderate.ranges.items() if p in perturbed)


def test_batched_evaluation_equals_greedy_returns_setting_by_setting(trained):
    policy = greedy_policy(load_run_model(trained, "best"))
    episodes, seed = 2, 11
    batched = uncertainty_returns(policy, TINY_SET, episodes, seed)
    total = len(TINY_SET.settings()) * episodes
    for k, (masspole, length) in enumerate(TINY_SET.settings()):
        # the same sub-environments (same initial states), all with setting k's physics
        returns = greedy_returns(policy, NOMINAL_ID, total, seed, masspole=np.full(total, masspole),
                                 length=np.full(total, length))
        assert batched[k] == returns[k * episodes:(k + 1) * episodes].mean()
    assert len(set(batched.tolist())) > 1  # the settings do differ


def test_cache_is_reused_and_recomputed_when_the_model_changes(trained, tmp_path):
    run = Path(shutil.copytree(trained, tmp_path / trained.name))
    first = uncertainty_run(run, TINY_SET, episodes=1)
    assert first["seed"] == EVALUATION_SEED and first["precision"] == "float64" and len(first["mean_returns"]) == 4
    cache_path = run / UNCERTAINTY_CACHE
    cache = json.loads(cache_path.read_text())
    cache["entries"][0]["mean_returns"] = [-1.0] * 4  # a marker: reused entries are read, not recomputed
    cache_path.write_text(json.dumps(cache))
    assert uncertainty_run(run, TINY_SET, episodes=1)["mean_returns"] == [-1.0] * 4
    uncertainty_run(run, TINY_SET, episodes=2)  # another key: a second entry, the first kept
    assert len(json.loads(cache_path.read_text())["entries"]) == 2
    files = checkpoint_files(run)
    if files["final"] != files["best"]:
        shutil.copyfile(files["final"], files["best"])
    else:  # one file for both: replace it by another run's model
        other = train_run(RunSpec("regular", 1, overrides=TINY), tmp_path / "other")
        shutil.copyfile(checkpoint_files(other)["best"], files["best"])
    again = uncertainty_run(run, TINY_SET, episodes=1)
    assert again["mean_returns"] != [-1.0] * 4
    assert len(json.loads(cache_path.read_text())["entries"]) == 1  # the old model's entries were dropped


def test_loading_sets_and_their_statistics_import_neither_torch_nor_sb3():
    seen = run_python(
        "import json, sys\n"
        "import numpy as np\n"
        "from robustrl.experiments import load_uncertainty_set, set_statistics\n"
        "uset = load_uncertainty_set('wide')\n"
        "set_statistics(np.ones((3, len(uset.settings()))), resamples=10)\n"
        f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    )
    assert seen == {"torch": False, "stable_baselines3": False}


def test_any_predict_agent_gets_rrls_mean_worst_case_and_cvar_over_the_full_grid():
    pytest.importorskip("mujoco", reason="MuJoCo is not installed (the robustrl[mujoco] extra)")
    from robustrl.experiments.uncertainty import evaluate_set

    class PushRight:
        """A fixed agent with SB3's predict signature: full force to the right."""

        def predict(self, observations, deterministic=True):
            return np.full((len(observations), 1), 3.0, dtype=np.float32), None

    result = evaluate_set(PushRight(), "rrls-2d", "invertedpendulum", episodes=1, seed=0)
    settings = np.array(result["settings"])
    assert settings.shape == (100, 2) and result["parameters"] == ["polemass", "cartmass"]
    assert settings[:, 0].min() == 1.0 and settings[:, 0].max() == 31.0  # RRLS's bounds, both included
    means = np.array(result["mean_returns"])
    assert result["worst_case"] == means.min() <= result["cvar"] <= result["mean"] == pytest.approx(means.mean())
    assert result["cvar"] == pytest.approx(np.sort(means)[:10].mean())
    assert len(set(means.tolist())) > 1  # the physics differ across the grid
    with pytest.raises(TypeError, match="predict"):
        evaluate_set(object(), "rrls-2d", "invertedpendulum")
