"""Model-selection ties, robustness surfaces, and the report."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from robustrl.agents import AgentConfig, load_checkpoint, load_config
from robustrl.cli import main
from robustrl.experiments import RunSpec, evaluate_run, load_run_model, surface_run, train_run, write_report
from robustrl.experiments import evaluation as evaluation_module
from robustrl.experiments.io import read_json
from robustrl.experiments.surfaces import collect_surfaces, plot_surface_curves, plot_surface_pairs
from robustrl.experiments.tables import write_reward_tables

from .test_pipeline import TINY


@pytest.mark.parametrize(("ties", "row"), [("latest", -1), ("first", 0), ("margin", -1)])
def test_selection_ties_go_to_the_latest_or_first_checkpoint(tmp_path, monkeypatch, ties, row):
    monkeypatch.setattr(evaluation_module, "greedy_rollout",
                        lambda *args, **kwargs: (np.full(3, 42.0), np.full(3, 0.5)))
    run_dir = train_run(RunSpec("regular", 0, overrides={**TINY, "ties": ties}), tmp_path)
    meta = read_json(run_dir / "meta.json")
    evaluated = np.loadtxt(run_dir / "curve.csv", delimiter=",", skiprows=1, ndmin=2)[:, 0]
    assert len(evaluated) >= 3  # every 300 steps and once at the end
    assert meta["best_timesteps"] == int(evaluated[row])
    assert meta["config"]["selection_ties"] == ties


def test_margin_ties_pick_the_highest_margin_among_the_best_returns(tmp_path, monkeypatch):
    # Evaluations (return, margin): the 500s tie, and the margin picks among them; a higher margin
    # with a lower return never wins; equal (return, margin) pairs go to the later checkpoint.
    script = iter([(400.0, 0.99), (500.0, 0.3), (500.0, 0.8), (500.0, 0.8), (500.0, 0.6), (490.0, 0.95)])
    rollouts = []

    def scripted(*args, **kwargs):
        mean, margin = next(script)
        rollouts.append((mean, margin))
        return np.full(3, mean), np.full(3, margin)

    monkeypatch.setattr(evaluation_module, "greedy_rollout", scripted)
    run_dir = train_run(RunSpec("regular", 0, overrides={**TINY, "n_timesteps": 1500, "ties": "margin"}), tmp_path)
    meta = read_json(run_dir / "meta.json")
    evaluated = np.loadtxt(run_dir / "curve.csv", delimiter=",", skiprows=1, ndmin=2)[:, 0]
    assert len(rollouts) == len(evaluated) == 6  # every 300 steps and once at the end
    assert meta["best_timesteps"] == int(evaluated[3])
    assert (meta["best_selection_mean"], meta["best_selection_margin"]) == (500.0, 0.8)


def test_safety_margin_is_one_when_centred_and_zero_at_a_limit():
    from robustrl.envs import make_vector_env

    venv = make_vector_env("robustrl/CartPole-v1", 1)
    venv.theta_threshold_radians = 0.2
    obs = np.array([[0.0, 5.0, 0.0, -5.0], [1.2, 0, 0, 0], [0, 0, -0.1, 0], [-2.4, 0, 0.05, 0], [0.6, 0, 0.15, 0]])
    np.testing.assert_allclose(evaluation_module.safety_margin(venv, obs), [1.0, 0.5, 0.5, 0.0, 0.25])


def test_a_family_without_a_safety_margin_gives_zero_margins_so_ties_go_to_the_latest():
    class NoMargin:
        pass

    np.testing.assert_array_equal(evaluation_module.safety_margin(NoMargin(), np.ones((3, 2))), np.zeros(3))


def test_greedy_rollout_margin_averages_over_the_states_acted_in():
    from robustrl.envs import make_vector_env

    def push_right(obs):
        return np.ones(len(obs), dtype=np.int64)

    returns, margins = evaluation_module.greedy_rollout(push_right, "robustrl/CartPole-v1", 1, seed=7)
    venv = make_vector_env("robustrl/CartPole-v1", 1)
    obs, _ = venv.reset(seed=7)
    seen, done = [], False
    while not done:
        seen.append(obs[0])
        obs, _, terminated, truncated, _ = venv.step(np.ones(1, dtype=np.int64))
        done = bool(terminated[0] or truncated[0])
    expected = evaluation_module.safety_margin(venv, np.array(seen)).mean()
    assert returns[0] == len(seen) < 50  # pushing right only, the pole falls fast
    assert margins[0] == pytest.approx(expected)
    np.testing.assert_array_equal(returns, evaluation_module.greedy_returns(push_right, "robustrl/CartPole-v1", 1, 7))


def test_greedy_rollout_horizon_and_seeded_observation_noise():
    def balance(obs):  # push toward the side the pole leans: outlasts 500 steps
        return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)

    rollout = evaluation_module.greedy_rollout
    long, _ = rollout(balance, "robustrl/CartPole-v1", 4, seed=3, max_episode_steps=800)
    assert (long > 500).all() and long.max() == 800  # the 500-step limit is lifted, the new one holds
    noise = np.array([0.0, 0.0, 0.5, 0.0])  # a half-width far larger than the angle limit
    clean, _ = rollout(balance, "robustrl/CartPole-v1", 8, seed=3)
    noisy, noisy_margins = rollout(balance, "robustrl/CartPole-v1", 8, seed=3, observation_noise=noise, noise_seed=1)
    again, again_margins = rollout(balance, "robustrl/CartPole-v1", 8, seed=3, observation_noise=noise, noise_seed=1)
    assert noisy.mean() < clean.mean() == 500.0
    np.testing.assert_array_equal(noisy, again)
    np.testing.assert_array_equal(noisy_margins, again_margins)


def test_unknown_ties_rule_is_rejected():
    with pytest.raises(ValueError, match="ties='middle'"):
        AgentConfig.resolve(load_config(), "robustrl/CartPole-v1", "regular", {"ties": "middle"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    runs = root / "runs"
    for agent in ("regular", "robust"):
        for seed in (0, 1):
            run_dir = train_run(RunSpec(agent, seed, overrides=TINY), runs)
            evaluate_run(run_dir, episodes=2)
    return root


def test_surface_run_shapes_cache_and_errors(trained):
    run_dir = next((trained / "runs").iterdir())
    grid = {"masspole": [0.1, 5.0, 10.0], "length": [0.1, 0.5]}
    result = surface_run(run_dir, grid, [["masspole", "length"]], episodes=2)
    assert result["curves"]["masspole"]["values"] == [0.1, 5.0, 10.0]
    assert len(result["curves"]["length"]["mean_returns"]) == 2
    surface = np.array(result["pairs"]["masspole|length"]["mean_returns"])
    assert surface.shape == (3, 2) and ((surface >= 1) & (surface <= 500)).all()
    stamp = (run_dir / "robustness.json").stat().st_mtime_ns
    assert surface_run(run_dir, grid, [["masspole", "length"]], episodes=2) == result
    assert (run_dir / "robustness.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="masspole"):
        surface_run(run_dir, {"masspole": [0.1, -1.0]}, [], episodes=2)
    with pytest.raises(TypeError, match=r"length\[0\]='0.3'"):
        surface_run(run_dir, {"length": ["0.3", 0.5]}, [], episodes=2)
    with pytest.raises(ValueError, match=r"unknown CartPole parameter\(s\) \['mass'\]"):
        surface_run(run_dir, {"mass": [1.0]}, [], episodes=2)
    with pytest.raises(ValueError, match="two different parameters"):
        surface_run(run_dir, grid, [["masspole", "gravity"]], episodes=2)


def test_surfaces_cli_writes_both_plots(trained, tmp_path):
    argv = [
        "surfaces",
        "--runs",
        str(trained / "runs"),
        "--out",
        str(tmp_path),
        "--episodes",
        "1",
        "--parameters",
        "masspole",
        "length",
    ]
    assert main(argv) == 0
    assert (tmp_path / "surface_curves.png").stat().st_size > 10_000
    assert (tmp_path / "surface_pairs.png").stat().st_size > 10_000
    surfaces = collect_surfaces(sorted((trained / "runs").iterdir()))
    assert set(surfaces) == {"regular", "robust"} and len(surfaces["robust"]) == 2
    with pytest.raises(ValueError, match="no surfaces"):
        plot_surface_curves({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="no surfaces"):
        plot_surface_pairs({}, tmp_path / "x.png")


def test_report_gathers_tables_statistics_and_plots(trained, tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path)]) == 2
    assert "reward_table.md does not exist" in capsys.readouterr().err
    write_reward_tables(trained / "runs", trained, "robustrl reproduce --test")
    report = write_report(trained, command="robustrl report")
    first = report.read_text()
    assert "No robustness table yet" in first
    # Sections other scripts fill are left out, and out of the contents line, when their files are absent.
    for absent in ("## Model selection", "## Sweeps", "## Benchmarks", "## Supervised", "#sweeps", "## Decision"):
        assert absent not in first, absent
    assert "[robustness suite](#robustness-suite)" in first and first.startswith("# robustrl report: CartPole")
    (trained / "robustness_table.md").write_text("<!-- header -->\n\n| channel | level | regular |\n|---|---|---|\n"
                                                 "| pgd-linf | 0.05 | 123.4 [1.0, 2.0] |\n")
    (trained / "decision_table.md").write_text("_Generated by: x_\n\n| condition | winner (mean) |\n|---|---|\n"
                                               "| Heavy pole | robust (499.6) |\n")
    (trained / "decision_table_robust-td3.md").write_text("_Generated by: x_\n\n| condition | winner (mean) |\n"
                                                          "|---|---|\n| Heavy pole | td3 (321.0) |\n")
    (trained / "weakest_condition.md").write_text(
        "# The weakest condition\n\n## robust-sa against the best\n\n**robust-sa holds on 4 of 7 conditions**\n"
    )
    (trained / "selection").mkdir()
    (trained / "selection" / "selection-seeds0-1.md").write_text("# Study\n\n| rule | Heavy |\n|---|---|\n| margin | 321.5 |\n")
    text = write_report(trained, command="robustrl report").read_text()
    for needle in (
        "## Reward table",
        "## Model selection",
        "## Robustness suite",
        "| pgd-linf | 0.05 | 123.4 [1.0, 2.0] |",
        "### selection-seeds0-1",
        "| margin | 321.5 |",
        "## Statistics",
        "P(agent > regular)",
        "IQM",
        "### Decision table",
        "| Heavy pole | robust (499.6) |",
        "### Decision table: robust-td3",
        "| Heavy pole | td3 (321.0) |",
        "### Weakest condition",
        "#### robust-sa against the best",
        "**robust-sa holds on 4 of 7 conditions**",
        "[model selection](#model-selection)",
        "performance_profiles_best.png",
    ):
        assert needle in text, needle
    assert "## Sweeps" not in text and "#sweeps" not in text
    with open(trained / "statistics.csv") as handle:
        rows = list(csv.DictReader(handle))
    robust = [
        r for r in rows if r["agent"] == "robust" and r["checkpoint"] == "best" and r["ids"] == "all four ids"
    ]
    assert len(robust) == 1 and 0.0 <= float(robust[0]["p_improve"]) <= 1.0
    assert float(robust[0]["iqm_low"]) <= float(robust[0]["iqm"]) <= float(robust[0]["iqm_high"])
    assert (trained / "performance_profiles_best.png").stat().st_size > 10_000
    assert not list(trained.glob("*.tmp"))


def test_benchmark_sections_are_kept_apart(tmp_path):
    from robustrl.experiments.report import write_benchmark_section

    write_benchmark_section(tmp_path, "rl", "## RL\n\nratio 1.4")
    write_benchmark_section(tmp_path, "sweep", "## Sweep\n\nratio 0.55")
    write_benchmark_section(tmp_path, "rl", "## RL\n\nratio 1.3")  # rerunning one script keeps the other
    text = (tmp_path / "benchmarks.md").read_text()
    assert "ratio 1.3" in text and "ratio 0.55" in text and "ratio 1.4" not in text


def test_stats_cli_on_any_runs_folder(trained, tmp_path, capsys):
    assert main(["stats", "--runs", str(trained / "runs"), "--out", str(tmp_path), "--resamples", "200"]) == 0
    text = (tmp_path / "statistics.md").read_text()
    assert "| robust | 2 × 3 |" in text and "| regular | 2 × 4 |" in text
    assert main(["stats", "--runs", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_keep_checkpoints_saves_every_evaluated_model_and_trains_identically(tmp_path):
    spec = RunSpec("regular", 0, overrides=TINY)
    kept = train_run(spec, tmp_path / "kept", keep_checkpoints=True)
    plain = train_run(spec, tmp_path / "plain")
    evaluated = np.loadtxt(kept / "curve.csv", delimiter=",", skiprows=1, ndmin=2)[:, 0].astype(int)
    assert sorted(p.name for p in (kept / "checkpoints").iterdir()) == [f"{t:07d}.pt" for t in evaluated]
    assert not (plain / "checkpoints").exists()
    final_kept, final_plain = load_run_model(kept, "final"), load_run_model(plain, "final")
    last = load_checkpoint(kept / "checkpoints" / f"{evaluated[-1]:07d}.pt")
    for a, b, c in zip(final_kept.policy.parameters(), final_plain.policy.parameters(), last.policy.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_robustness_curves_and_surfaces_share_one_computation_and_one_cache(trained, monkeypatch):
    from robustrl.experiments.curves import read_view, robustness_run

    run_dir = sorted((trained / "runs").iterdir())[-1]
    calls = []
    real = evaluation_module.mean_returns_over
    monkeypatch.setattr(evaluation_module, "mean_returns_over",
                        lambda policy, parameter, *args: calls.append(parameter) or real(policy, parameter, *args))
    curves = robustness_run(run_dir, {"masspole": [0.2, 4.0]}, episodes=2)  # values no other test asks for
    surfaces = surface_run(run_dir, {"masspole": [0.2, 4.0], "length": [0.2, 0.4]}, [], episodes=2)
    assert calls == ["masspole", "length"]  # the surfaces reuse the robustness curve of the same request
    assert surfaces["curves"]["masspole"]["mean_returns"] == curves["mean_returns"]["masspole"]
    assert not (run_dir / "surfaces.json").exists()
    assert read_view(run_dir, "robustness") == curves and read_view(run_dir, "surfaces") == surfaces
    robustness_run(run_dir, {"masspole": [0.2, 4.0]}, episodes=2)
    assert calls == ["masspole", "length"]


def test_earlier_caches_convert_with_their_numbers_and_only_once(tmp_path):
    from robustrl.experiments.curves import convert_cache, read_view, robustness_run

    run_dir = tmp_path / "CartPole-v1__robust__0"
    run_dir.mkdir()
    (run_dir / "best.pt").write_bytes(b"the model the old caches were computed from")
    (run_dir / "meta.json").write_text(json.dumps({"checkpoints": {"best": "best.pt", "final": "best.pt"}}))
    request = {"grid": {"masspole": [0.1, 5.0], "length": [0.5]}, "episodes": 3, "seed": 7, "checkpoint": "best"}
    old = {"run": run_dir.name, "request": request, "mean_returns": {"masspole": [500.0, 123.45], "length": [499.5]}}
    (run_dir / "robustness.json").write_text(json.dumps(old))
    surface_request = {"grid": {"masspole": [0.1, 5.0], "gravity": [9.8]}, "pairs": [["masspole", "gravity"]],
                       "episodes": 3, "seed": 7, "checkpoint": "best"}
    surfaces = {"run": run_dir.name, "request": surface_request,
                "curves": {"masspole": {"values": [0.1, 5.0], "mean_returns": [500.0, 123.45]},
                           "gravity": {"values": [9.8], "mean_returns": [498.0]}},
                "pairs": {"masspole|gravity": {"x": [0.1, 5.0], "y": [9.8], "mean_returns": [[500.0], [99.0]]}}}
    (run_dir / "surfaces.json").write_text(json.dumps(surfaces))
    with pytest.raises(ValueError, match="earlier layout; convert it"):
        read_view(run_dir, "robustness")
    assert convert_cache(run_dir) and not (run_dir / "surfaces.json").exists()
    assert read_view(run_dir, "robustness") == old and read_view(run_dir, "surfaces") == surfaces
    cache = (run_dir / "robustness.json").read_bytes()
    assert not convert_cache(run_dir) and (run_dir / "robustness.json").read_bytes() == cache
    # The earlier caches were computed in float32; today's evaluation (float64) computes its curves anew.
    with pytest.raises(ValueError, match="best.pt is corrupted"):
        robustness_run(run_dir, **{k: request[k] for k in ("grid", "episodes", "seed")})
