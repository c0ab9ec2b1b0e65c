import itertools

import pytest
import torch

from robustrl.supervised.linear import (
    adversarial_logistic_loss,
    binary_subset,
    error_rate,
    train_logistic,
    worst_case_linf,
)
from robustrl.supervised.models import BinaryLogistic


def brute_force_max(model, x, y, eps, clip):
    """Max of the logistic loss over every vertex of the l-inf ball (optionally clamped to [0, 1])."""
    d = x.shape[1]
    corners = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=d)), dtype=x.dtype)
    z = x[:, None, :] + eps * corners[None]
    if clip:
        z = z.clamp(0, 1)
    with torch.no_grad():
        losses = torch.nn.functional.softplus(-y[:, None] * model(z.reshape(-1, d)).view(len(x), -1))
    return losses.amax(1)


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.3])
def test_closed_form_equals_brute_force_inner_max(eps):
    gen = torch.Generator().manual_seed(0)
    model = BinaryLogistic(6)
    with torch.no_grad():
        model.linear.weight.copy_(torch.randn(1, 6, generator=gen, dtype=torch.float64).float())
    x = torch.rand(20, 6, generator=gen)
    y = torch.where(torch.rand(20, generator=gen) > 0.5, 1.0, -1.0)
    with torch.no_grad():
        closed = adversarial_logistic_loss(model, x, y, eps)
        at_point = torch.nn.functional.softplus(-y * model(worst_case_linf(model, x, y, eps)))
        random_pts = x[:, None] + eps * (torch.rand(20, 500, 6, generator=gen) * 2 - 1)
        scores = model(random_pts.reshape(-1, 6)).view(20, 500)
        random_max = torch.nn.functional.softplus(-y[:, None] * scores).amax(1)
    torch.testing.assert_close(closed, brute_force_max(model, x, y, eps, clip=False), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(at_point, closed, rtol=1e-5, atol=1e-6)
    assert (random_max <= closed + 1e-6).all()
    with torch.no_grad():
        clipped = torch.nn.functional.softplus(-y * model(worst_case_linf(model, x, y, eps, clip=True)))
    torch.testing.assert_close(clipped, brute_force_max(model, x, y, eps, clip=True), rtol=1e-5, atol=1e-6)


def test_adversarial_training_is_more_robust_on_digits(digits):
    data = binary_subset(digits, 0, 1)
    assert set(data.y_train.tolist()) == {-1.0, 1.0} and data.x_train.shape[1] == 64
    std = train_logistic(data.x_train, data.y_train, 0.0, epochs=5)
    rob = train_logistic(data.x_train, data.y_train, 0.3, epochs=5)
    assert error_rate(std, data.x_test, data.y_test) < 0.05
    assert error_rate(rob, data.x_test, data.y_test, 0.3) < error_rate(std, data.x_test, data.y_test, 0.3)


def test_linear_bad_inputs(digits):
    with pytest.raises(ValueError, match="-1, \\+1"):
        adversarial_logistic_loss(BinaryLogistic(2), torch.rand(3, 2), torch.tensor([0.0, 1.0, 1.0]), 0.1)
    with pytest.raises(ValueError, match="eps=-0.5"):
        adversarial_logistic_loss(BinaryLogistic(2), torch.rand(1, 2), torch.tensor([1.0]), -0.5)
    with pytest.raises(ValueError, match="class 12"):
        binary_subset(digits, 0, 12)
