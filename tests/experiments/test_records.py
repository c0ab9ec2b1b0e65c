"""Tables and statistics from run folders: malformed records are named, incomplete runs refused or listed."""

import json
from pathlib import Path

import pytest

from robustrl.cli import main
from robustrl.envs import ENV_IDS
from robustrl.experiments import reward_table, write_reward_tables
from robustrl.experiments.records import collect_evaluated_runs, read_evaluation, read_meta
from robustrl.experiments.run_files import model_checksums

#: What a run's meta.json says of its model files (one file when the final model is the best one).
FAKE_CHECKPOINTS = {"best": "best.pt", "final": "best.pt"}


def fake_evaluation(run, returns, request=None):
    """Write ``eval.json`` of a fake run, with the checksums of its model files as an evaluation saves them."""
    (run / "eval.json").write_text(json.dumps({"request": request or {}, "models": model_checksums(run),
                                               "returns": returns}))


def fake_run(runs, agent, seed, value=100.0, episodes=3, ids=ENV_IDS, meta=None, evaluation=None):
    run = runs / f"CartPole-v1__{agent}__{seed}"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(f"weights of {run.name}".encode())
    (run / "meta.json").write_text(json.dumps(meta if meta is not None else {
        "agent": agent, "tag": "", "seed": seed, "algo": "DQN", "checkpoints": FAKE_CHECKPOINTS}))
    if evaluation is not False:
        returns = {e: {"best": [value + seed] * episodes, "final": [value] * episodes} for e in ids}
        if evaluation is None:
            fake_evaluation(run, returns, {"episodes": episodes})
        else:
            (run / "eval.json").write_text(json.dumps(evaluation))
    (run / "curve.csv").write_text("timesteps,mean_return,std_return\n100,10.0,1.0\n200,20.0,2.0\n")
    return run


