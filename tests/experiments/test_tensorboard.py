"""``robustrl train --tensorboard DIR``: TensorBoard event files, an output that does not change the run."""

import json
import sys
from pathlib import Path

import pytest

from robustrl.cli import main

RUN = "CartPole-v1__robust__0"
#: A robust run of a few hundred steps; n_samples and the estimator are pinned (what samples_per_update logs).
TINY = ["n_timesteps=300", "eval_freq=300", "eval_episodes=1", "learning_starts=64", "train_freq=32",
        "gradient_steps=2", "batch_size=16", "buffer_size=1000", "policy_kwargs={net_arch: [16, 16]}",
        "n_samples=4", "estimator=saa"]


def train(out: Path, *options: str) -> int:
    return main(["train", "--agent", "robust", "--out", str(out), "--no-progress", *options, "--set", *TINY])


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """One tiny robust run trained with ``--tensorboard``: (folder of run folders, TensorBoard folder)."""
    pytest.importorskip("tensorboard")
    root = tmp_path_factory.mktemp("tensorboard")
    assert train(root / "runs", "--tensorboard", str(root / "tb")) == 0
    return root / "runs", root / "tb"


def test_train_writes_event_files_with_the_robust_targets_scalars(logged):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, tb = logged
    events = sorted(tb.rglob("events.out.tfevents.*"))
    assert [p.parent.name for p in events] == [f"{RUN}_1"]  # SB3's subfolder, named after the run
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    scalars = accumulator.Tags()["scalars"]
    assert {"train/q_spread", "train/target_gap", "train/loss", "eval/nominal_mean_return"} <= set(scalars)
    assert {event.value for event in accumulator.Scalars("train/samples_per_update")} == {4.0}


def test_a_run_with_tensorboard_is_the_same_run_as_without(logged, tmp_path):
    runs, _ = logged
    assert train(tmp_path) == 0
    with_tb, without = runs / RUN, tmp_path / RUN
    saved = [json.loads((folder / "meta.json").read_text()) for folder in (with_tb, without)]
    assert saved[0]["config"] == saved[1]["config"]
    assert "tensorboard_log" not in json.dumps(saved[0]["config"])
    for name in ("best.pt", "curve.csv", "target_stats.csv"):  # trained identically
        assert (with_tb / name).read_bytes() == (without / name).read_bytes(), name
    # the complete run is reused whether or not TensorBoard is asked for (and then logs nothing)
    assert train(tmp_path, "--tensorboard", str(tmp_path / "tb")) == 0
    assert not (tmp_path / "tb").exists()


def test_without_tensorboard_installed_train_exits_2_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # its import now fails
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    assert train(tmp_path / "runs", "--tensorboard", str(tmp_path / "tb")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("robustrl: error: ")
    assert "pip install 'robustrl[tensorboard]'" in err
    assert not list(tmp_path.iterdir())  # nothing trained, no folder created
