import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustrl.estimators import (
    RTMLMC,
    Linearized,
    SAA,
    SG,
    check_eta,
    check_rho,
    entropic_risk,
    entropic_softmin,
    make_estimator,
    perturb,
    sample_unit_ball,
    sample_worst_case,
)


def linear_box_closed_form(a: np.ndarray, x: np.ndarray, rho: float, eta: float) -> float:
    c = a * rho / eta
    return float(a @ x + np.sum(eta * np.log(np.sinh(c) / c)))


def test_entropic_risk_matches_logsumexp_definition():
    v = torch.tensor([[0.3, -1.2, 2.0, 0.7]], dtype=torch.float64)
    eta = 0.7
    expected = eta * (torch.logsumexp(v / eta, dim=1) - math.log(4))
    torch.testing.assert_close(entropic_risk(v, eta), expected)


def test_limits_mean_and_max_without_nan():
    v = torch.tensor([[1.0, 2.0, 6.0], [-3.0, 0.0, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(entropic_risk(v, math.inf), v.mean(1))
    torch.testing.assert_close(entropic_risk(v, 0.0), v.amax(1))
    torch.testing.assert_close(entropic_softmin(v, 0.0), v.amin(1))
    torch.testing.assert_close(entropic_softmin(v, math.inf), v.mean(1))
    # Approaching the limits continuously, no NaN and no overflow.
    torch.testing.assert_close(entropic_risk(v, 1e-12), v.amax(1))
    torch.testing.assert_close(entropic_risk(v, 1e12), v.mean(1), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(entropic_softmin(v, 1e-300), v.amin(1))


def test_stable_for_huge_values_and_float32():
    v = torch.tensor([[1e30, 1e30 - 1e24, -1e30]], dtype=torch.float32)
    out = entropic_risk(v, 1e-3)
    assert torch.isfinite(out).all()
    assert out.item() == pytest.approx(1e30, rel=1e-6)
    big_eta = entropic_risk(torch.tensor([[1.0, 2.0]], dtype=torch.float32), 1e8)
    assert big_eta.item() == pytest.approx(1.5, abs=1e-5)


def test_gradient_is_softmax_weights_and_finite_at_limits():
    v = torch.tensor([[0.5, 1.5, -0.5]], dtype=torch.float64, requires_grad=True)
    entropic_risk(v, 0.5).sum().backward()
    torch.testing.assert_close(v.grad, torch.softmax(v.detach() / 0.5, dim=1))
    for eta in (1e-9, 1e9):
        w = v.detach().clone().requires_grad_(True)
        entropic_risk(w, eta).sum().backward()
        assert torch.isfinite(w.grad).all()
        assert w.grad.sum().item() == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20),
    st.floats(1e-6, 1e6),
)
def test_risk_between_mean_and_max(values, eta):
    v = torch.tensor([values], dtype=torch.float64)
    r = entropic_risk(v, eta).item()
    tol = 1e-9 * (1 + abs(v).max().item())
    assert v.mean().item() - tol <= r <= v.max().item() + tol


@pytest.mark.parametrize("eta", [-1.0, float("nan")])
def test_bad_eta_names_the_value(eta):
    with pytest.raises(ValueError, match="eta"):
        entropic_risk(torch.zeros(1, 3), eta)


@pytest.mark.parametrize("check, value, message", [
    (check_rho, True, "rho=True"), (check_rho, "abc", "rho='abc'"), (check_rho, "0.5", "rho='0.5'"),
    (check_rho, None, "rho=None"), (check_eta, "0.5", "eta='0.5'"), (check_eta, False, "eta=False"),
    (check_eta, [1.0], "eta=[1.0]"),
])
def test_rho_and_eta_must_be_numbers_not_bools_or_strings(check, value, message):
    with pytest.raises(ValueError) as err:
        check(value)
    assert message in str(err.value) and str(err.value).startswith(message.split("=")[0] + " must be")


def test_rho_and_eta_accept_python_and_numpy_numbers():
    assert check_rho(0) == 0.0 and check_rho(np.float32(0.25)) == 0.25
    assert type(check_rho(np.float64(1))) is float
    assert check_eta(math.inf) == math.inf and check_eta(np.int64(2)) == 2.0


def test_bad_arguments_raise_value_error():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="rho=-0.1"):
        perturb(x, -0.1, 4)
    with pytest.raises(ValueError, match="m=0"):
        perturb(x, 0.1, 0)
    with pytest.raises(ValueError, match="m=0"):
        SAA(0)
    with pytest.raises(ValueError, match="L=-1"):
        RTMLMC(-1)
    with pytest.raises(ValueError, match="L=-1"):
        SG(-1)
    with pytest.raises(ValueError, match="norm"):
        sample_unit_ball(3, 2, "l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'bogus'"):
        make_estimator("bogus")


def test_linf_sampler_range_and_scale():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([[1.0, -2.0, 0.0]])
    z = perturb(x, 0.5, 20000, norm="linf", scale=[1.0, 2.0, 0.1], generator=g)
    delta = (z - x.unsqueeze(1))[0]
    bound = torch.tensor([0.5, 1.0, 0.05])
    assert (delta.abs() <= bound).all()
    # Uniform on the box: each coordinate has variance (bound^2)/3.
    torch.testing.assert_close(delta.var(0), bound**2 / 3, rtol=0.05, atol=0.0)


@pytest.mark.parametrize("d", [1, 3, 10])
def test_l2_radius_law(d):
    g = torch.Generator().manual_seed(d)
    u = sample_unit_ball(40000, d, "l2", generator=g, dtype=torch.float64)
    r = u.norm(dim=1)
    assert (r <= 1 + 1e-12).all()
    for level in (0.5, 0.8, 0.95):
        assert (r <= level).double().mean().item() == pytest.approx(level**d, abs=0.01)
    # Direction is isotropic: the mean is zero.
    assert u.mean(0).abs().max().item() < 0.02


def test_clip_keeps_valid_range():
    x = torch.tensor([[0.0, 1.0, 0.5]])
    z = perturb(x, 0.3, 100, generator=torch.Generator().manual_seed(1), clip=(0.0, 1.0))
    assert z.min() >= 0 and z.max() <= 1


@pytest.mark.parametrize("eta", [0.05, 0.3, 2.0])
def test_saa_matches_closed_form_for_linear_loss_on_box(eta):
    a = np.array([1.0, -2.0, 0.5])
    x0 = np.array([0.2, 0.1, -0.3])
    rho = 0.4
    x = torch.tensor(np.stack([x0] * 64), dtype=torch.float64)
    at = torch.tensor(a)
    est = SAA(4096).estimate(
        lambda z: z @ at, x, rho=rho, eta=eta, generator=torch.Generator().manual_seed(0)
    )
    # SAA is biased low by O(1/m); averaged over 64 rows, the estimate is within 1% of the truth.
    assert est.mean().item() == pytest.approx(linear_box_closed_form(a, x0, rho, eta), rel=1e-2, abs=2e-3)


def test_saa_limits_mean_and_worst_case():
    a = torch.tensor([1.0, -1.0], dtype=torch.float64)
    x = torch.zeros(8, 2, dtype=torch.float64)
    rho = 0.5
    g = torch.Generator().manual_seed(3)
    mean_est = SAA(20000).estimate(lambda z: z @ a, x, rho=rho, eta=math.inf, generator=g)
    worst = SAA(20000).estimate(lambda z: z @ a, x, rho=rho, eta=0.0, generator=g)
    assert mean_est.abs().max().item() < 0.02  # the mean of a linear loss over a centred box is f(x)=0
    assert worst.min().item() == pytest.approx(rho * a.abs().sum().item(), abs=0.02)  # sup = rho*||a||_1


def test_rtmlmc_level_distribution_and_cost():
    est = RTMLMC(8)
    q = est.level_probabilities
    torch.testing.assert_close(q[1:] / q[:-1], torch.full((8,), 0.5, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    levels = np.array([est.draw_level(g) for _ in range(20000)])
    freqs = np.bincount(levels, minlength=9) / len(levels)
    np.testing.assert_allclose(freqs, q.numpy(), atol=0.01)
    # Expected samples per input grow linearly in L: (L+1)/(2 - 2^-L).
    assert est.expected_samples == pytest.approx(9 / (2 - 2**-8))
    assert est.expected_samples <= SG(8).expected_samples / 8


def test_rtmlmc_is_unbiased_for_sg_target():
    # f(z) = sin(3 z_1) + z_2^2: nonlinear so the SAA bias at small m is visible.
    def f(z):
        return torch.sin(3 * z[..., 0]) + z[..., 1] ** 2

    x = torch.tensor([[0.1, 0.2]], dtype=torch.float64)
    rho, eta, L = 0.8, 0.2, 4
    g = torch.Generator().manual_seed(1234)
    n = 40000
    xs = x.expand(n, 2)
    mlmc = torch.stack([RTMLMC(L).estimate(f, xs[:2000], rho=rho, eta=eta, generator=g) for _ in range(20)])
    sg = SG(L).estimate(f, xs, rho=rho, eta=eta, generator=g)
    sg_mean, sg_se = sg.mean().item(), sg.std().item() / math.sqrt(n)
    # Levels are drawn per call, so the unit of independence is a call (2000 rows each).
    per_call = mlmc.mean(1)
    ml_mean, ml_se = per_call.mean().item(), per_call.std().item() / math.sqrt(len(per_call))
    assert abs(ml_mean - sg_mean) < 4 * math.hypot(ml_se, sg_se)
    # The biased single-level SAA(1) target differs: the test can tell estimators apart.
    saa1 = SAA(1).estimate(f, xs, rho=rho, eta=eta, generator=g).mean().item()
    assert abs(saa1 - sg_mean) > 4 * math.hypot(ml_se, sg_se)


def test_rtmlmc_gradient_flows():
    w = torch.tensor([1.0, -0.5], requires_grad=True)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    out = RTMLMC(3).estimate(lambda z: (z * w).sum(-1) ** 2, x, rho=0.3, eta=0.5,
                             generator=torch.Generator().manual_seed(1))
    out.mean().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()


def test_same_generator_seed_same_numbers():
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    f = lambda z: z.pow(2).sum(-1)  # noqa: E731
    a = RTMLMC(3).estimate(f, x, rho=0.2, eta=0.1, generator=torch.Generator().manual_seed(7))
    b = RTMLMC(3).estimate(f, x, rho=0.2, eta=0.1, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b)


def test_worst_case_sampler_concentrates_where_loss_is_high():
    x = torch.zeros(1, 1, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    f = lambda z: z[..., 0] ** 2  # noqa: E731  # 1-D quadratic, data at 0, rho = 3
    cold = sample_worst_case(f, x, 5000, rho=3.0, eta=0.5, generator=g)
    flat = sample_worst_case(f, x, 5000, rho=3.0, eta=math.inf, generator=g)
    assert cold.shape == (1, 5000, 1)
    assert cold.abs().mean() > 2.5  # mass near the boundary |z| = 3
    assert flat.abs().mean().item() == pytest.approx(1.5, abs=0.1)  # uniform on [-3, 3]


def test_a_tensor_eta_is_one_temperature_per_group_and_must_be_positive():
    values = torch.randn(4, 16, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(entropic_risk(values, torch.full((4, 1, 3), 0.7), dim=1), entropic_risk(values, 0.7, dim=1))
    spread = values.amax(1, keepdim=True) - values.amin(1, keepdim=True)
    scaled = entropic_softmin(10.0 * values, 0.2 * 10.0 * spread, dim=1)
    torch.testing.assert_close(scaled, 10.0 * entropic_softmin(values, 0.2 * spread, dim=1))
    with pytest.raises(ValueError, match="finite temperatures > 0"):
        entropic_risk(values, torch.zeros(4, 1, 3), dim=1)


def test_antithetic_pairs_are_negated_directions_in_the_ball():
    x = torch.zeros(3, 4)
    z = perturb(x, 0.5, 6, scale=torch.tensor([1.0, 2.0, 1.0, 1.0]), generator=torch.Generator().manual_seed(0),
                antithetic=True)
    assert z.shape == (3, 6, 4)
    torch.testing.assert_close(z[:, 3:], -z[:, :3], rtol=0, atol=0)
    assert (z[..., 1].abs() <= 1.0).all() and (z[..., 0].abs() <= 0.5).all()
    assert len({tuple(row) for row in z[:, :3].reshape(-1, 4).tolist()}) == 9  # the halves are fresh draws
    with pytest.raises(ValueError, match="m must be even, got m=5"):
        perturb(x, 0.5, 5, antithetic=True)
    with pytest.raises(ValueError, match="m must be even, got m=3"):
        SAA(3, antithetic=True)


def test_antithetic_saa_is_exact_for_a_linear_f_in_the_mean_limit():
    # eta = inf: the mean of a linear f over antithetic pairs is f(x) exactly, whatever the draws
    a = torch.tensor([1.5, -2.0, 0.25])
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    estimate = SAA(4, antithetic=True).estimate(lambda z: z @ a, x, rho=0.3, eta=math.inf,
                                                generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(estimate, x @ a, rtol=0, atol=1e-6)
    plain = SAA(4).estimate(lambda z: z @ a, x, rho=0.3, eta=math.inf, generator=torch.Generator().manual_seed(2))
    assert (plain - x @ a).abs().max() > 1e-3  # independent draws do not cancel


@pytest.mark.parametrize("eta", [0.05, 0.3, 2.0])
def test_linearized_is_the_closed_form_for_a_linear_loss_on_a_box(eta):
    a = np.array([1.0, -2.0, 0.5])
    x0 = np.array([0.2, 0.1, -0.3])
    x = torch.tensor(np.stack([x0] * 3), dtype=torch.float64)
    estimate = Linearized().estimate(lambda z: z @ torch.tensor(a), x, rho=0.4, eta=eta)
    assert estimate.shape == (3,)
    np.testing.assert_allclose(estimate.numpy(), linear_box_closed_form(a, x0, 0.4, eta), rtol=1e-12)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_linearized_limits_are_f_at_the_centre_and_the_worst_case_of_the_linearization(norm):
    w = torch.tensor([[1.0, 0.5], [-2.0, 0.0], [0.5, -1.0]], dtype=torch.float64)  # two output columns
    scale = torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    worst = Linearized().estimate(lambda z: z @ w, x, rho=0.2, eta=0.0, norm=norm, scale=scale)
    scaled = 0.2 * (w * scale[:, None]).abs()
    expected = x @ w + (scaled.sum(0) if norm == "linf" else scaled.norm(dim=0))
    torch.testing.assert_close(worst, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(Linearized().estimate(lambda z: z @ w, x, rho=0.2, eta=math.inf, norm=norm), x @ w)
    torch.testing.assert_close(Linearized().estimate(lambda z: z @ w, x, rho=0.0, eta=0.3, norm=norm), x @ w)


@pytest.mark.parametrize("d", [1, 3, 10])
@pytest.mark.parametrize("eta", [0.02, 5.0])
def test_linearized_l2_matches_a_large_sample_of_the_ball_for_a_linear_loss(d, eta):
    a = torch.linspace(-1.0, 1.0, d, dtype=torch.float64) + 0.3
    x = torch.zeros(1, d, dtype=torch.float64)
    exact = Linearized().estimate(lambda z: z @ a, x, rho=0.5, eta=eta, norm="l2")
    z = perturb(x, 0.5, 400_000, norm="l2", generator=torch.Generator().manual_seed(0))
    sampled = entropic_risk(z @ a, eta, dim=1)
    # the sample's max falls short of the sup at small eta; within 2 % of the worst case either way
    assert exact.item() == pytest.approx(sampled.item(), abs=0.02 * 0.5 * a.norm().item())
    if d == 1:  # the l2 ball of one dimension is the interval: the same closed form as l-inf
        box = Linearized().estimate(lambda z: z @ a, x, rho=0.5, eta=eta, norm="linf")
        torch.testing.assert_close(exact, box, rtol=1e-9, atol=1e-12)


def test_linearized_is_exact_where_a_relu_network_stays_linear_and_differentiable_in_its_weights():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    f = lambda z: net(z)  # noqa: E731
    with torch.no_grad():
        tiny = Linearized().estimate(f, x, rho=1e-6, eta=1e-7)
    assert not tiny.requires_grad
    jac = torch.stack([torch.autograd.functional.jacobian(lambda v: net(v), row) for row in x])  # (5, 2, 3)
    expected = net(x) + 1e-7 * torch.log(torch.sinh(1e-6 * jac.abs() / 1e-7) / (1e-6 * jac.abs() / 1e-7)).sum(-1)
    torch.testing.assert_close(tiny, expected.detach(), rtol=1e-10, atol=1e-12)
    estimate = Linearized().estimate(f, x, rho=0.3, eta=0.1)  # with gradients on: differentiable in the weights
    estimate.sum().backward()
    first = net[0].weight.grad
    assert first is not None and torch.isfinite(first).all() and first.abs().sum() > 0
    net.zero_grad()
    net(x).sum().backward()
    assert not torch.allclose(first, net[0].weight.grad)  # the bonus's gradient (through the input gradient) counts


def test_linearized_refuses_a_sampler_and_a_clip_and_is_made_by_name():
    f = lambda z: z.sum(-1)  # noqa: E731
    with pytest.raises(ValueError, match="takes no sampler"):
        Linearized().estimate(f, torch.zeros(2, 3), rho=0.1, eta=1.0, sampler=lambda x, m, g: x.unsqueeze(1))
    with pytest.raises(ValueError, match=r"clip=\(0.0, 1.0\)"):
        Linearized().estimate(f, torch.zeros(2, 3), rho=0.1, eta=1.0, clip=(0.0, 1.0))
    with pytest.raises(ValueError, match="eta=-1.0"):
        Linearized().estimate(f, torch.zeros(2, 3), rho=0.1, eta=-1.0)
    assert isinstance(make_estimator("linear"), Linearized) and make_estimator("linear").expected_samples == 1
