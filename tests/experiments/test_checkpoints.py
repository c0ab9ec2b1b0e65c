"""Compact checkpoints, checksums beside cached evaluations, leftover temporaries, file modes, run comparison."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import robustrl
from robustrl.agents import AgentConfig, checkpoint_bytes, load_agent, load_checkpoint, load_config, make_agent
from robustrl.cli import main
from robustrl.envs import ENV_IDS, NOMINAL_ID
from robustrl.experiments import RunSpec, evaluate_run, evaluate_runs, load_run_model, robustness_run, train_run
from robustrl.experiments.compare import compact_run, compare_runs
from robustrl.experiments.evaluation import greedy_policy, greedy_returns_by_id
from robustrl.experiments.io import (
    atomic_write_bytes,
    atomic_write_json,
    json_text,
    model_bytes,
    remove_temporaries,
)
from robustrl.experiments.training import checkpoint_files, is_complete, save_final_checkpoint

TINY = {"n_timesteps": 400, "eval_freq": 200, "eval_episodes": 2, "learning_starts": 100,
        "train_freq": 64, "gradient_steps": 2, "batch_size": 16, "buffer_size": 1000,
        "policy_kwargs": {"net_arch": [16, 16]}}
GRID = {"length": [0.2, 1.0]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny run trained once; tests copy it before changing it."""
    return train_run(RunSpec("robust", 0, overrides=TINY), tmp_path_factory.mktemp("runs"))


def _copy(run_dir: Path, root: Path) -> Path:
    return Path(shutil.copytree(run_dir, root / run_dir.name))


def test_checkpoint_of_the_table_network_is_small_and_loads_weights_only():
    cfg = AgentConfig.resolve(load_config(), NOMINAL_ID, "robust")
    assert cfg.dqn_kwargs["policy_kwargs"]["net_arch"] == [256, 256]
    model = make_agent(cfg, gym.make(NOMINAL_ID), seed=0, device="cpu")
    data = checkpoint_bytes(model, cfg)
    assert len(data) <= 300_000 < len(model_bytes(model))
    state = torch.load(io.BytesIO(data), weights_only=True)
    assert state["algo"] == "RobustDQN" and state["config"]["robust_kwargs"]["rho"] == cfg.robust_kwargs["rho"]
    assert all(t.dtype == torch.float32 for t in state["q_net"].values())
    assert checkpoint_bytes(model, cfg) == data  # equal models, equal files


def test_compact_checkpoint_evaluates_exactly_as_the_full_model(tmp_path):
    cfg = AgentConfig.resolve(load_config(), NOMINAL_ID, "robust", TINY)
    model = make_agent(cfg, gym.make(NOMINAL_ID), seed=3, device="cpu")
    model.learn(300)
    atomic_write_bytes(tmp_path / "full.zip", model_bytes(model))
    atomic_write_bytes(tmp_path / "compact.pt", checkpoint_bytes(model, cfg))
    full, compact = load_agent(tmp_path / "full.zip", "RobustDQN"), load_checkpoint(tmp_path / "compact.pt")
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    np.testing.assert_array_equal(greedy_policy(full)(obs), greedy_policy(compact)(obs))
    a = greedy_returns_by_id(greedy_policy(full), ENV_IDS, 3, seed=5)
    b = greedy_returns_by_id(greedy_policy(compact), ENV_IDS, 3, seed=5)
    assert all(np.array_equal(a[e], b[e]) for e in ENV_IDS)


