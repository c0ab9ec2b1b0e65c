import copy
import inspect
import re

import pytest

import robustrl.supervised as sup
from robustrl.supervised.benchmark import PRESETS, preset, run_one
from robustrl.supervised.data import FASHION_MNIST_DIR, load_dataset


def test_every_public_name_is_documented():
    for name in sup.__all__:
        obj = getattr(sup, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_package():
    data = load_dataset("fashion-mnist")
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert data.num_classes == 10 and 0 <= float(data.x_test.min()) and float(data.x_test.max()) <= 1


@pytest.mark.slow
def test_digits_sanity_floor_erm_and_ifgm():
    cfg = preset("digits")
    cfg.methods = ["erm", "ifgm-at"]
    key = "pgd_linf_0.15"
    acc = {m: run_one(cfg, m, 0, progress=False)["accuracy"] for m in cfg.methods}
    drop = acc["erm"]["clean"] - acc["erm"][key]
    assert drop >= 0.5
    assert acc["ifgm-at"][key] - acc["erm"][key] >= drop / 2


BROKEN = [
    ("dataset", "cifar", "unknown dataset 'cifar'"),
    ("methods", ["erm", "erm-typo"], "unknown method 'erm-typo'"),
    ("seeds", [0, -1], "seed must be an integer >= 0"),
    ("train", {"epochs": 0}, "epochs must be an integer >= 1"),
    ("method", {"eta": -1.0}, "eta must be in"),
    ("attacks", [{"name": "pgd", "norm": "l3", "eps": 0.1}], "unknown norm 'l3'"),
]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_validate_and_each_broken_part_is_refused(name):
    cfg = preset(name)
    assert cfg.validate() is cfg and cfg.methods and cfg.attack_specs()
    for field, bad, message in BROKEN:
        broken = copy.deepcopy(cfg)
        setattr(broken, field, {**getattr(cfg, field), **bad} if isinstance(bad, dict) else bad)
        with pytest.raises(ValueError, match=re.escape(message)):
            broken.validate()
