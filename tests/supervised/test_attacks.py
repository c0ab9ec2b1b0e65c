import pytest
import torch
import torch.nn.functional as F

from robustrl.supervised.attacks import FGM, PGD, RandomNoise, make_attack
from robustrl.supervised.models import make_model

ATTACK_CASES = [
    ("fgm", "linf", 0.1), ("fgm", "l2", 0.5), ("pgd", "linf", 0.1), ("pgd", "l2", 0.5),
    ("pgd-margin", "l2", 0.5),
    ("noise", "linf", 0.1), ("noise", "l2", 0.5),
]


@pytest.fixture
def batch(digits):
    return digits.x_test[:32], digits.y_test[:32]


@pytest.fixture(scope="module")
def model():
    return make_model("small-cnn", seed=0)


@pytest.mark.parametrize("name,norm,eps", ATTACK_CASES)
def test_budget_range_mode_and_grads(model, batch, name, norm, eps):
    x, y = batch
    model.train()
    atk = make_attack(name, model, eps, norm, steps=5, restarts=2, generator=torch.Generator().manual_seed(0))
    adv = atk(x, y)
    assert adv.shape == x.shape and not adv.requires_grad
    assert adv.min() >= 0 and adv.max() <= 1
    delta = (adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all()
    assert model.training, "mode restored"
    assert all(p.grad is None for p in model.parameters()), "model .grad left alone"


def test_fgm_linf_on_linear_model_is_sign_step():
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x = torch.full((1, 1, 2, 2), 0.5)
    y = torch.tensor([0])
    xr = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(lin(xr), y), xr)
    torch.testing.assert_close(FGM(lin, 0.1)(x, y), (x + 0.1 * g.sign()).clamp(0, 1))


def test_pgd_stronger_than_fgm_and_noise(model, batch):
    x, y = batch
    loss = {}
    for atk in (RandomNoise(model, 0.2), FGM(model, 0.2), PGD(model, 0.2, steps=10)):
        with torch.no_grad():
            loss[type(atk).__name__] = F.cross_entropy(model(atk(x, y)), y).item()
    assert loss["PGD"] >= loss["FGM"] - 1e-6 and loss["FGM"] > loss["RandomNoise"]


def test_restarts_never_weaker_and_seeded(model, batch):
    x, y = batch
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    one = PGD(model, 0.15, steps=3, restarts=1, generator=gen())(x, y)
    three = PGD(model, 0.15, steps=3, restarts=3, generator=gen())(x, y)
    with torch.no_grad():
        assert (model(three).argmax(1) == y).sum() <= (model(one).argmax(1) == y).sum()
    torch.testing.assert_close(PGD(model, 0.15, steps=3, generator=gen())(x, y), one)


def test_bad_inputs_raise_value_error(model, batch):
    x, y = batch
    with pytest.raises(ValueError, match="-0.1"):
        PGD(model, -0.1)
    with pytest.raises(ValueError, match="steps=0"):
        PGD(model, 0.1, steps=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FGM(model, 0.1)(x * 2, y)
    with pytest.raises(ValueError, match="shape"):
        FGM(model, 0.1)(x[:, 0], y)
    with pytest.raises(ValueError, match="10"):
        FGM(model, 0.1)(x, torch.full_like(y, 10))
    with pytest.raises(ValueError, match="shape"):
        FGM(model, 0.1)(x, y[:3])
    with pytest.raises(ValueError, match="'cw'"):
        make_attack("cw", model, 0.1)
    with pytest.raises(ValueError, match="'l1'"):
        FGM(model, 0.1, norm="l1")


def test_margin_loss_is_cw_margin(model, batch):
    x, y = batch
    atk = PGD(model, 0.1, loss="margin")
    with torch.no_grad():
        logits = model(x)
    other = logits.clone()
    other[torch.arange(len(y)), y] = -float("inf")
    expected = (other.amax(1) - logits[torch.arange(len(y)), y]).sum()
    torch.testing.assert_close(atk.loss(x, y), expected)
    with pytest.raises(ValueError, match="'hinge'"):
        PGD(model, 0.1, loss="hinge")