@pytest.mark.parametrize("damage", [lambda d: d[: len(d) // 2], lambda d: b"not a checkpoint"])
def test_a_damaged_model_file_is_named(tmp_path, damage):
    cfg = AgentConfig.resolve(load_config(), NOMINAL_ID, "regular", TINY)
    model = make_agent(cfg, gym.make(NOMINAL_ID), seed=0, device="cpu")
    for name, data, load in (("m.pt", checkpoint_bytes(model, cfg), load_checkpoint),
                             ("m.zip", model_bytes(model), lambda p: load_agent(p, "DQN"))):
        (tmp_path / name).write_bytes(damage(data))
        with pytest.raises(ValueError, match=str(tmp_path / name)) as err:
            load(tmp_path / name)
        assert "BytesIO" not in str(err.value)


def test_train_run_writes_compact_files_and_final_equal_to_best_once(trained, tmp_path):
    files = checkpoint_files(trained)
    assert {p.suffix for p in files.values()} == {".pt"} and not list(trained.glob("*.zip"))
    best = load_run_model(trained, "best")
    assert torch.equal(next(best.q_net.parameters()), next(load_checkpoint(files["best"]).q_net.parameters()))
    # A final model equal to the best one is stored once and still loads as "final".
    run = _copy(trained, tmp_path)
    assert save_final_checkpoint((run / "best.pt").read_bytes(), run) == {"best": "best.pt", "final": "best.pt"}
    assert not (run / "final.pt").exists()
    meta = json.loads((run / "meta.json").read_text())
    atomic_write_json(run / "meta.json", {**meta, "checkpoints": {"best": "best.pt", "final": "best.pt"}})
    assert is_complete(run)
    final = load_run_model(run, "final")
    assert all(torch.equal(a, b) for a, b in zip(final.q_net.parameters(), best.q_net.parameters()))


def test_missing_weights_make_a_run_incomplete_and_it_is_retrained(trained, tmp_path):
    run = _copy(trained, tmp_path)
    assert is_complete(run)
    (run / "best.pt").unlink()
    assert not is_complete(run)
    assert train_run(RunSpec("robust", 0, overrides=TINY), tmp_path) == run
    assert is_complete(run) and (run / "best.pt").read_bytes() == (trained / "best.pt").read_bytes()


def test_cached_evaluation_is_used_only_for_the_model_files_it_was_made_from(trained, tmp_path):
    run = _copy(trained, tmp_path)
    first = evaluate_run(run, ENV_IDS[:1], episodes=2)
    robust = robustness_run(run, GRID, episodes=2)
    assert first["models"]["best"]["file"] == "best.pt" and len(first["models"]["best"]["sha256"]) == 64
    assert json.loads((run / "robustness.json").read_text())["models"] == {"best": first["models"]["best"]}
    stamp = (run / "eval.json").stat().st_mtime_ns
    assert evaluate_run(run, ENV_IDS[:1], episodes=2) == first and (run / "eval.json").stat().st_mtime_ns == stamp
    assert robustness_run(run, GRID, episodes=2) == robust
    # Another valid model in place of best.pt: evaluated again, not answered from the cache.
    other = make_agent(AgentConfig.resolve(load_config(), NOMINAL_ID, "robust", TINY), gym.make(NOMINAL_ID), seed=9,
                       device="cpu")
    (run / "best.pt").write_bytes(checkpoint_bytes(other, AgentConfig.resolve(load_config(), NOMINAL_ID, "robust",
                                                                               TINY)))
    again = evaluate_run(run, ENV_IDS[:1], episodes=2)
    assert again["models"]["best"] != first["models"]["best"]
    assert robustness_run(run, GRID, episodes=2)["mean_returns"].keys() == robust["mean_returns"].keys()
    cached = json.loads((run / "robustness.json").read_text())
    assert cached["models"]["best"] == again["models"]["best"]  # the curves were computed again
    assert len(cached["curves"]) == len(GRID)
    # A truncated best.pt is not hidden by the cache: the error names the file.
    (run / "best.pt").write_bytes((run / "best.pt").read_bytes()[:1000])
    for call in (lambda: evaluate_run(run, ENV_IDS[:1], episodes=2), lambda: robustness_run(run, GRID, episodes=2)):
        with pytest.raises(ValueError, match=str(run / "best.pt")):
            call()


def test_evaluate_runs_checks_every_model_before_writing_any_evaluation(trained, tmp_path, capsys):
    good, bad = _copy(trained, tmp_path / "a"), _copy(trained, tmp_path / "b")
    evaluate_run(good, episodes=2)
    before = (good / "eval.json").read_bytes()
    (bad / "best.pt").write_bytes((bad / "best.pt").read_bytes()[:1000])
    with pytest.raises(ValueError, match=str(bad / "best.pt")):
        evaluate_runs([good, bad], episodes=3, robustness_episodes=0)
    assert (good / "eval.json").read_bytes() == before
    assert main(["evaluate", "--run", str(good), str(bad), "--episodes", "3"]) == 2
    assert str(bad / "best.pt") in capsys.readouterr().err and (good / "eval.json").read_bytes() == before


def test_reruns_remove_leftovers_of_killed_atomic_writes(trained, tmp_path):
    run = _copy(trained, tmp_path)
    leftover = run / ".eval.json.1a2b3c4d.tmp"
    leftover.write_bytes(b"half")
    evaluate_run(run, ENV_IDS[:1], episodes=2)
    assert not leftover.exists()
    (run / "meta.json").unlink()  # an interrupted training
    (run / ".best.pt.0f0f0f0f.tmp").write_bytes(b"half")
    train_run(RunSpec("robust", 0, overrides=TINY), tmp_path)
    assert not list(run.glob(".*.tmp"))
    (tmp_path / "x" / "sub").mkdir(parents=True)
    (tmp_path / "x" / "sub" / ".a.json.ffff0000.tmp").write_text("{")
    (tmp_path / "x" / "keep.tmp").write_text("not ours")
    assert [p.name for p in remove_temporaries(tmp_path / "x")] == [".a.json.ffff0000.tmp"]
    assert (tmp_path / "x" / "keep.tmp").exists()


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_json_is_written_with_plain_lists_on_one_line_and_reads_back_equal(tmp_path):
    data = {"returns": [[500.0, 12.5], [float("inf"), -1]], "b": {"levels": (0.01, 0.2), "none": []},
            "a": [{"k": "x\"[1, 2]"}, [True, None]], "tag": "\u0000"}
    path = atomic_write_json(tmp_path / "d.json", data)
    text = path.read_text()
    assert text == json_text(data) and text.endswith("}\n")
    assert json.loads(text) == {**data, "b": {"levels": [0.01, 0.2], "none": []}}
    lines = text.splitlines()
    assert lines[lines.index('  "returns": ['):][:4] == ['  "returns": [', "    [500.0, 12.5],", "    [Infinity, -1]", "  ],"]
    assert '    "levels": [0.01, 0.2],' in lines and '    "none": []' in lines and "    [true, null]" in lines
    assert lines.index('  "a": [') < lines.index('  "b": {') < lines.index('  "returns": [')  # keys sorted
    assert '      "k": "x\\"[1, 2]"' in lines  # a string that looks like a list stays a string


def _zip_run(trained: Path, root: Path) -> Path:
    """A copy of ``trained`` in the layout of runs saved before compact checkpoints (SB3 zips)."""
    run = _copy(trained, root)
    meta = json.loads((run / "meta.json").read_text())
    for checkpoint in ("best", "final"):
        (run / f"{checkpoint}.zip").write_bytes(model_bytes(load_run_model(trained, checkpoint)))
    for path in run.glob("*.pt"):
        path.unlink()
    del meta["checkpoints"]
    atomic_write_json(run / "meta.json", meta)
    return run


def test_compact_run_converts_a_zip_run_that_then_evaluates_the_same(trained, tmp_path):
    run = _zip_run(trained, tmp_path)
    assert is_complete(run)
    from_zips = evaluate_run(run, ENV_IDS, episodes=2)["returns"]
    assert compact_run(run) and not compact_run(run)
    assert not list(run.glob("*.zip")) and checkpoint_files(run)["best"].name == "best.pt"
    assert evaluate_run(run, ENV_IDS, episodes=2)["returns"] == from_zips
    assert compare_runs(run.parent, trained.parent) == {run.name: []}


def test_compact_runs_script_converts_a_zip_run_with_cached_views(trained, tmp_path):
    run = _zip_run(trained, tmp_path / "runs")
    evaluate_run(run, (NOMINAL_ID,), episodes=2)
    robustness_run(run, GRID, episodes=2)  # its saved request carries the precision
    root = Path(robustrl.__file__).parent.parent
    done = subprocess.run([sys.executable, str(root / "scripts" / "compact_runs.py"), str(run.parent)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    assert f"{run}: compact, evaluates exactly as its zips" in done.stdout
    assert not list(run.glob("*.zip"))
    best = {"file": "best.pt", "sha256": hashlib.sha256((run / "best.pt").read_bytes()).hexdigest()}
    assert json.loads((run / "robustness.json").read_text())["models"] == {"best": best}
    assert json.loads((run / "eval.json").read_text())["models"]["best"] == best


def test_compare_says_identical_or_what_differs(trained, tmp_path, capsys):
    runs = tmp_path / "runs"
    run = _copy(trained, runs)
    reference = _copy(trained, tmp_path / "reference")
    assert compare_runs(runs, reference.parent) == {run.name: []}
    assert main(["compare", str(runs), str(reference.parent)]) == 0
    assert f"{run.name}: identical" in capsys.readouterr().out
    lines = (run / "curve.csv").read_text().splitlines()
    lines[1] = lines[1].replace(",", ",9", 1)
    (run / "curve.csv").write_text("\n".join(lines) + "\n")
    other = make_agent(AgentConfig.resolve(load_config(), NOMINAL_ID, "robust", TINY), gym.make(NOMINAL_ID), seed=9,
                       device="cpu")
    (run / "best.pt").write_bytes(checkpoint_bytes(other, AgentConfig.resolve(load_config(), NOMINAL_ID, "robust",
                                                                               TINY)))
    differences = compare_runs(runs, reference.parent)[run.name]
    assert any(d.startswith("curve.csv line 2") for d in differences) and "best weights differ" in differences
    assert main(["compare", str(runs), str(reference.parent)]) == 1
    assert "best weights differ" in capsys.readouterr().out
    meta = json.loads((run / "meta.json").read_text())
    meta["config"]["robust_kwargs"]["eta"] = 7.0
    (run / "meta.json").write_text(json.dumps(meta))
    assert compare_runs(runs, reference.parent)[run.name][0].startswith("configuration differs (robust_kwargs.eta")
    assert main(["compare", str(runs), str(tmp_path / "nowhere")]) == 2


def test_evaluation_runs_the_q_network_in_float64_without_touching_the_model(trained):
    model = load_run_model(trained)
    obs = np.random.default_rng(1).normal(size=(4096, 4)).astype(np.float32)
    actions = greedy_policy(model)(obs)
    with torch.no_grad():
        q64 = model.q_net.q_net.double()(torch.as_tensor(obs, dtype=torch.float64))
        model.q_net.q_net.float()
        q32 = model.q_net(torch.as_tensor(obs))
    assert np.array_equal(actions, q64.argmax(1).numpy())
    # one batch or one row at a time, the same actions (float32 kernels may differ with the batch size)
    assert all(actions[i] == greedy_policy(model)(obs[i:i + 1])[0] for i in range(0, 4096, 97))
    assert all(p.dtype == torch.float32 for p in model.q_net.parameters())  # evaluation worked on a copy
    assert np.array_equal(greedy_policy(model, "float32")(obs), q32.argmax(1).numpy())  # SB3's own forward
    with pytest.raises(ValueError, match="precision='float16'"):
        greedy_policy(model, "float16")


def test_an_evaluation_cached_in_another_precision_is_computed_again(trained, tmp_path):
    run_dir = _copy(trained, tmp_path)
    first = evaluate_run(run_dir, (NOMINAL_ID,), episodes=2)
    assert first["request"]["precision"] == "float64"
    stale = {**first, "request": {**first["request"], "precision": "float32"}, "returns": {NOMINAL_ID: {
        "best": [-1.0, -1.0], "final": [-1.0, -1.0]}}}
    atomic_write_json(run_dir / "eval.json", stale)
    assert evaluate_run(run_dir, (NOMINAL_ID,), episodes=2) == first


def test_verify_says_identical_or_names_what_differs_and_writes_nothing(trained, tmp_path, capsys):
    run_dir = _copy(trained, tmp_path)
    evaluate_run(run_dir, (NOMINAL_ID,), episodes=2)
    before = {p: p.read_bytes() for p in run_dir.iterdir()}
    assert main(["evaluate", "--run", str(run_dir), "--verify"]) == 0
    assert f"{run_dir.name}: identical" in capsys.readouterr().out
    saved = json.loads((run_dir / "eval.json").read_text())
    saved["returns"][NOMINAL_ID]["final"][1] += 1.0
    atomic_write_json(run_dir / "eval.json", saved)
    before[run_dir / "eval.json"] = (run_dir / "eval.json").read_bytes()
    assert main(["evaluate", "--run", str(run_dir), "--verify"]) == 1
    out = capsys.readouterr().out
    assert f"final on {NOMINAL_ID}: mean" in out and "saved" in out and "1 differ" in out
    assert {p: p.read_bytes() for p in run_dir.iterdir()} == before
