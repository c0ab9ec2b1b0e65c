"""Tasks as data: the packaged task files, their checks, and the experiments running on a task other than CartPole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robustrl.tasks import get_task, id_label, load_task, order_ids, parse_task, task_names, task_of

ROOT = Path(__file__).resolve().parent.parent
CARTPOLE = {
    "name": "t", "title": "T", "nominal_id": "robustrl/CartPole-v1",
    "ids": {"robustrl/CartPole-v1": "Original", "robustrl/CartPoleHeavy-v1": "Heavy"},
    "return_range": [0, 500], "state_scale": [2.4, 3.0, 0.21, 3.0], "hyperparameters": "dqn.yml",
    "parameters": {"masspole": {"curve": [0.1, 1.0]}},
}


def test_the_cartpole_task_holds_the_numbers_the_experiments_used_before():
    task = get_task()
    assert task.name == "cartpole" and task.nominal_id == "robustrl/CartPole-v1"
    assert [task.labels[i] for i in task.ids] == ["Original", "Heavy pole", "Short pole", "Strong gravity"]
    assert task.perturbed_ids == task.ids[1:]
    assert task.variants["robustrl/CartPoleHeavy-v1"] == {"masspole": 5.0}
    assert task.return_range == (0.0, 500.0) and task.state_scale == (2.4, 3.0, 0.21, 3.0)
    assert list(task.curve_grid) == ["masspole", "length", "gravity"]
    assert task.curve_grid["gravity"] == [5.0, 9.8, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 60.0]
    assert list(task.surface_grid) == ["masspole", "length", "gravity", "masscart", "force_mag", "tau"]
    assert task.surface_pairs == (("masspole", "length"), ("masspole", "gravity"), ("length", "gravity"))
    assert task.parameter_labels["length"] == "pole half-length (m)"
    assert task.max_episode_steps() == 500


def test_every_packaged_task_loads_and_every_id_belongs_to_one_task():
    owners: dict[str, str] = {}
    for name in task_names():
        if name in ("invertedpendulum", "hopper", "halfcheetah", "walker2d"):
            pytest.importorskip("mujoco", reason="MuJoCo is not installed (the robustrl[mujoco] extra)")
        if name == "lunarlander":
            pytest.importorskip("Box2D", reason="Box2D is not installed (the robustrl[box2d] extra)")
        task = load_task(name)
        assert task.name == name and task.ids[0] == task.nominal_id
        for env_id in task.ids:
            assert env_id not in owners, f"{env_id} in {owners.get(env_id)} and {name}"
            owners[env_id] = name
            assert task_of(env_id).name == name and id_label(env_id) == task.labels[env_id]


def test_labels_and_order_of_ids_come_from_the_tasks():
    assert id_label("robustrl/CartPoleShort-v1") == "Short pole"
    assert id_label("robustrl/MountainCar-v0") == "robustrl/MountainCar-v0"  # in no packaged task: the id itself
    assert order_ids(["x/y", "robustrl/CartPoleStrongGravity-v1", "robustrl/CartPole-v1"]) == [
        "robustrl/CartPole-v1", "robustrl/CartPoleStrongGravity-v1", "x/y"]


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": 1}, r"colour: unknown key"),
    ({"return_range": [5, 5]}, r"low < high"),
    ({"return_range": [0, "a"]}, r"return_range must be a list of 2 numbers"),
    ({"ids": {"robustrl/CartPoleHeavy-v1": "Heavy", "robustrl/CartPole-v1": "Original"}}, "must be nominal_id"),
    ({"ids": {"robustrl/CartPole-v1": "Original", "robustrl/Nowhere-v1": "x"}}, "'robustrl/Nowhere-v1' is not registered"),
    ({"ids": {"robustrl/CartPole-v1": "Original", "robustrl/Acrobot-v1": "x"}}, "not of the family"),
    ({"parameters": {"mass": {"curve": [1.0]}}}, r"parameters.mass: unknown key"),
    ({"parameters": {"masspole": {"curve": [0.1, -1.0]}}}, r"masspole must be finite and > 0, got masspole\[1\]=-1.0"),
    ({"parameters": {"masspole": {"grid": [0.1]}}}, r"parameters.masspole.grid: unknown key"),
    ({"surface_pairs": [["masspole", "length"]]}, "surface pair"),
    ({"decision_pairs": {"robust": "td3"}}, "decision_pairs maps a robust agent other than 'robust'"),
    ({"decision_pairs": {"robust-td3": "robust-td3"}}, "decision_pairs maps"),
    ({"decision_pairs": [["robust-td3", "td3"]]}, "decision_pairs maps"),
    ({"suite": "nowhere"}, r"suite names a packaged suite \(actor-critic, default.*got suite='nowhere'"),
    ({"suite": 3}, "suite names a packaged suite"),
])
def test_a_bad_task_file_is_one_error_naming_the_file_and_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        parse_task({**CARTPOLE, **change}, "mine.yml")


def test_an_unknown_task_names_the_packaged_ones():
    with pytest.raises(ValueError, match="task 'nope' is neither a file nor a packaged task.*cartpole"):
        get_task("nope")


def test_a_users_task_file_is_a_task(tmp_path):
    path = tmp_path / "mine.yml"
    path.write_text(json.dumps(CARTPOLE))
    task = get_task(str(path))
    assert task.ids == ("robustrl/CartPole-v1", "robustrl/CartPoleHeavy-v1") and task.source == str(path)


def test_a_family_without_a_vector_env_gets_one_sub_env_per_episode_with_its_own_physics():
    from robustrl.envs import make_vector_env

    venv = make_vector_env("robustrl/Acrobot-v1", 3, link_mass_2=np.array([1.0, 2.0, 4.0]))
    venv.reset(seed=5)
    masses = [env.unwrapped.get_params()["link_mass_2"] for env in venv.envs]
    assert masses == [1.0, 2.0, 4.0] and venv.envs[0].spec.max_episode_steps == 500
    with pytest.raises(ValueError, match=r"link_mass_2 must be finite and > 0, got link_mass_2\[1\]=-2.0"):
        make_vector_env("robustrl/Acrobot-v1", 3, link_mass_2=np.array([1.0, -2.0, 4.0]))


def test_ids_of_two_families_are_not_evaluated_as_one_rollout():
    from robustrl.experiments.evaluation import greedy_returns_by_id

    with pytest.raises(ValueError, match="one family"):
        greedy_returns_by_id(lambda obs: np.zeros(len(obs), dtype=np.int64),
                             ("robustrl/CartPole-v1", "robustrl/Acrobot-v1"), 2, 0)


@pytest.fixture(scope="module")
def acrobot_run(tmp_path_factory) -> Path:
    """A tiny regular run on Acrobot, trained once."""
    from robustrl.experiments import RunSpec, train_run

    tiny = {"n_timesteps": 200, "eval_freq": 100, "eval_episodes": 2, "batch_size": 32, "train_freq": 16}
    return train_run(RunSpec("regular", 0, "robustrl/Acrobot-v1", overrides=tiny), tmp_path_factory.mktemp("runs"))


def test_a_run_on_acrobot_goes_through_evaluation_curves_table_plots_and_stats(acrobot_run, tmp_path):
    """The whole chain on a second family: nothing CartPole-specific is left in it."""
    import shutil

    from robustrl.cli import main
    from robustrl.experiments import evaluate_run, robustness_run

    runs = tmp_path / "runs"
    run_dir = Path(shutil.copytree(acrobot_run, runs / acrobot_run.name))
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["env_id"] == "robustrl/Acrobot-v1" and meta["config"]["selection_ties"] == "latest"
    evaluation = evaluate_run(run_dir, episodes=2)
    assert list(evaluation["returns"]) == list(get_task("acrobot").ids)
    assert all(-500 <= r <= 0 for r in evaluation["returns"]["robustrl/Acrobot-v1"]["best"])
    grid = {"link_mass_2": [0.5, 1.0, 4.0]}
    curves = robustness_run(run_dir, grid=grid, episodes=2)
    assert len(curves["mean_returns"]["link_mass_2"]) == 3
    out = tmp_path / "out"
    assert main(["table", "--task", "acrobot", "--runs", str(runs), "--out", str(out)]) == 0
    assert "| Original |" in (out / "reward_table.md").read_text()
    assert main(["plot", "--task", "acrobot", "--runs", str(runs), "--out", str(out)]) == 0
    assert (out / "training_curves.png").is_file() and (out / "robustness_curves.png").is_file()
    assert main(["stats", "--task", "acrobot", "--runs", str(runs), "--out", str(out), "--resamples", "50"]) == 0
    assert "perturbed ids (Heavy upper link, Heavy lower link, Long upper link)" in (out / "statistics.md").read_text()


def test_runs_of_another_task_are_refused_naming_the_task(acrobot_run, tmp_path, capsys):
    from robustrl.cli import main

    assert main(["stats", "--runs", str(acrobot_run.parent), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "task 'acrobot', not 'cartpole': pass --task acrobot" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_unknown_task_on_the_command_line_is_exit_2_and_one_line(tmp_path, capsys):
    from robustrl.cli import main

    assert main(["table", "--task", "nope", "--runs", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "task 'nope'" in err and "cartpole" in err and len(err.splitlines()) == 1


def test_the_committed_cartpole_table_and_robustness_curves_rebuild_byte_for_byte_through_the_task(tmp_path):
    """What `robustrl reproduce` wrote before tasks existed, written again from the committed runs."""
    from robustrl.experiments import ReproduceConfig
    from robustrl.experiments.plots import plot_robustness_curves
    from robustrl.experiments.tables import write_reward_tables

    results = ROOT / "results"
    reproduce = json.loads((results / "reproduce.json").read_text())
    # reproduce's order, for the agents the committed table was made with
    summary = {agent: reproduce["agents"][agent] for agent in ReproduceConfig().resolved_agents
               if agent in reproduce["agents"]}
    written = write_reward_tables(results / "runs", tmp_path, reproduce["command"], summary)
    for path in written:
        assert path.read_bytes() == (results / path.name).read_bytes(), path.name
    plot_robustness_curves(results / "runs", tmp_path / "robustness_curves.png")
    assert (tmp_path / "robustness_curves.png").read_bytes() == (results / "robustness_curves.png").read_bytes()


def test_registered_options_that_are_not_physics_stay_as_registered_in_a_vector_env():
    pytest.importorskip("Box2D", reason="Box2D is not installed (the robustrl[box2d] extra)")
    from robustrl.envs import make_vector_env

    venv = make_vector_env("robustrl/LunarLanderContinuous-v3", 2, gravity=np.array([5.0, 11.0]))
    venv.reset(seed=0)
    assert [env.unwrapped.continuous for env in venv.envs] == [True, True]
    assert [env.unwrapped.get_params()["gravity"] for env in venv.envs] == [5.0, 11.0]
    with pytest.raises(ValueError, match="unknown LunarLander parameter"):
        make_vector_env("robustrl/LunarLanderContinuous-v3", 2, mass=1.0)


def test_a_domain_randomization_header_relates_the_box_to_what_the_task_is_judged_on():
    from robustrl.agents import AgentConfig, load_config
    from robustrl.experiments.tables import config_summary

    def summary(env_id: str, ranges: dict) -> str:
        config = load_config(packaged=task_of(env_id).hyperparameters)
        cfg = AgentConfig.resolve(config, env_id, "regular").to_dict()
        return config_summary({**cfg, "domain_randomization": ranges})

    # a task with perturbed ids: the box against their physics
    assert "contains none of the test physics (gravity 11.9" in summary(
        "robustrl/LunarLander-v3", {"gravity": [8.0, 11.5]})
    assert "contains the test physics of robustrl/LunarLanderStrongGravity-v3;" in summary(
        "robustrl/LunarLander-v3", {"gravity": [8.0, 12.0]})
    pytest.importorskip("mujoco", reason="MuJoCo is not installed (the robustrl[mujoco] extra)")
    # a task judged on its uncertainty sets only: the box against the sets
    assert "contains the uncertainty sets it is judged on: rrls-1d, rrls-2d" in summary(
        "robustrl/InvertedPendulum-v5", {"polemass": [1.0, 31.0], "cartmass": [1.0, 11.0]})
    assert "contains the uncertainty sets it is judged on: rrls-1d;" in summary(
        "robustrl/InvertedPendulum-v5", {"polemass": [1.0, 31.0]})
    assert "contains none of the task's uncertainty sets (rrls-1d, rrls-2d)" in summary(
        "robustrl/InvertedPendulum-v5", {"polemass": [1.0, 20.0]})
