"""Supervised run records and checkpoints that are not what they claim: one line naming the file, exit 2."""

import json

import pytest
import torch

from robustrl.cli import main
from robustrl.supervised.benchmark import read_record
from robustrl.supervised.models import load_checkpoint, make_model


def record(checkpoint="digits__erm__0.pt"):
    config = {"dataset": "digits", "root": None, "arch": "small-cnn", "n_train": 64, "n_test": 32,
              "methods": ["erm"], "attacks": []}
    return {"method": "erm", "seed": 0, "config": config, "method_config": {"mmc_C": 10.0},
            "accuracy": {"clean": 0.5}, "checkpoint": checkpoint}


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("robustrl: error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("content, problem", [
    ({}, "no method"),
    ([], "expected a JSON object"),
    ({**record(), "config": {}}, "no config.dataset"),
    ({**record(), "seed": "zero"}, "seed is 'zero'"),
    ({**record(), "accuracy": {"clean": "high"}}, "accuracy values must be numbers"),
])
def test_a_record_of_the_wrong_shape_is_named(tmp_path, capsys, content, problem):
    path = tmp_path / "runs" / "digits__erm__0.json"
    path.parent.mkdir()
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=problem):
        read_record(path)
    assert main(["supervised", "evaluate", "--run", str(path), "--eps", "0.1", "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert str(path) in err and problem in err
    assert main(["supervised", "table", "--runs", str(path.parent), "--out", str(tmp_path / "t")]) == 2
    assert str(path) in one_line_error(capsys)
    assert not (tmp_path / "t").exists()
    assert json.loads(path.read_text()) == content


@pytest.mark.parametrize("content, error, problem", [
    (None, FileNotFoundError, "does not exist"), ("{not json", ValueError, "is corrupted"),
])
def test_a_missing_or_corrupted_record_is_named(tmp_path, capsys, content, error, problem):
    path = tmp_path / "digits__erm__0.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=problem):
        read_record(path)
    assert main(["supervised", "evaluate", "--run", str(path), "--eps", "0.1", "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert str(path) in err and problem in err


@pytest.mark.parametrize("damage", ["truncated", "other model", "missing"])
def test_a_damaged_checkpoint_is_named(tmp_path, capsys, damage):
    path = tmp_path / "digits__erm__0.json"
    path.write_text(json.dumps(record()))
    weights = tmp_path / "digits__erm__0.pt"
    model = make_model("small-cnn", 10)
    if damage == "other model":
        torch.save(make_model("paper-cnn", 10).state_dict(), weights)
    elif damage == "truncated":
        torch.save(model.state_dict(), weights)
        weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="checkpoint .*digits__erm__0.pt"):
        load_checkpoint(model, weights)
    before = path.read_text()
    assert main(["supervised", "evaluate", "--run", str(path), "--eps", "0.1", "--no-progress"]) == 2
    assert str(weights) in one_line_error(capsys)
    assert path.read_text() == before
