import copy
import inspect
import re

import pytest
import torch

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
    """The full digits preset (see :func:`test_adversarial_training_is_robust_on_a_tiny_budget` for the fast one)."""
    cfg = preset("digits")
    cfg.methods = ["erm", "ifgm-at"]
    key = "ensemble_linf_0.15"
    acc = {m: run_one(cfg, m, 0, progress=False)["accuracy"] for m in cfg.methods}
    drop = acc["erm"]["clean"] - acc["erm"][key]
    assert drop >= 0.5
    assert acc["ifgm-at"][key] - acc["erm"][key] >= drop / 2


BROKEN = [
    ("dataset", "cifar", "unknown dataset 'cifar'"),
    ("methods", ["erm", "erm-typo"], "unknown method 'erm-typo'"),
    ("seeds", [0, -1], "seed must be an integer >= 0"),
    ("seeds", [2**32], "seed must be <= 2**32 - 1"),
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


def test_adversarial_training_is_robust_on_a_tiny_budget(digits):
    """Two epochs on 400 digits, same seed: ERM collapses under PGD, the robust methods keep far more.

    The fast counterpart of the slow preset test: the budget-matched entropic objective (SAA, samples in
    the eps-ball around a PGD centre) and IFGM-AT each gain over 0.1 accuracy under the attack ERM loses
    over half its accuracy to.
    """
    from robustrl.supervised.methods import MethodConfig, make_method
    from robustrl.supervised.models import make_model
    from robustrl.supervised.training import AttackSpec, TrainConfig, evaluate, train

    config = MethodConfig(eps=0.15, norm="linf", steps=3, rho=0.05, eta=0.5, m=4, center_steps=3,
                          match_budget=True)
    attack = AttackSpec("pgd", "linf", 0.15, steps=5, restarts=1)
    accuracy = {}
    for method in ("erm", "ifgm-at", "entropic-saa"):
        model = make_model("small-cnn", seed=0)
        train(model, make_method(method, config), digits.x_train[:400], digits.y_train[:400],
              TrainConfig(epochs=2, batch_size=32, lr=2e-3), generator=torch.Generator().manual_seed(0),
              progress=False)
        accuracy[method] = evaluate(model, digits.x_test[:300], digits.y_test[:300], [attack], progress=False)
    erm = accuracy["erm"]
    assert erm["clean"] - erm[attack.key] >= 0.5
    for method in ("ifgm-at", "entropic-saa"):
        assert accuracy[method][attack.key] - erm[attack.key] >= 0.1, (method, accuracy)
        assert accuracy[method]["clean"] >= erm["clean"] - 0.1, (method, accuracy)
