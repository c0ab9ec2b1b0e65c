"""Entropic risk, ball samplers and the SAA / SG / RT-MLMC / linearized estimators.

This module is the single home of the formula both halves of robustrl use
(Wang, Gao, Xie, "Regularization for Adversarial Robust Learning", arXiv:2408.09672):

    F(x) = eta * log E_{z ~ Uniform(B_rho(x))} exp(f(z) / eta)

It depends on torch only (no gym, no SB3). Shapes: an input batch ``x`` has shape ``(B, *feat)``;
perturbations have shape ``(B, m, *feat)``; a function ``f`` passed to an estimator maps
``(B, m, *feat)`` to ``(B, m, *rest)`` and the estimate has shape ``(B, *rest)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from robustrl.checks import NORMS, check_int, check_option, is_number

__all__ = [
    "NORMS",
    "Norm",
    "Estimator",
    "SAA",
    "SG",
    "RTMLMC",
    "Linearized",
    "entropic_risk",
    "entropic_softmin",
    "make_estimator",
    "perturb",
    "sample_unit_ball",
    "sample_worst_case",
    "check_eta",
    "check_norm",
    "check_rho",
]

Norm = Literal["linf", "l2"]
ESTIMATORS: tuple[str, ...] = ("saa", "sg", "mlmc", "linear")


def _shown(value: object) -> object:
    """How a checked value appears in a message: a number as a float, anything else as given."""
    return float(value) if is_number(value) else value


def check_eta(eta: float) -> float:
    """Validate a temperature: a number (not a bool or a string) in ``[0, inf]`` (0 = hard max, inf = plain
    mean); else ``ValueError`` naming the value."""
    if not is_number(eta) or math.isnan(eta) or eta < 0:
        raise ValueError("eta must be in [0, inf] (0 = hard worst case, inf = plain mean), "
                         f"got eta={_shown(eta)!r}")
    return float(eta)


def check_rho(rho: float) -> float:
    """Validate a ball radius: a number (not a bool or a string), finite and ``>= 0``; else ``ValueError``
    naming the value."""
    if not is_number(rho) or not math.isfinite(rho) or rho < 0:
        raise ValueError(f"rho must be finite and >= 0, got rho={_shown(rho)!r}")
    return float(rho)


def check_norm(norm: str) -> str:
    """Validate a ball's norm: one of :data:`NORMS`."""
    return check_option(norm, NORMS, "norm")


def entropic_risk(values: Tensor, eta: float | Tensor, dim: int = -1) -> Tensor:
    """Entropic risk ``R_eta(v) = eta * (logsumexp(v / eta) - log m)`` over ``dim``.

    ``eta = inf`` gives the plain mean and ``eta = 0`` the plain max, with no NaN on the way: the
    values are shifted by their (detached) maximum and ``logsumexp(d) - log m`` is evaluated as
    ``log1p(mean(expm1(d)))``, which is the same quantity without the cancellation that
    ``logsumexp(d) - log m`` suffers when ``eta`` is huge and ``d`` tiny. Differentiable in ``values``.
    ``eta`` may also be a tensor of finite temperatures > 0, one per reduced group (its shape broadcasts
    against ``values`` with ``dim`` of size 1), e.g. a temperature relative to each group's spread.
    Wang, Gao, Xie (arXiv:2408.09672), eq. (entropic regularization).
    """
    if isinstance(eta, Tensor):
        if eta.numel() and not (torch.isfinite(eta) & (eta > 0)).all():
            raise ValueError("a tensor eta must hold finite temperatures > 0 (use a number for 0 or inf)")
        vmax = values.amax(dim, keepdim=True).detach()
        eta = eta.expand_as(vmax)
        shifted = (values - vmax) / eta
        return (vmax + eta * torch.log1p(torch.expm1(shifted).mean(dim, keepdim=True))).squeeze(dim).to(values.dtype)
    eta = check_eta(eta)
    if math.isinf(eta):
        return values.mean(dim)
    vmax = values.amax(dim, keepdim=True)
    if eta == 0:
        return vmax.squeeze(dim)
    vmax = vmax.detach()
    shifted = (values - vmax) / eta
    return (vmax.squeeze(dim) + eta * torch.log1p(torch.expm1(shifted).mean(dim))).to(values.dtype)


def entropic_softmin(values: Tensor, eta: float | Tensor, dim: int = -1) -> Tensor:
    """Soft-min twin ``S_eta(v) = -R_eta(-v)``: the mean at ``eta = inf``, the min at ``eta = 0``."""
    return -entropic_risk(-values, eta, dim)


