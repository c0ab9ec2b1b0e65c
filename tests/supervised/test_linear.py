import itertools

import pytest
import torch

from robustrl.supervised.linear import (
    adversarial_logistic_loss,
    binary_subset,
    dual_norm,
    error_rate,
    train_logistic,
    worst_case,
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


# ---- l2 and l1 attacks (dual norms l2 and l-inf), with and without the [0, 1] box ----------------------

softplus = torch.nn.functional.softplus


def _problem(d, seed, n=6, dtype=torch.float64):
    """A float64 model with a random weight and bias, inputs in [0, 1] (some exactly on the box faces)."""
    gen = torch.Generator().manual_seed(seed)
    model = BinaryLogistic(d).to(dtype)
    with torch.no_grad():
        model.linear.weight.copy_(torch.randn(1, d, generator=gen, dtype=dtype))
        model.linear.bias.fill_(0.2)
    x = torch.rand(n, d, generator=gen, dtype=dtype)
    x[0, 0], x[1, -1] = 0.0, 1.0
    y = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).to(dtype)
    return model, x, y, gen


def _loss_at(model, y, z):
    """Logistic loss of candidates ``z`` of shape (n, m, d) for labels ``y`` of shape (n,): shape (n, m)."""
    with torch.no_grad():
        scores = model(z.reshape(-1, z.shape[-1])).view(z.shape[0], z.shape[1])
    return softplus(-y[:, None] * scores)


def _loss(model, y, z):
    with torch.no_grad():
        return softplus(-y * model(z))


def _size(delta, norm):
    return {"linf": delta.abs().amax(-1), "l2": delta.norm(dim=-1), "l1": delta.abs().sum(-1)}[norm]


def _in_ball_box(z, x, eps, norm, clip):
    assert (_size(z - x, norm) <= eps * (1 + 1e-9) + 1e-12).all()
    if clip:
        assert ((z >= 0) & (z <= 1)).all()


def _attained_closed_form(model, x, y, eps, norm):
    """The closed-form worst-case loss, after checking that ``worst_case``'s point lies in the ball and attains it."""
    closed = adversarial_logistic_loss(model, x, y, eps, norm)
    point = worst_case(model, x, y, eps, norm)
    _in_ball_box(point, x, eps, norm, clip=False)
    torch.testing.assert_close(_loss(model, y, point), closed, rtol=1e-12, atol=1e-12)
    return closed


def _ascent(model, x, y, eps, starts=8, steps=50, seed=0):
    """Projected gradient ascent of the logistic loss on the l2 ball from random starts (no closed form)."""
    gen = torch.Generator().manual_seed(seed)
    delta = eps * torch.randn(len(x), starts, x.shape[1], generator=gen, dtype=x.dtype) / 4
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = softplus(-y[:, None] * model((x[:, None] + delta).reshape(-1, x.shape[1])).view(len(x), -1))
        (grad,) = torch.autograd.grad(loss.sum(), delta)
        with torch.no_grad():
            delta = delta + 0.5 * eps * grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-30)
            delta = delta * (eps / delta.norm(dim=-1, keepdim=True).clamp(min=eps))
    return _loss_at(model, y, x[:, None] + delta.detach()).amax(1)


@pytest.mark.parametrize("d", [2, 3, 4])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.7])
def test_l1_closed_form_equals_vertex_brute_force(d, eps):
    """The l1 ball is the convex hull of its 2d vertices +-eps e_j: a linear objective peaks at one of them."""
    model, x, y, gen = _problem(d, seed=d)
    closed = _attained_closed_form(model, x, y, eps, "l1")
    vertices = eps * torch.cat([torch.eye(d), -torch.eye(d)]).to(x.dtype)
    torch.testing.assert_close(_loss_at(model, y, x[:, None] + vertices[None]).amax(1), closed,
                               rtol=1e-12, atol=1e-12)
    signs = torch.where(torch.rand(len(x), 2000, d, generator=gen, dtype=x.dtype) > 0.5, 1.0, -1.0)
    weights = -torch.log(torch.rand(len(x), 2000, d + 1, generator=gen, dtype=x.dtype))  # uniform simplex
    inside = eps * signs * (weights / weights.sum(-1, keepdim=True))[..., :d]
    assert (_loss_at(model, y, x[:, None] + inside).amax(1) <= closed + 1e-12).all()


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.7])
def test_l2_closed_form_equals_dense_circle_in_2d(eps):
    model, x, y, _ = _problem(2, seed=1)
    closed = _attained_closed_form(model, x, y, eps, "l2")
    angle = torch.linspace(0, 2 * torch.pi, 20001, dtype=x.dtype)[:-1]
    circle = eps * torch.stack([angle.cos(), angle.sin()], 1)
    on_circle = _loss_at(model, y, x[:, None] + circle[None]).amax(1)
    assert (on_circle <= closed + 1e-12).all()
    torch.testing.assert_close(on_circle, closed, rtol=0, atol=1e-6)  # the grid step is 3e-4 rad


