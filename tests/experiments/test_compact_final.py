"""A final checkpoint stored as the entries that differ from the best one: the same weights, the same numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from robustrl.agents import AgentConfig, checkpoint_bytes, encode_checkpoint, load_config, read_checkpoint
from robustrl.envs import NOMINAL_ID
from robustrl.experiments import RunSpec, evaluate_run, load_run_model, train_run, verify_evaluation
from robustrl.experiments.compare import compact_final, compare_runs
from robustrl.experiments.io import atomic_write_json, file_sha256

TINY = {"n_timesteps": 200, "eval_freq": 200, "eval_episodes": 1, "learning_starts": 100,
        "train_freq": 64, "gradient_steps": 1, "batch_size": 16, "buffer_size": 1000,
        "policy_kwargs": {"net_arch": [16, 16]}}
IDS = (NOMINAL_ID, "robustrl/CartPoleHeavy-v1")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    """A tiny run whose final model differs from its best one in one layer (like a table run), evaluated."""
    run = train_run(RunSpec("regular", 0, overrides=TINY), tmp_path_factory.mktemp("runs"))
    model = load_run_model(run, "best")
    with torch.no_grad():
        model.q_net.q_net[4].weight[0, :3] += 0.25
    cfg = AgentConfig.resolve(load_config(), NOMINAL_ID, "regular", TINY)
    (run / "final.pt").write_bytes(checkpoint_bytes(model, cfg))
    meta = json.loads((run / "meta.json").read_text())
    atomic_write_json(run / "meta.json", {**meta, "checkpoints": {"best": "best.pt", "final": "final.pt"}})
    evaluate_run(run, IDS, episodes=2)
    return run


def test_a_compact_final_reads_back_bit_for_bit_and_evaluates_the_same(evaluated, tmp_path):
    run = Path(shutil.copytree(evaluated, tmp_path / "runs" / evaluated.name))
    full = read_checkpoint(run / "final.pt")
    saved = json.loads((run / "eval.json").read_text())
    assert compact_final(run) and not compact_final(run)
    stored = read_checkpoint(run / "final.pt")
    assert stored["version"] == 2 and stored["base"]["file"] == "best.pt"
    assert all(torch.equal(stored["q_net"][k].view(torch.int32), full["q_net"][k].view(torch.int32))
               for k in full["q_net"])
    assert encode_checkpoint(stored) == (evaluated / "final.pt").read_bytes()  # the full file, byte for byte
    # The cached evaluation names the new file and is still used; evaluated again, the same numbers.
    cached = json.loads((run / "eval.json").read_text())
    assert cached["models"]["final"]["sha256"] == file_sha256(run / "final.pt")
    assert {**cached, "models": saved["models"]} == saved
    assert evaluate_run(run, IDS, episodes=2) == cached
    assert verify_evaluation(run) == []
    assert compare_runs(run.parent, evaluated.parent) == {run.name: []}
    # The original run, weightless, is a reference for the compact one through either encoding's checksum.
    reference = Path(shutil.copytree(evaluated, tmp_path / "reference" / evaluated.name))
    for name in ("best.pt", "final.pt"):
        (reference / name).unlink()
    assert compare_runs(run.parent, reference.parent) == {run.name: []}


def test_a_compact_final_needs_its_own_best_checkpoint(evaluated, tmp_path):
    run = Path(shutil.copytree(evaluated, tmp_path / evaluated.name))
    compact_final(run)
    model = load_run_model(run, "final")
    cfg = AgentConfig.resolve(load_config(), NOMINAL_ID, "regular", TINY)
    with pytest.raises(ValueError, match="a base must be a full checkpoint"):
        checkpoint_bytes(model, cfg, base=run / "final.pt")
    best = read_checkpoint(run / "best.pt")
    assert encode_checkpoint(best, run / "best.pt") == (run / "best.pt").read_bytes()  # equal weights: stored once
    with torch.no_grad():
        model.q_net.q_net[0].bias[0] += 1.0
    (run / "best.pt").write_bytes(checkpoint_bytes(model, cfg))
    with pytest.raises(ValueError, match=f"final.pt was saved against another {run / 'best.pt'}"):
        read_checkpoint(run / "final.pt")
    (run / "best.pt").unlink()
    with pytest.raises(ValueError, match="which does not exist"):
        load_run_model(run, "final")


def test_a_table_sized_final_sharing_most_weights_with_the_best_takes_a_third_of_the_space(tmp_path):
    generator = torch.Generator().manual_seed(0)
    shapes = {"q_net.0.weight": (256, 4), "q_net.0.bias": (256,), "q_net.2.weight": (256, 256),
              "q_net.2.bias": (256,), "q_net.4.weight": (2, 256), "q_net.4.bias": (2,)}
    best = {"algo": "DQN", "config": {"seed": 0},
            "q_net": {k: torch.randn(s, generator=generator) for k, s in shapes.items()}}
    (tmp_path / "best.pt").write_bytes(encode_checkpoint(best))
    final = {**best, "q_net": {k: t.clone() for k, t in best["q_net"].items()}}
    final["q_net"]["q_net.2.weight"][:77] += 0.01  # the rows of the units still learning: 30 %
    final["q_net"]["q_net.0.weight"] += 0.01
    data = encode_checkpoint(final, tmp_path / "best.pt")
    assert len(data) < 100_000 < 270_000 < (tmp_path / "best.pt").stat().st_size
    (tmp_path / "final.pt").write_bytes(data)
    assert all(torch.equal(read_checkpoint(tmp_path / "final.pt")["q_net"][k], final["q_net"][k]) for k in shapes)
