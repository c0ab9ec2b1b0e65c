import math

import pytest
import torch
import torch.nn.functional as F

from robustrl.estimators import SAA
from robustrl.supervised.methods import METHODS, EntropicAT, MethodConfig, make_method, needs_mmc_head
from robustrl.supervised.models import make_model
from robustrl.supervised.training import AttackSpec, NonFiniteLossError, TrainConfig, evaluate, train

CFG = MethodConfig(eps=0.1, steps=2, rho=0.1, eta=0.5, m=3, L=2, center_steps=1)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_gives_finite_differentiable_loss(digits, name):
    model = make_model("small-cnn", head="mmc" if needs_mmc_head(name) else "softmax")
    x, y = digits.x_train[:16], digits.y_train[:16]
    loss = make_method(name, CFG).loss(model, x, y, torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and math.isfinite(loss.item())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_entropic_limits_reduce_to_erm(digits):
    model = make_model("small-cnn")
    x, y = digits.x_train[:16], digits.y_train[:16]
    erm = F.cross_entropy(model(x), y)
    for eta in (math.inf, 0.0, 0.3):
        ent = EntropicAT(SAA(4), rho=0.0, eta=eta).loss(model, x, y, torch.Generator().manual_seed(0))
        torch.testing.assert_close(ent, erm, rtol=1e-5, atol=1e-5)


def test_entropic_is_between_mean_and_max_of_sample_losses(digits):
    model = make_model("small-cnn")
    x, y = digits.x_train[:8], digits.y_train[:8]
    vals = {}
    for eta in (math.inf, 0.5, 0.0):
        vals[eta] = EntropicAT(SAA(8), rho=0.2, eta=eta).loss(model, x, y, torch.Generator().manual_seed(5))
    assert vals[math.inf] <= vals[0.5] <= vals[0.0]


def test_bad_method_names_and_values():
    with pytest.raises(ValueError, match="'sgd-at'"):
        make_method("sgd-at")
    with pytest.raises(ValueError, match="eps=-1"):
        make_method("ifgm-at", MethodConfig(eps=-1))
    with pytest.raises(ValueError, match="steps=0"):
        make_method("ifgm-at", MethodConfig(steps=0))
    with pytest.raises(ValueError, match="MMC head"):
        make_method("mmc").loss(make_model("small-cnn"), torch.rand(2, 1, 8, 8), torch.tensor([0, 1]))


def test_train_is_seeded_and_evaluate_reports_columns(digits):
    x, y = digits.x_train[:128], digits.y_train[:128]
    runs = []
    for _ in range(2):
        model = make_model("small-cnn", seed=1)
        hist = train(model, make_method("entropic-mlmc", CFG), x, y, TrainConfig(epochs=2, batch_size=32),
                     generator=torch.Generator().manual_seed(2), progress=False)
        runs.append((hist, model))
    assert runs[0][0] == runs[1][0]
    specs = [AttackSpec("pgd", "linf", 0.1, steps=2, restarts=2), AttackSpec("noise", "l2", 0.5)]
    acc = evaluate(runs[0][1], digits.x_test[:40], digits.y_test[:40], specs, progress=False)
    assert set(acc) == {"clean", "pgd_linf_0.1", "noise_l2_0.5"}
    assert acc == evaluate(runs[1][1], digits.x_test[:40], digits.y_test[:40], specs, progress=False)


def test_nan_loss_stops_training_naming_epoch_and_batch(digits):
    class NaNAfter:
        name = "nan"

        def __init__(self):
            self.calls = 0

        def loss(self, model, x, y, generator=None):
            self.calls += 1
            out = F.cross_entropy(model(x), y)
            return out * float("nan") if self.calls == 5 else out

    with pytest.raises(NonFiniteLossError, match="epoch 2, batch 1"):
        train(make_model("small-cnn"), NaNAfter(), digits.x_train[:128], digits.y_train[:128],
              TrainConfig(epochs=3, batch_size=32), generator=torch.Generator().manual_seed(0),
              progress=False)


def test_train_rejects_bad_data(digits):
    with pytest.raises(ValueError, match="labels|y must"):
        train(make_model("small-cnn"), make_method("erm"), digits.x_train[:8], digits.y_train[:8] + 20,
              TrainConfig(epochs=1), generator=torch.Generator(), progress=False)
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0).validate()


def test_entropic_loss_is_the_hand_computed_log_mean_exp_at_each_eta(digits):
    """The temperature matters: ``eta * log mean exp(CE / eta)`` over the same samples, per eta."""
    from robustrl.estimators import perturb

    model = make_model("small-cnn")
    x, y = digits.x_train[:8], digits.y_train[:8]
    z = perturb(x, 0.3, 8, generator=torch.Generator().manual_seed(5), clip=(0.0, 1.0))
    with torch.no_grad():
        ce = F.cross_entropy(model(z.flatten(0, 1)), y.repeat_interleave(8), reduction="none").view(8, 8).double()
        losses = {}
        for eta in (0.05, 0.5, 5.0):
            losses[eta] = EntropicAT(SAA(8), rho=0.3, eta=eta).loss(model, x, y, torch.Generator().manual_seed(5))
            expected = (eta * (torch.logsumexp(ce / eta, dim=1) - math.log(8))).mean()
            torch.testing.assert_close(losses[eta].double(), expected, rtol=1e-5, atol=1e-6)
    assert losses[0.05] > losses[0.5] > losses[5.0]  # a lower temperature weighs the worst samples more