def sample_unit_ball(
    n: int,
    shape: Sequence[int] | int,
    norm: Norm = "linf",
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``n`` points uniform in the unit ball of ``norm``, each of feature shape ``shape``.

    linf: each coordinate U(-1, 1). l2 (over the flattened features, dimension d): a Gaussian direction
    ``g / ||g||`` times a radius ``U^(1/d)``, so that ``P(||u|| <= r) = r^d``.
    """
    check_norm(norm)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    d = math.prod(shape)
    if norm == "linf":
        u = torch.rand((n, d), generator=generator, device=device, dtype=dtype) * 2 - 1
    else:
        g = torch.randn((n, d), generator=generator, device=device, dtype=dtype)
        radius = torch.rand((n, 1), generator=generator, device=device, dtype=dtype) ** (1.0 / d)
        u = g / g.norm(dim=1, keepdim=True).clamp_min(torch.finfo(dtype).tiny) * radius
    return u.view(n, *shape)


def perturb(
    x: Tensor,
    rho: float,
    m: int,
    *,
    norm: Norm = "linf",
    scale: Tensor | Sequence[float] | None = None,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
    antithetic: bool = False,
) -> Tensor:
    """``m`` perturbations ``z = x + rho * scale * u`` of each row of ``x`` (shape ``(B, *feat)``).

    Returns shape ``(B, m, *feat)``. ``scale`` is a per-feature scale broadcast against ``*feat``
    (default all ones); ``clip=(lo, hi)`` clamps the result to a valid input range (images in [0, 1]).
    With ``antithetic`` (``m`` even) the second half of each row's directions are the first half negated,
    ``u_{j + m/2} = -u_j``: each ``u`` is still uniform in the ball (it is symmetric), and the pairs cancel the
    linear part of ``f`` in the sample, which lowers the variance of the estimate for a nearly linear ``f``.
    """
    rho = check_rho(rho)
    check_int(m, "m", 1)
    if antithetic and m % 2:
        raise ValueError(f"antithetic perturbations come in pairs: m must be even, got m={m}")
    batch, feat = x.shape[0], tuple(x.shape[1:])
    draws = m // 2 if antithetic else m
    u = sample_unit_ball(batch * draws, feat, norm, generator=generator, device=x.device, dtype=x.dtype)
    u = u.view(batch, draws, *feat)
    if antithetic:
        u = torch.cat([u, -u], dim=1)
    delta = rho * u
    if scale is not None:
        delta = delta * torch.as_tensor(scale, dtype=x.dtype, device=x.device)
    z = x.unsqueeze(1) + delta
    return z.clamp(*clip) if clip is not None else z


class Estimator:
    """Base class: estimate ``F(x) = eta log E exp(f(z)/eta)`` for each row of ``x``.

    Subclasses implement :meth:`estimate`; ``expected_samples`` is the mean number of evaluations of
    ``f`` per input, the cost measure of the paper's complexity comparison.
    """

    expected_samples: float

    def estimate(
        self,
        f: Callable[[Tensor], Tensor],
        x: Tensor,
        *,
        rho: float,
        eta: float,
        norm: Norm = "linf",
        scale: Tensor | Sequence[float] | None = None,
        generator: torch.Generator | None = None,
        clip: tuple[float, float] | None = None,
        sampler: Callable[[Tensor, int, torch.Generator | None], Tensor] | None = None,
    ) -> Tensor:
        """Return the estimate, shape ``(B, *rest)``; ``f`` maps ``(B, m, *feat)`` to ``(B, m, *rest)``.

        The m points of each input are drawn uniformly in the ball (:func:`perturb`), or by ``sampler(x, m,
        generator) -> (B, m, *feat)`` when it is given (e.g. the neighbours of a discrete state drawn from a
        kernel, :mod:`robustrl.tabular`); ``rho``, ``norm``, ``scale`` and ``clip`` are then unused."""
        raise NotImplementedError

    def __call__(self, f: Callable[[Tensor], Tensor], x: Tensor, **kwargs: object) -> Tensor:
        return self.estimate(f, x, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SAA(Estimator):
    """Sample average approximation: ``R_eta`` over ``m`` uniform perturbations per input.

    Biased for ``F`` (bias O(1/m)); its gradient is the gradient of the SAA objective. With ``antithetic``
    the m samples are m/2 antithetic pairs (:func:`perturb`).
    """

    m: int = 16
    antithetic: bool = False

    def __post_init__(self) -> None:
        check_int(self.m, "m", 1)
        if not isinstance(self.antithetic, bool):
            raise ValueError(f"antithetic must be True or False, got antithetic={self.antithetic!r}")
        if self.antithetic and self.m % 2:
            raise ValueError(f"antithetic perturbations come in pairs: m must be even, got m={self.m}")

    @property
    def expected_samples(self) -> float:  # type: ignore[override]
        return float(self.m)

    def estimate(self, f, x, *, rho, eta, norm="linf", scale=None, generator=None, clip=None,  # noqa: D102
                 sampler=None):
        check_eta(eta)
        if sampler is not None:
            return entropic_risk(f(sampler(x, self.m, generator)), eta, dim=1)
        z = perturb(x, rho, self.m, norm=norm, scale=scale, generator=generator, clip=clip,
                    antithetic=self.antithetic)
        return entropic_risk(f(z), eta, dim=1)


@dataclass(frozen=True)
class SG(Estimator):
    """Sampled gradient SG(L): SAA with ``m = 2^L`` samples (bias O(2^-L), cost O(2^L) per input)."""

    L: int = 4

    def __post_init__(self) -> None:
        check_int(self.L, "L", 0)

    @property
    def expected_samples(self) -> float:  # type: ignore[override]
        return float(2**self.L)

    def estimate(self, f, x, *, rho, eta, norm="linf", scale=None, generator=None, clip=None,  # noqa: D102
                 sampler=None):
        return SAA(2**self.L).estimate(
            f, x, rho=rho, eta=eta, norm=norm, scale=scale, generator=generator, clip=clip, sampler=sampler
        )


@dataclass(frozen=True)
class RTMLMC(Estimator):
    """Randomized-truncation multilevel Monte Carlo RT-MLMC(L).

    Draws one level ``l`` in ``{0..L}`` per call with explicit probabilities ``q_l ∝ 2^-l``, draws
    ``2^l`` samples per input and returns ``Delta_l / q_l`` with ``Delta_0 = U(z_1)`` and, for
    ``l >= 1``, ``Delta_l = U(z_{1:2^l}) - U(z_{1:2^(l-1)})/2 - U(z_{2^(l-1)+1:2^l})/2`` (U = R_eta).
    Unbiased for the SG(L) target ``F^L`` and its gradient, at expected cost O(L) per input.
    Levels are drawn from ``generator`` (so runs are reproducible). Wang, Gao, Xie (arXiv:2408.09672);
    the randomized-truncation construction is that of Blanchet & Glynn and Hu, Chen, He (2021).
    """

    L: int = 4

    def __post_init__(self) -> None:
        check_int(self.L, "L", 0)

    @property
    def level_probabilities(self) -> Tensor:
        """``q_l ∝ 2^-l`` for ``l = 0..L`` (float64, sums to one)."""
        w = torch.tensor([2.0**-level for level in range(self.L + 1)], dtype=torch.float64)
        return w / w.sum()

    @property
    def expected_samples(self) -> float:  # type: ignore[override]
        q = self.level_probabilities
        return float(sum(q[level] * 2**level for level in range(self.L + 1)))

    def draw_level(self, generator: torch.Generator | None = None) -> int:
        """One level from ``q`` (multinomial with explicit probabilities, never uniform)."""
        return int(torch.multinomial(self.level_probabilities, 1, generator=generator).item())

    def estimate(self, f, x, *, rho, eta, norm="linf", scale=None, generator=None, clip=None,  # noqa: D102
                 sampler=None):
        check_eta(eta)
        level = self.draw_level(generator)
        q = float(self.level_probabilities[level])
        z = (sampler(x, 2**level, generator) if sampler is not None
             else perturb(x, rho, 2**level, norm=norm, scale=scale, generator=generator, clip=clip))
        values = f(z)
        delta = entropic_risk(values, eta, dim=1)
        if level > 0:
            half = 2 ** (level - 1)
            delta = delta - 0.5 * entropic_risk(values[:, :half], eta, dim=1)
            delta = delta - 0.5 * entropic_risk(values[:, half:], eta, dim=1)
        return delta / q


def _log_sinhc(a: Tensor) -> Tensor:
    """``log(sinh(a) / a)`` for ``a >= 0``, without overflow for large ``a`` or cancellation near 0 (float64)."""
    small = a < 1e-2
    big = a.clamp_min(1e-2)
    large_branch = big + torch.log1p(-torch.exp(-2 * big)) - math.log(2.0) - torch.log(big)
    return torch.where(small, a * a / 6 - a**4 / 180, large_branch)


#: Gauss-Legendre nodes of :func:`_log_mgf_ball` on [0, pi] (the integrand is analytic in the angle)
_BALL_NODES = 256


@functools.cache
def _ball_quadrature() -> tuple[Tensor, Tensor]:
    """The Gauss-Legendre angles on [0, pi] and the logs of their weights (float64), computed once."""
    import numpy as np

    nodes, weights = np.polynomial.legendre.leggauss(_BALL_NODES)
    return (torch.as_tensor((nodes + 1) * (math.pi / 2), dtype=torch.float64),
            torch.as_tensor(np.log(weights), dtype=torch.float64))


def _log_mgf_ball(t: Tensor, d: int) -> Tensor:
    """``log E exp(t u_1)`` for ``u`` uniform in the unit l2 ball of dimension ``d`` and ``t >= 0`` (float64).

    ``u_1`` has density proportional to ``(1 - u^2)^((d - 1) / 2)`` on [-1, 1]; with ``u = cos(theta)`` the
    expectation is ``int exp(t cos theta) sin^d theta / int sin^d theta`` over [0, pi], by Gauss-Legendre
    quadrature on :data:`_BALL_NODES` angles (accurate to ~1e-12 for ``t`` up to a few hundred; beyond, where
    only a small ``eta`` takes it, the log's error stays O(1) and is multiplied by that ``eta``). Below
    ``t = 0.05`` the cumulant series ``t^2 / (2 (d + 2)) - t^4 / (4 (d + 2)^2 (d + 4))`` is used (variance
    ``1/(d+2)``, fourth cumulant ``-6/((d+2)^2 (d+4))``). For ``d = 1`` this is :func:`_log_sinhc`.
    """
    nodes, log_weights = _ball_quadrature()
    theta = nodes.to(t.device)
    log_weight = log_weights.to(t.device) + d * torch.log(torch.sin(theta))
    quadrature = (torch.logsumexp(t.unsqueeze(-1) * torch.cos(theta) + log_weight, dim=-1)
                  - torch.logsumexp(log_weight, dim=-1))
    series = t * t / (2 * (d + 2)) - t**4 / (4 * (d + 2) ** 2 * (d + 4))
    return torch.where(t < 0.05, series, quadrature)


@dataclass(frozen=True)
class Linearized(Estimator):
    """First-order estimator: ``F(x)`` of the linearization ``f(x) + grad f(x) . (z - x)`` of ``f`` at ``x``, in
    closed form, from one evaluation of ``f`` and one gradient per output column (no sampling).

    For a linear ``f`` the entropic risk over the ball is exact: with ``c = rho * scale * grad f(x)`` (per feature),
    ``F(x) = f(x) + eta * sum_i log(sinh(|c_i|/eta) / (|c_i|/eta))`` for the l-inf ball (independent coordinates) and
    ``f(x) + eta * log E exp(||c|| u_1 / eta)`` for the l2 ball (:func:`_log_mgf_ball`). Its limits are exact too:
    ``eta = inf`` gives ``f(x)`` (the mean of a linear function over the ball) and ``eta = 0`` gives
    ``f(x) + ||c||_1`` (l-inf) or ``f(x) + ||c||_2`` (l2), the worst case of the linearization. For a ReLU network
    ``f`` is piecewise linear and the estimate is exact while the ball stays in one linear region; otherwise it
    misses the curvature (it is a deterministic approximation, not an unbiased estimator). The cost that does not
    grow with m is what it buys (``expected_samples`` 1, plus one backward pass per output column).

    ``f`` must act on each row of ``x`` separately (no batch statistics), since the gradient is taken of the sum
    over rows, and be a pure function of its input for :func:`torch.func.vjp` (no in-place change of captured
    tensors). The input gradient is taken even under ``torch.no_grad()`` (the estimate is then detached); with
    gradients enabled the estimate is differentiable in whatever ``f`` closes over, through the input gradient
    too. ``generator`` is unused; ``clip`` and ``sampler`` are refused (the closed form needs the whole ball).
    """

    #: eta in units of the linearization's spread over the ball, ``max - min = 2 ||c||`` (l1 norm for l-inf, l2
    #: for l2), per row and column: a scale-free temperature, as ``eta_scale="spread"`` of the robust agents
    relative: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.relative, bool):
            raise ValueError(f"relative must be True or False, got relative={self.relative!r}")

    @property
    def expected_samples(self) -> float:  # type: ignore[override]
        return 1.0

    def estimate(self, f, x, *, rho, eta, norm="linf", scale=None, generator=None, clip=None,  # noqa: D102
                 sampler=None):
        eta, rho = check_eta(eta), check_rho(rho)
        check_norm(norm)
        if sampler is not None:
            raise ValueError("the linearized estimator integrates over the ball in closed form: it takes no sampler "
                             "(use estimator 'saa' or 'mlmc' with a custom sampler)")
        if clip is not None:
            raise ValueError(f"the linearized estimator cannot clip its ball, got clip={clip!r} "
                             "(use estimator 'saa' or 'mlmc')")
        differentiable = torch.is_grad_enabled()
        if differentiable:  # the input gradient differentiable in whatever f closes over
            values, input_gradient = torch.func.vjp(f, x.unsqueeze(1))
        else:  # the same numbers by plain autograd, which is faster; nothing is kept
            with torch.enable_grad():
                z = x.detach().unsqueeze(1).requires_grad_(True)
                values = f(z)

            def input_gradient(cotangent: Tensor) -> tuple[Tensor, ...]:
                with torch.enable_grad():
                    return torch.autograd.grad(values, z, cotangent, retain_graph=True)

        batch, rest = values.shape[0], tuple(values.shape[2:])
        if rho == 0 or math.isinf(eta):  # the ball's mean of a linear function, or no ball: f(x)
            result = values.reshape(batch, *rest)
            return result if differentiable else result.detach()
        columns = values.reshape(batch, -1)
        d = math.prod(x.shape[1:])
        weight = (torch.ones(d, dtype=torch.float64, device=x.device) if scale is None else
                  torch.as_tensor(scale, dtype=torch.float64, device=x.device).expand(*x.shape[1:]).reshape(d))
        estimates = []
        for j in range(columns.shape[1]):
            value = columns[:, j]
            cotangent = torch.zeros_like(columns)
            cotangent[:, j] = 1
            (grad,) = input_gradient(cotangent.view_as(values))
            c = rho * grad.reshape(batch, d).double().abs() * weight
            size = c.sum(-1) if norm == "linf" else c.norm(dim=-1)
            if eta == 0:
                bonus = size
            else:
                temperature = (eta * 2 * size.clamp_min(torch.finfo(torch.float64).tiny) if self.relative
                               else torch.full_like(size, eta))
                if norm == "linf":
                    bonus = temperature * _log_sinhc(c / temperature.unsqueeze(-1)).sum(-1)
                else:
                    bonus = temperature * _log_mgf_ball(size / temperature, d)
            estimates.append(value + bonus.to(value.dtype))
        result = torch.stack(estimates, dim=1).reshape(batch, *rest)
        return result if differentiable else result.detach()


def make_estimator(name: str, *, m: int | None = None, L: int | None = None, relative: bool = False) -> Estimator:
    """Build an estimator by name: ``"saa"`` (uses ``m``), ``"sg"`` or ``"mlmc"`` (use ``L``), ``"linear"``
    (:class:`Linearized`, uses ``relative``)."""
    check_option(name, ESTIMATORS, "estimator")
    if name == "saa":
        return SAA(16 if m is None else m)
    if name == "sg":
        return SG(4 if L is None else L)
    if name == "mlmc":
        return RTMLMC(4 if L is None else L)
    return Linearized(relative)


def sample_worst_case(
    f: Callable[[Tensor], Tensor],
    x: Tensor,
    n: int,
    *,
    rho: float,
    eta: float,
    norm: Norm = "linf",
    scale: Tensor | Sequence[float] | None = None,
    generator: torch.Generator | None = None,
    proposals: int = 4096,
    clip: tuple[float, float] | None = None,
) -> Tensor:
    """Draw ``n`` points per input from the worst-case distribution, density ∝ ``exp(f(z)/eta)`` on the ball.

    Sampling-importance-resampling: ``proposals`` uniform points per input, resampled with weights
    ``softmax(f(z)/eta)``. ``f`` maps ``(B, m, *feat)`` to ``(B, m)``. Returns ``(B, n, *feat)``.
    """
    eta = check_eta(eta)
    check_int(n, "n", 1)
    check_int(proposals, "proposals", 1)
    with torch.no_grad():
        z = perturb(x, rho, proposals, norm=norm, scale=scale, generator=generator, clip=clip)
        values = f(z)
        if values.shape != z.shape[:2]:
            raise ValueError(f"f must return shape (B, m)={tuple(z.shape[:2])}, got {tuple(values.shape)}")
        if math.isinf(eta):
            weights = torch.ones_like(values)
        elif eta == 0:
            weights = (values == values.amax(1, keepdim=True)).to(values.dtype)
        else:
            weights = torch.softmax(values / eta, dim=1)
        idx = torch.multinomial(weights, n, replacement=True, generator=generator)
        gather = idx.view(*idx.shape, *([1] * (z.dim() - 2))).expand(-1, -1, *z.shape[2:])
        return torch.gather(z, 1, gather)
