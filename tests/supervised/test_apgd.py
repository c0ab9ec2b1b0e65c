"""APGD (Croce and Hein 2020) and the ensemble's targeted runs: the step-size checkpoints of the reference, the DLR
losses, the ball and the box, and a model on which every untargeted run of the ensemble fails but a targeted one
does not."""

import pytest
import torch
from torch import nn

from robustrl.attacks import APGD, dlr, margin, targeted_dlr
from robustrl.supervised.attacks import attack_ensemble, make_attack


def hidden_class_model(d: int = 64, eps: float = 0.1) -> nn.Linear:
    """10 classes over inputs in [0, 1]^d; at x = 0.5 the label 0 scores 10, classes 1-3 score 9, 4-8 score 6, and
    class 9 scores 3. Within the l-inf ball of radius ``eps`` classes 1-3 gain at most 0.5 (never reach 10) and
    class 9 up to 8 (it overtakes the label at the corner x + eps). Cross-entropy's gradient is dominated by the
    softmax weight of classes 1-3 and points away from class 9; margin runs aimed at the top runner-ups chase
    classes 1-3; only an attack aimed at class 9, the last runner-up, finds the corner."""
    model = nn.Linear(d, 10)
    weight, bias = torch.zeros(10, d), torch.zeros(10)
    near, far = 0.5 / (eps * d), 8.0 / (eps * d)
    bias[0] = 10.0
    weight[1:4], bias[1:4] = -near, 9.0 + near * 0.5 * d
    bias[4:9] = 6.0
    weight[9], bias[9] = far, 3.0 - far * 0.5 * d
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
    return model


def _robust(model: nn.Module, adv: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(adv).argmax(1) == y).float().mean().item()


def test_targeted_runs_break_what_every_untargeted_run_misses():
    model = hidden_class_model()
    x, y = torch.full((16, 64), 0.5), torch.zeros(16, dtype=torch.long)
    with torch.no_grad():
        assert model(x[:1]).argsort(descending=True)[0, -1].item() == 9  # the target is the last runner-up
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    untargeted = attack_ensemble(model, 0.1, steps=50, restarts=3, generator=gen(), targeted=False)(x, y)
    assert _robust(model, untargeted, y) == 1.0
    adv = attack_ensemble(model, 0.1, steps=50, restarts=3, generator=gen())(x, y)
    assert _robust(model, adv, y) == 0.0
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_apgd_checkpoints_follow_the_reference_schedule():
    # fra31/auto-attack: first check after 22 % of the iterations, each interval 3 % shorter, at least 6 %
    assert sorted(APGD(nn.Linear(2, 3), 0.1, 100)._checkpoints()) == [21, 40, 56, 69, 79, 86, 92, 98]
    assert sorted(APGD(nn.Linear(2, 3), 0.1, 10)._checkpoints()) == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_dlr_is_invariant_to_shift_and_scale_and_signs_the_margin():
    scores = torch.randn(32, 10, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(dlr(3.0 * scores + 7.0, labels), dlr(scores, labels), atol=1e-5)
    assert torch.equal(dlr(scores, labels) < 0, margin(scores, labels) < 0)
    targets = (labels + 1) % 10
    value = targeted_dlr(scores, labels, targets)
    assert torch.allclose(targeted_dlr(2.0 * scores - 1.0, labels, targets), value, atol=1e-5)
    gap = scores.gather(1, labels[:, None]) - scores.gather(1, targets[:, None])
    assert torch.equal(value < 0, gap.squeeze(1) < 0)


@pytest.mark.parametrize("norm,loss", [("linf", "ce"), ("l2", "dlr"), ("linf", "dlr-targeted"),
                                       ("l2", "dlr-targeted")])
def test_apgd_stays_in_the_ball_and_the_box_and_replays(digits, norm, loss):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    x, y = digits.x_test[:40], digits.y_test[:40]
    eps = 0.1 if norm == "linf" else 0.5
    run = lambda: APGD(model, eps, 20, norm, 2, torch.Generator().manual_seed(3), loss, targets=3)(x, y)  # noqa: E731
    adv = run()
    delta = (adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all() and adv.min() >= 0 and adv.max() <= 1
    assert torch.equal(adv, run())
    with torch.no_grad():
        assert (model(adv).argmax(1) != y).sum() >= (model(x).argmax(1) != y).sum()


def test_apgd_rejects_bad_values():
    model = nn.Linear(4, 5)
    with pytest.raises(ValueError, match="APGD loss"):
        APGD(model, 0.1, loss="margin")
    with pytest.raises(ValueError, match="rho"):
        APGD(model, 0.1, rho=1.5)
    with pytest.raises(ValueError, match="targets"):
        APGD(model, 0.1, loss="dlr-targeted", targets=0)
    with pytest.raises(ValueError, match="steps"):
        APGD(model, 0.1, steps=0)
    with pytest.raises(ValueError, match="at least 3 classes"):
        APGD(nn.Linear(4, 2), 0.1, loss="dlr")(torch.full((3, 4), 0.5), torch.zeros(3, dtype=torch.long))
    # two classes: the targeted loss falls back to the plain targeted margin and still finds the flip
    two = nn.Linear(4, 2)
    with torch.no_grad():
        two.weight.copy_(torch.tensor([[0.0] * 4, [1.0] * 4]))
        two.bias.copy_(torch.tensor([2.2, 0.0]))
    x, y = torch.full((3, 4), 0.5), torch.zeros(3, dtype=torch.long)
    adv = APGD(two, 0.1, 10, loss="dlr-targeted", generator=torch.Generator().manual_seed(0))(x, y)
    assert (two(adv).argmax(1) == 1).all()


def test_make_attack_builds_apgd_by_name():
    model = nn.Linear(64, 10)
    assert make_attack("apgd-ce", model, 0.1).loss_name == "ce"
    assert make_attack("apgd-dlr", model, 0.1).loss_name == "dlr"
    atk = make_attack("apgd-t", model, 0.1, steps=30, restarts=2)
    assert (atk.loss_name, atk.steps, atk.restarts) == ("dlr-targeted", 30, 2)