@pytest.mark.parametrize("d", [3, 4])
@pytest.mark.parametrize("eps", [0.1, 0.7])
def test_l2_closed_form_beats_random_points_and_gradient_ascent(d, eps):
    model, x, y, gen = _problem(d, seed=d)
    closed = _attained_closed_form(model, x, y, eps, "l2")
    direction = torch.randn(len(x), 4000, d, generator=gen, dtype=x.dtype)
    radius = eps * torch.rand(len(x), 4000, 1, generator=gen, dtype=x.dtype) ** (1 / d)
    ball = radius * direction / direction.norm(dim=-1, keepdim=True)
    assert (_loss_at(model, y, x[:, None] + ball).amax(1) <= closed + 1e-12).all()
    ascent = _ascent(model, x, y, eps)
    assert (ascent <= closed + 1e-12).all()
    torch.testing.assert_close(ascent, closed, rtol=0, atol=1e-9)


def _linprog_box(w, x, eps, norm):
    """max w^T delta s.t. ||delta||_p <= eps (p = 1 or inf), 0 <= x + delta <= 1, by scipy's LP solver."""
    optimize = pytest.importorskip("scipy.optimize")
    import numpy as np

    d = len(w)
    if norm == "linf":
        res = optimize.linprog(-w, bounds=[(max(-eps, -xi), min(eps, 1 - xi)) for xi in x], method="highs")
        return -res.fun
    # delta = p - q with p, q >= 0, sum(p + q) <= eps
    c = np.concatenate([-w, w])
    bounds = [(0, 1 - xi) for xi in x] + [(0, xi) for xi in x]
    res = optimize.linprog(c, A_ub=np.ones((1, 2 * d)), b_ub=[eps], bounds=bounds, method="highs")
    assert res.status == 0
    return -res.fun


def _slsqp_box(w, x, eps):
    """max w^T delta s.t. ||delta||_2 <= eps, 0 <= x + delta <= 1, by SLSQP from a few starts."""
    optimize = pytest.importorskip("scipy.optimize")
    import numpy as np

    best = 0.0  # delta = 0 is feasible
    for start in (np.zeros_like(x), 0.5 - x, np.clip(x + eps * w / np.linalg.norm(w), 0, 1) - x):
        res = optimize.minimize(lambda v: -w @ v, start, jac=lambda v: -w, method="SLSQP",
                                bounds=[(-xi, 1 - xi) for xi in x],
                                constraints=[{"type": "ineq", "fun": lambda v: eps**2 - v @ v,
                                              "jac": lambda v: -2 * v}],
                                options={"ftol": 1e-12, "maxiter": 200})
        v = res.x
        if v @ v <= eps**2 * (1 + 1e-7) and ((x + v >= -1e-9) & (x + v <= 1 + 1e-9)).all():
            best = max(best, -res.fun)
    return best


@pytest.mark.parametrize("norm", ["linf", "l1", "l2"])
@pytest.mark.parametrize("d", [2, 3, 4])
@pytest.mark.parametrize("eps", [0.0, 0.3, 1.0, 3.0])
def test_clipped_maximiser_solves_the_box_problem_exactly(norm, d, eps):
    """With clip=True the point maximises -y theta^T delta over ball and box, checked against a solver."""
    model, x, y, _ = _problem(d, seed=10 * d + int(10 * eps))
    point = worst_case(model, x, y, eps, norm, clip=True)
    _in_ball_box(point, x, eps, norm, clip=True)
    theta = model.linear.weight.detach().squeeze(0)
    gain = (-y[:, None] * theta[None] * (point - x)).sum(1)
    if eps == 0:
        assert torch.equal(point, x)
        return
    for i in range(len(x)):
        w, xi = (-y[i] * theta).numpy(), x[i].numpy()
        best = _slsqp_box(w, xi, eps) if norm == "l2" else _linprog_box(w, xi, eps, norm)
        assert float(gain[i]) >= best - (1e-6 if norm == "l2" else 1e-9), (i, float(gain[i]), best)
        assert float(gain[i]) <= best + 1e-6
    unclipped = worst_case(model, x, y, eps, norm)
    assert (_loss(model, y, point) <= _loss(model, y, unclipped) + 1e-12).all()


