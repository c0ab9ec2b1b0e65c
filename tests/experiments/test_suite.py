"""The robustness suite: the suite file's errors, each channel on a batched rollout, the cache per run, the
table and the command line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from robustrl.cli import main
from robustrl.experiments import RunSpec, load_run_model, train_run
from robustrl.experiments.evaluation import EVALUATION_SEED, greedy_policy, greedy_returns, greedy_rollout
from robustrl.experiments.suite import SUITE_CACHE, channel_returns, load_suite, parse_suite, suite_run
from robustrl.experiments.suite_table import collect_suite, suite_rows
from tests.experiments.test_uncertainty import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = """\
name: small
episodes: 2
attack: {steps: 2, restarts: 1}
channels:
  pgd-linf: [0.0, 0.5]
  random-action: [0.0, 1.0]
  noise-gaussian: [0.0, 0.5]
sets: {names: [moderate], episodes: 1}
"""
ATTACK = {"steps": 2, "restarts": 1, "precision": "float64"}
SCALE = [2.4, 3.0, 0.21, 3.0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two tiny runs (regular and robust) trained once; tests copy them before changing them."""
    folder = tmp_path_factory.mktemp("runs")
    train_run(RunSpec("regular", 0, overrides=TINY), folder)
    train_run(RunSpec("robust", 0, overrides={**TINY, "n_samples": 2}), folder)
    return folder


def _suite(tmp_path: Path, text: str = SMALL) -> Path:
    path = tmp_path / "suite.yml"
    path.write_text(text)
    return path


def test_the_packaged_suite_has_every_channel_and_the_issue_levels():
    suite = load_suite()
    assert set(suite.channels) == {"fgsm-linf", "pgd-linf", "pgd-l2", "noise-uniform", "noise-gaussian",
                                   "random-action"}
    assert suite.channels["pgd-linf"] == [0.01, 0.02, 0.05, 0.1, 0.2]
    assert suite.channels["random-action"] == [0.05, 0.1, 0.2, 0.3]
    assert suite.attack["steps"] >= 20 and suite.attack["restarts"] >= 2
    assert [s.name for s in suite.sets] == ["moderate", "wide"]


@pytest.mark.parametrize(("old", "new", "message"), [
    ("pgd-linf: [0.0, 0.5]", "pgd-linf: [0.1, -0.5]", r"channels.pgd-linf\[1\]: eps must be finite and >= 0, got eps=-0.5"),
    ("pgd-linf: [0.0, 0.5]", "pgd-linf: [.nan]", r"channels.pgd-linf\[0\]: eps must be finite"),
    ("random-action: [0.0, 1.0]", "random-action: [1.5]", r"random-action\[0\]: p must be a probability in \[0, 1\], got p=1.5"),
    ("noise-gaussian:", "noise-pink:", r"channels.noise-pink: unknown key \(valid: fgsm-linf"),
    ("steps: 2", "steps: 0", r"attack.steps: steps must be"),
    ("names: [moderate]", "names: [nowhere]", r"sets.names\[0\]: uncertainty set 'nowhere' is neither"),
])
def test_a_bad_suite_names_the_value(tmp_path, old, new, message):
    with pytest.raises(ValueError, match=message):
        load_suite(_suite(tmp_path, SMALL.replace(old, new)))


@pytest.mark.parametrize(("text", "message"), [
    ("masspole: {range: [0.2, 1.0], values: [0.1]}", r"parameters.masspole.values: \[0.1\] outside the range"),
    ("polemass: {range: [0.05, 1.0], values: [0.1]}", r"parameters.polemass: .*polemass"),
    ("length: {range: [0.75, 0.25], values: [0.5]}", r"parameters.length.range: empty range \[0.75, 0.25\]"),
])
def test_a_suite_naming_a_bad_uncertainty_set_is_refused(tmp_path, text, message):
    (tmp_path / "mine.yml").write_text(f"name: mine\nparameters:\n  {text}\n")
    suite = SMALL.replace("names: [moderate]", f"names: [{tmp_path / 'mine.yml'}]")
    with pytest.raises(ValueError, match=message):
        load_suite(_suite(tmp_path, suite))