def complete_runs(runs):
    for seed in range(2):
        fake_run(runs, "regular", seed, 100.0)
        fake_run(runs, "robust", seed, 200.0)


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("robustrl: error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("name, content", [
    *(("meta.json", c) for c in ["{}", "[]", '{"agent": 3, "seed": 0}', '{"agent": "a", "seed": "0"}']),
    *(("eval.json", c) for c in ["{}", "[]", '{"returns": []}', '{"returns": {"robustrl/CartPole-v1": [1]}}',
                                 '{"returns": {"robustrl/CartPole-v1": {"best": ["a"]}}}']),
])
def test_a_run_file_of_the_wrong_shape_is_named(tmp_path, capsys, name, content):
    read, problem = {"meta.json": (read_meta, "meta.json is not a run record"),
                     "eval.json": (read_evaluation, "eval.json is not an evaluation")}[name]
    runs = tmp_path / "runs"
    complete_runs(runs)
    bad = fake_run(runs, "robust", 7)
    (bad / name).write_text(content)
    with pytest.raises(ValueError, match=problem):
        read(bad)
    for command in (["table", "--runs", str(runs), "--out", str(tmp_path / "out")],
                    ["plot", "--runs", str(runs), "--out", str(tmp_path / "out")],
                    ["stats", "--runs", str(runs), "--out", str(tmp_path / "out"), "--resamples", "10"]):
        if name == "eval.json" and command[0] == "plot":
            continue  # the training curves need no evaluation
        assert main(command) == 2
        assert str(bad / name) in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("problem, reason", [
    ("no eval.json", "no eval.json"),
    ("empty returns", "no best returns on robustrl/CartPole-v1"),
    ("one id", "no best returns on robustrl/CartPoleHeavy-v1"),
    ("no meta.json", "no meta.json"),
])
def test_an_incomplete_run_is_refused_unless_a_partial_table_is_asked_for(tmp_path, capsys, problem, reason):
    runs, out = tmp_path / "runs", tmp_path / "out"
    complete_runs(runs)
    if problem == "no eval.json":
        bad = fake_run(runs, "robust", 2, evaluation=False)
    elif problem == "empty returns":
        bad = fake_run(runs, "robust", 2, evaluation=False)
        fake_evaluation(bad, {e: {"best": [], "final": []} for e in ENV_IDS})
    elif problem == "one id":
        bad = fake_run(runs, "robust", 2, ids=ENV_IDS[:1])
    else:
        bad = fake_run(runs, "robust", 2)
        (bad / "meta.json").unlink()
    with pytest.raises(ValueError, match=bad.name):
        reward_table(runs)
    assert main(["table", "--runs", str(runs), "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert bad.name in err and reason in err and "--allow-partial" in err
    assert main(["stats", "--runs", str(runs), "--out", str(out), "--resamples", "10"]) == 2
    assert bad.name in one_line_error(capsys)
    assert not out.exists()

    assert main(["table", "--runs", str(runs), "--out", str(out), "--allow-partial"]) == 0
    for suffix in ("csv", "md", "tex"):
        header = [line for line in (out / f"reward_table.{suffix}").read_text().splitlines()
                  if "PARTIAL TABLE" in line]
        assert header and bad.name in header[0] and reason in header[0], suffix
    assert "Seeds per agent: 2;" in (out / "reward_table.csv").read_text()
    rows = reward_table(runs, allow_partial=True)
    assert {r.seeds for r in rows} == {2}
    assert main(["stats", "--runs", str(runs), "--out", str(out), "--resamples", "10", "--allow-partial"]) == 0
    assert bad.name in (out / "statistics.md").read_text()


def test_a_complete_table_has_no_partial_line(tmp_path):
    runs = tmp_path / "runs"
    complete_runs(runs)
    for path in write_reward_tables(runs, tmp_path, "test"):
        assert "PARTIAL" not in path.read_text()


def test_the_table_header_states_each_agents_training_time_from_its_runs(tmp_path):
    runs = tmp_path / "runs"
    for seed, seconds in enumerate([300.0, 100.0, 250.0]):
        fake_run(runs, "regular", seed, meta={"agent": "regular", "tag": "", "seed": seed, "algo": "DQN",
                                              "checkpoints": FAKE_CHECKPOINTS, "train_seconds": seconds})
    fake_run(runs, "robust", 0)  # saved no training time: not named
    text = write_reward_tables(runs, tmp_path, "test")[1].read_text()
    line = next(line for line in text.splitlines() if "Training time per run" in line)
    assert line.endswith("regular 250 s (100-300) -->") and "robust" not in line


@pytest.mark.parametrize("allow_partial", [False, True])
def test_a_table_never_mixes_episode_counts(tmp_path, capsys, allow_partial):
    runs, out = tmp_path / "runs", tmp_path / "out"
    complete_runs(runs)  # 3 episodes each
    odd = fake_run(runs, "robust", 5, episodes=7)
    with pytest.raises(ValueError, match="different numbers of episodes"):
        collect_evaluated_runs(runs, allow_partial=allow_partial)
    assert main(["table", "--runs", str(runs), "--out", str(out)] + ["--allow-partial"] * allow_partial) == 2
    err = one_line_error(capsys)
    assert f"7 episodes: {odd.name}" in err and "3 episodes: CartPole-v1__regular__0" in err
    assert main(["stats", "--runs", str(runs), "--out", str(out), "--resamples", "10"]) == 2
    assert odd.name in one_line_error(capsys)
    assert not out.exists()


def test_report_out_naming_a_folder_is_one_line(tmp_path, capsys):
    complete_runs(tmp_path / "runs")
    write_reward_tables(tmp_path / "runs", tmp_path, "test")
    (tmp_path / "REPORT.md").mkdir()
    assert main(["report", "--results", str(tmp_path)]) == 2
    assert str(tmp_path / "REPORT.md") in one_line_error(capsys)


def test_target_stats_keep_one_row_per_call_every_256_steps_and_average_faster_calls():
    from robustrl.experiments.training import target_stats_csv

    committed = Path(__file__).resolve().parents[2] / "results" / "runs" / "CartPole-v1__robust__0" / "target_stats.csv"
    text = committed.read_text()
    header, *lines = text.splitlines()
    history = [{"timesteps": int(t), **{c: float(v) for c, v in zip(header.split(",")[1:], rest)}}
               for t, *rest in (line.split(",") for line in lines)]
    assert target_stats_csv(history) == text  # CartPole trains every 256 steps: its committed file, unchanged
    fast = [{"timesteps": t, "q_spread": float(t), **({"target_gap": 1.0} if t % 8 else {})} for t in range(4, 521, 4)]
    rows = target_stats_csv(fast).splitlines()
    assert rows[0] == "timesteps,q_spread,target_gap" and len(rows) == 1 + 3  # windows ending at 256, 512, 768
    assert rows[1] == "256,130,1"  # mean of 4..256; the gap from the calls that logged one
    assert rows[2] == "512,386,1" and rows[3] == "520,518,1"
    sparse = [{"timesteps": 256, "q_spread": 1.0}, {"timesteps": 512, "target_gap": 2.0}]
    assert target_stats_csv(sparse) == "timesteps,q_spread,target_gap\n256,1,nan\n512,nan,2\n"