@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("eps", [0.05, 0.3, 0.8])
def test_clipped_maximiser_beats_a_grid_over_ball_and_box_in_2d(norm, eps):
    model, x, y, _ = _problem(2, seed=7, n=8)
    x[2] = torch.tensor([0.97, 0.02], dtype=x.dtype)  # a corner: the box cuts the ball
    point = worst_case(model, x, y, eps, norm, clip=True)
    _in_ball_box(point, x, eps, norm, clip=True)
    at_point = _loss(model, y, point)
    ticks = torch.linspace(0, 1, 201, dtype=x.dtype)
    grid = torch.cartesian_prod(ticks, ticks)
    inside = _size(grid[None] - x[:, None], norm) <= eps  # (n, m)
    losses = _loss_at(model, y, grid[None].expand(len(x), -1, -1)).masked_fill(~inside, -torch.inf)
    grid_best = torch.maximum(losses.amax(1), _loss(model, y, x))
    assert (grid_best <= at_point + 1e-12).all()
    slope = model.linear.weight.detach().norm()
    assert (grid_best >= at_point - 4 * slope / 200).all()  # the grid comes within a few steps of the point


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_closed_form_is_the_dual_norm(norm):
    model, x, y, _ = _problem(5, seed=3)
    theta = model.linear.weight.detach().squeeze(0)
    dual = {"linf": theta.abs().sum(), "l2": theta.norm(), "l1": theta.abs().max()}[norm]
    with torch.no_grad():
        expected = softplus(-y * model(x) + 0.4 * dual)
    torch.testing.assert_close(adversarial_logistic_loss(model, x, y, 0.4, norm), expected)
    torch.testing.assert_close(dual_norm(theta, norm), dual)


def test_worst_case_linf_is_worst_case_with_linf():
    model, x, y, _ = _problem(4, seed=2, dtype=torch.float32)
    for clip in (False, True):
        assert torch.equal(worst_case_linf(model, x, y, 0.2, clip), worst_case(model, x, y, 0.2, "linf", clip))
    assert torch.equal(adversarial_logistic_loss(model, x, y, 0.2),
                       adversarial_logistic_loss(model, x, y, 0.2, "linf"))
    assert worst_case(model, x, y, 0.2, "l2", clip=True).dtype == torch.float32


@pytest.mark.parametrize("norm", ["l2", "l1"])
@pytest.mark.parametrize("clip", [False, True])
def test_zero_weight_leaves_inputs_alone(norm, clip):
    model, x, y, _ = _problem(3, seed=4)
    with torch.no_grad():
        model.linear.weight.zero_()
    assert torch.equal(worst_case(model, x, y, 0.5, norm, clip), x)


def test_unknown_norm_is_named():
    model, x, y, _ = _problem(2, seed=0, dtype=torch.float32)
    for call in (lambda: adversarial_logistic_loss(model, x, y, 0.1, "l3"),
                 lambda: worst_case(model, x, y, 0.1, "l3"),
                 lambda: error_rate(model, x, y, 0.1, norm="l3"),
                 lambda: error_rate(model, x, y, 0.0, norm="l3"),
                 lambda: train_logistic(x, y, 0.1, norm="l3"),
                 lambda: dual_norm(model.linear.weight, "l3")):
        with pytest.raises(ValueError, match="'l3'"):
            call()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        worst_case(model, x + 2, y, 0.1, "l2", clip=True)
    with pytest.raises(ValueError, match="eps=-1"):
        error_rate(model, x, y, -1.0)


def _synthetic(n, seed, d=10):
    """Separable: coordinate 0 is 0.5 +- 0.3 (+- 0.1) by class, the other coordinates are uniform noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)
    x = torch.rand(n, d, generator=gen)
    x[:, 0] = 0.5 + 0.3 * y + 0.1 * (2 * torch.rand(n, generator=gen) - 1)
    return x, y


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_adversarial_training_is_more_robust_in_its_norm(norm):
    x, y = _synthetic(100, seed=0)
    x_test, y_test = _synthetic(2000, seed=1)
    eps = 0.15
    sgd = dict(epochs=100, lr=5.0, batch_size=100)  # full batch
    std = train_logistic(x, y, 0.0, **sgd)
    rob = train_logistic(x, y, eps, norm=norm, **sgd)
    assert error_rate(std, x_test, y_test) == 0.0
    with torch.no_grad():
        assert (adversarial_logistic_loss(rob, x, y, eps, norm).mean()
                < adversarial_logistic_loss(std, x, y, eps, norm).mean())
    robust_err = error_rate(rob, x_test, y_test, eps, norm=norm)
    assert robust_err < error_rate(std, x_test, y_test, eps, norm=norm) - 0.005
    assert robust_err == error_rate(rob, x_test, y_test, eps, True, norm=norm)  # the box is not active here