def test_level_zero_is_the_clean_return_and_each_perturbation_reaches_the_agent(runs):
    model = load_run_model(runs / "CartPole-v1__regular__0", "best")
    clean = greedy_returns(greedy_policy(model), "robustrl/CartPole-v1", 2, EVALUATION_SEED)
    for channel, strong in (("pgd-linf", 0.5), ("noise-gaussian", 0.5), ("random-action", 1.0)):
        returns = channel_returns(model, channel, [0.0, strong], 4, EVALUATION_SEED, SCALE, ATTACK)
        assert returns.shape == (2, 4)
        # level 0 of the batched rollout: the clean rollout of the same initial states
        first_four = greedy_returns(greedy_policy(model), "robustrl/CartPole-v1", 8, EVALUATION_SEED)[:4]
        assert returns[0].tolist() == first_four.tolist(), channel
        assert returns[1].tolist() != returns[0].tolist() or channel == "noise-gaussian", channel
    assert clean.shape == (2,)


def test_the_attack_transform_sees_only_running_episodes():
    seen_rows = []

    def transform(observations, rows):
        seen_rows.append(rows.copy())
        return observations

    returns, _ = greedy_rollout(lambda obs: np.zeros(len(obs), dtype=np.int64), "robustrl/CartPole-v1", 6,
                                EVALUATION_SEED, observation_transform=transform, transform_running_only=True)
    plain, _ = greedy_rollout(lambda obs: np.zeros(len(obs), dtype=np.int64), "robustrl/CartPole-v1", 6,
                              EVALUATION_SEED)
    assert returns.tolist() == plain.tolist()
    assert len(seen_rows) == int(plain.max())
    assert [len(rows) for rows in seen_rows] == [int((plain > t).sum()) for t in range(len(seen_rows))]
    assert [rows.tolist() for rows in seen_rows[-1:]] == [np.flatnonzero(plain == plain.max()).tolist()]


def test_suite_run_caches_reuses_and_recomputes_when_a_model_changes(runs, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(runs / "CartPole-v1__regular__0", run)
    suite = load_suite(_suite(tmp_path))
    first = suite_run(run, suite, "best")
    assert set(first["channels"]) == set(suite.channels) and len(first["sets"]["moderate"]) == 81
    cache = json.loads((run / SUITE_CACHE).read_text())
    assert {e["channel"] for e in cache["entries"]} == set(suite.channels)

    import robustrl.experiments.suite as suite_module

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached channel")

    monkeypatch.setattr(suite_module, "channel_returns", fail)
    assert suite_run(run, suite, "best") == first
    final = json.loads((run / "meta.json").read_text())["checkpoints"]
    if final["final"] == final["best"]:
        assert suite_run(run, suite, "final")["channels"] == first["channels"]
    monkeypatch.undo()
    (run / final["best"]).write_bytes((run / final["best"]).read_bytes())  # same bytes: still cached
    monkeypatch.setattr(suite_module, "channel_returns", fail)
    assert suite_run(run, suite, "best") == first
    monkeypatch.undo()
    (run / final["best"]).write_bytes((runs / "CartPole-v1__robust__0" / "best.pt").read_bytes())
    calls = []
    original = suite_module.channel_returns
    monkeypatch.setattr(suite_module, "channel_returns", lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    suite_run(run, suite, "best")
    assert sorted(calls) == sorted(suite.channels)


def test_table_rows_have_the_issue_columns_and_differences(runs, tmp_path):
    suite = load_suite(_suite(tmp_path))
    results = {run: {c: suite_run(run, suite, c) for c in ("best", "final")}
               for run in sorted(runs.iterdir())}
    rows = suite_rows(collect_suite(results), suite)
    names = {(r.agent, r.checkpoint, r.channel, r.level) for r in rows}
    assert ("robust", "best", "pgd-linf", 0.5) in names and ("regular", "final", "set:moderate:worst", None) in names
    robust = {(r.channel, r.level): r for r in rows if r.agent == "robust" and r.checkpoint == "best"}
    regular = {(r.channel, r.level): r for r in rows if r.agent == "regular" and r.checkpoint == "best"}
    for key, row in robust.items():
        assert row.diff == pytest.approx(row.mean - regular[key].mean) and row.seeds == 1
    assert all(r.diff is None for r in regular.values())
    worst, mean = robust[("set:moderate:worst", None)], robust[("set:moderate:mean", None)]
    assert worst.mean <= robust[("set:moderate:cvar10", None)].mean <= mean.mean


def test_the_command_writes_the_tables_and_plots_and_a_rerun_computes_nothing(runs, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "runs"
    shutil.copytree(runs, folder)
    out = tmp_path / "out"
    suite = _suite(tmp_path)
    assert main(["robustness", "--runs", str(folder), "--suite", str(suite), "--out", str(out)]) == 0
    with open(out / "robustness_table.csv") as f:
        header = next(line for line in f if not line.startswith("#"))
    assert header.strip() == ("agent,checkpoint,channel,level,mean,std,ci_low,ci_high,seeds,episodes,"
                              "diff,diff_ci_low,diff_ci_high")
    with open(out / "robustness_table.csv") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    assert {r["channel"] for r in rows} >= {"pgd-linf", "random-action", "set:moderate:cvar10"}
    assert "Probability of improvement over regular" in (out / "robustness_table.md").read_text()
    assert (out / "robustness_suite.png").stat().st_size > 0 and (out / "robustness_sets.png").is_file()
    import robustrl.experiments.suite as suite_module

    monkeypatch.setattr(suite_module, "channel_returns", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    assert main(["robustness", "--runs", str(folder), "--suite", str(suite), "--out", str(out)]) == 0


def test_a_tasks_decision_pairs_add_one_decision_table_each(runs, tmp_path):
    from importlib.resources import files

    folder = tmp_path / "runs"
    shutil.copytree(runs, folder)
    task = tmp_path / "cartpole.yml"  # the packaged task, with regular compared against robust as a second family
    task.write_text(files("robustrl").joinpath("configs/tasks/cartpole.yml").read_text()
                    + "decision_pairs: {regular: robust, absent: regular}\n")
    out = tmp_path / "out"
    assert main(["robustness", "--task", str(task), "--runs", str(folder), "--suite", str(_suite(tmp_path)),
                 "--out", str(out)]) == 0
    main_table, second = (out / "decision_table.md").read_text(), (out / "decision_table_regular.md").read_text()
    assert "| P(robust > winner) | P(robust > regular) |" in main_table
    assert "| P(regular > winner) | P(regular > robust) |" in second
    assert not (out / "decision_table_absent.md").exists()  # an agent without runs has no table


@pytest.mark.parametrize(("old", "new", "message"), [
    ("pgd-linf: [0.0, 0.5]", "pgd-linf: [-0.1]", "eps=-0.1"),
    ("random-action: [0.0, 1.0]", "random-action: [2]", "p=2"),
    ("noise-gaussian:", "pgd-linf2:", "channels.pgd-linf2: unknown key"),
])
def test_the_command_refuses_a_bad_suite_in_one_line_and_writes_nothing(runs, tmp_path, capsys, old, new, message):
    folder = tmp_path / "runs"
    shutil.copytree(runs, folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    out = tmp_path / "out"
    code = main(["robustness", "--runs", str(folder), "--suite", str(_suite(tmp_path, SMALL.replace(old, new))),
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err and err.startswith("robustrl: error:")
    assert not out.exists() and sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_parse_suite_refuses_a_suite_without_channels_or_sets():
    with pytest.raises(ValueError, match="names no channel and no uncertainty set"):
        parse_suite({"name": "empty"}, "empty.yml")


def test_the_stronger_suite_doubles_steps_and_restarts_of_the_pgd_channels_only(tmp_path):
    from robustrl.experiments.attack_strength import convergence_rows, strengthened

    suite = load_suite(_suite(tmp_path))
    strong = strengthened(suite)
    assert list(strong.channels) == ["pgd-linf"] and strong.sets == []
    assert (strong.attack["steps"], strong.attack["restarts"]) == (4, 2)
    weak = {"a": {"best": {"channels": {"pgd-linf": np.array([[500.0, 100.0], [500.0, 300.0]])}}}}
    hard = {"a": {"best": {"channels": {"pgd-linf": np.array([[500.0, 90.0], [490.0, 290.0]])}}}}
    rows = convergence_rows(weak, hard, strong)
    assert [(r["level"], r["change"]) for r in rows] == [(0.0, -5.0), (0.5, -10.0)]
    assert rows[1]["drop"] == pytest.approx(10 / 200)
    with pytest.raises(ValueError, match="no PGD channel"):
        strengthened(parse_suite({"channels": {"random-action": [0.1]}}, "x.yml"))


def test_flip_rates_grow_with_eps_and_are_zero_without_a_budget(runs):
    from robustrl.experiments.attack_strength import flip_rates, visited_states

    model = load_run_model(runs / "CartPole-v1__regular__0", "best")
    import torch

    with torch.no_grad():  # a tiny run prefers one action everywhere: without the output bias the state decides
        model.q_net.q_net[-1].bias.zero_()
    states = visited_states(model, 3, 20)
    assert states.shape == (60, 4)
    rates = flip_rates(model, "pgd-linf", [0.0, 0.01, 0.1, 1.0, 5.0], states, SCALE, ATTACK)
    assert rates[0] == 0.0 and rates[-1] > 0.1 and (np.diff(rates) >= 0).all()
    with pytest.raises(ValueError, match="not an attack"):
        flip_rates(model, "random-action", [0.1], states, SCALE, ATTACK)


def test_action_margins_are_the_greedy_actions_lead_and_bound_what_flips(runs):
    import torch

    from robustrl.experiments.attack_strength import action_margins, visited_states

    model = load_run_model(runs / "CartPole-v1__regular__0", "best")
    states = visited_states(model, 2, 10)
    with torch.no_grad():
        q = model.q_net(torch.as_tensor(states, dtype=torch.float32)).double().numpy()
    margins = action_margins(model, states)
    assert margins.shape == (20,) and (margins >= 0).all()
    np.testing.assert_allclose(margins, np.abs(q[:, 0] - q[:, 1]), rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # raising one action's output bias by d moves every margin by d toward or away from it
        model.q_net.q_net[-1].bias[0] += 1000.0
    assert np.allclose(action_margins(model, states), 1000.0 + q[:, 0] - q[:, 1], atol=1e-3)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        action_margins(model, states[0])


def test_boundary_distance_is_exact_where_q_is_linear_and_does_not_scale_with_q(runs):
    import torch
    from torch import nn

    from robustrl.experiments.attack_strength import boundary_distances

    model = load_run_model(runs / "CartPole-v1__regular__0", "best")
    head = nn.Linear(4, 2).double()  # a linear Q: the boundary is the hyperplane w.s + b = 0 with w = w0 - w1
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 0.0, 0.0, 3.0]], dtype=torch.float64))
        head.bias.copy_(torch.tensor([0.1, -0.2], dtype=torch.float64))
    model.q_net.features_extractor = nn.Flatten()
    model.q_net.q_net = head
    states = np.random.default_rng(0).normal(size=(7, 4))
    scale = [2.0, 1.0, 0.5, 1.0]
    w, b = np.array([1.0, -2.0, 0.5, -3.0]), 0.3
    gap = np.abs(states @ w + b)
    np.testing.assert_allclose(boundary_distances(model, states, scale), gap / np.abs(w * scale).sum(), rtol=1e-12)
    np.testing.assert_allclose(boundary_distances(model, states, scale, "l2"), gap / np.linalg.norm(w * scale),
                               rtol=1e-12)
    with torch.no_grad():
        head.weight.mul_(10.0)
        head.bias.mul_(10.0)
    np.testing.assert_allclose(boundary_distances(model, states, scale), gap / np.abs(w * scale).sum(), rtol=1e-12)
    with pytest.raises(ValueError, match="norm must be"):
        boundary_distances(model, states, scale, "l1")
    with pytest.raises(ValueError, match="state_scale must be finite"):
        boundary_distances(model, states, [1.0, 0.0, 1.0, 1.0])


def test_the_decision_table_names_the_winner_and_says_where_robust_loses(tmp_path):
    from robustrl.experiments.decision import conditions, decision_rows, write_decision_table

    rng = np.random.default_rng(0)
    suite = {"regular": {"best": {"channels": {"pgd-linf": rng.uniform(0, 100, (5, 3))}, "sets": {}}},
             "robust": {"best": {"channels": {"pgd-linf": rng.uniform(300, 400, (5, 3))}, "sets": {}}},
             "other": {"best": {"channels": {"pgd-linf": rng.uniform(450, 500, (5, 3))}, "sets": {}}}}
    evaluations = {"regular": {"robustrl/CartPoleHeavy-v1": {"best": [400.0, 410.0, 420.0]},
                               "robustrl/CartPole-v1": {"best": [500.0, 500.0, 500.0]}},
                   "robust": {"robustrl/CartPoleHeavy-v1": {"best": [450.0, 460.0, 470.0]},
                              "robustrl/CartPole-v1": {"best": [500.0, 500.0, 500.0]}}}
    found = conditions(suite, evaluations)
    assert set(found) == {"Heavy pole", "pgd-linf"}  # the nominal id is not a test condition
    rows = {r["condition"]: r for r in decision_rows(found, resamples=200)}
    assert rows["pgd-linf"]["winner"] == "other" and rows["pgd-linf"]["vs_winner"][0] == 0.0
    assert rows["pgd-linf"]["vs_baseline"][0] == 1.0
    assert rows["Heavy pole"]["winner"] == "robust" and rows["Heavy pole"]["vs_winner"] is None
    text = write_decision_table(list(rows.values()), tmp_path / "d.md", "test").read_text()
    assert "On pgd-linf the robust agent loses to other" in text and "| Heavy pole | robust (460.0) |" in text
    # one seed: a bootstrap over seeds has nothing to resample, so no interval and no verdict
    single = {condition: {agent: matrix[:1] for agent, matrix in agents.items()}
              for condition, agents in found.items()}
    rows = decision_rows(single, resamples=200)
    text = write_decision_table(rows, tmp_path / "one.md", "test").read_text()
    assert "0.00 (one seed: no CI)" in text and "one seed: no interval, no verdict" in text and "loses" not in text


def test_the_table_header_describes_the_attacks_the_suite_runs(tmp_path):
    import numpy as np

    from robustrl.experiments.suite import load_suite
    from robustrl.experiments.suite_table import write_suite_tables

    def header(suite):
        grouped = {"regular": {"best": {"channels": {c: np.zeros((2, len(v))) for c, v in suite.channels.items()},
                                        "sets": {}}}}
        write_suite_tables(grouped, suite, tmp_path, "cmd")
        return (tmp_path / "robustness_table.md").read_text().splitlines()[1]

    q_network = header(load_suite("default", "cartpole"))
    actor_critic = header(load_suite("actor-critic", "pendulum"))
    assert "cross-entropy" in q_network and "MAD" not in q_network
    assert "MAD and critic" in actor_critic and "cross-entropy" not in actor_critic
