"""Exact adversarial training of binary logistic regression under ℓ∞, ℓ2 and ℓ1 attacks.

For a linear score ``theta^T x + b`` and labels ``y in {-1, +1}`` the logistic loss
``log(1 + exp(-y (theta^T x + b)))`` is decreasing in the margin, so its maximum over a perturbation set
is attained where the linear score ``-y theta^T delta`` is largest. Over the ℓp ball of radius ``eps``
that maximum is ``eps ||theta||_q`` with ``q`` the dual norm (Hölder), so the inner maximum equals
``log(1 + exp(-y (theta^T x + b) + eps ||theta||_q))`` and adversarial training is exact and convex
(Kolter & Madry, "Adversarial Robustness: Theory and Practice", NeurIPS 2018 tutorial, chapter 2):

* ``"linf"``: dual ``||theta||_1``, maximiser ``x - eps * y * sign(theta)``;
* ``"l2"``: dual ``||theta||_2``, maximiser ``x - eps * y * theta / ||theta||_2`` (``x`` if ``theta = 0``);
* ``"l1"``: dual ``||theta||_inf``, maximiser ``x - eps * y * sign(theta_j) e_j`` with
  ``j = argmax_j |theta_j|``.

When inputs must also stay in [0, 1] (``clip=True`` in :func:`worst_case`) the problem is still a linear
objective, now over the ball intersected with a box, and it is solved exactly: ℓ∞ by clamping (separable),
ℓ1 as a fractional knapsack, ℓ2 from its KKT conditions (see :func:`worst_case`). There is no closed form
for the loss in that case; evaluate the loss at the returned point.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from robustrl.checks import LINEAR_NORMS, check_choice, check_int
from robustrl.supervised._checks import check_eps
from robustrl.supervised.data import Dataset
from robustrl.supervised.models import BinaryLogistic

__all__ = [
    "LINEAR_NORMS",
    "BinaryData",
    "adversarial_logistic_loss",
    "binary_subset",
    "dual_norm",
    "error_rate",
    "train_logistic",
    "worst_case",
    "worst_case_linf",
]


class BinaryData(NamedTuple):
    """Flattened inputs in [0, 1] and labels in ``{-1, +1}`` (``+1`` = ``positive`` class)."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def _check_signs(y: Tensor, n: int) -> None:
    if y.shape != (n,) or not bool(((y == 1) | (y == -1)).all()):
        raise ValueError(
            f"labels must have shape ({n},) with values in {{-1, +1}}, got shape {tuple(y.shape)}"
        )


def binary_subset(data: Dataset, negative: int = 0, positive: int = 1) -> BinaryData:
    """Classes ``negative`` (label -1) versus ``positive`` (label +1) of ``data``, inputs flattened."""
    for c in (negative, positive):
        if not 0 <= c < data.num_classes:
            raise ValueError(f"class {c} out of range [0, {data.num_classes - 1}]")
    if negative == positive:
        raise ValueError(f"negative and positive classes must differ, got {negative} twice")

    def pick(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        keep = (y == negative) | (y == positive)
        return x[keep].flatten(1), torch.where(y[keep] == positive, 1.0, -1.0)

    return BinaryData(*pick(data.x_train, data.y_train), *pick(data.x_test, data.y_test))


def _check_norm(norm: str) -> str:
    return check_choice(norm, LINEAR_NORMS, "norm")


def dual_norm(theta: Tensor, norm: str = "linf") -> Tensor:
    """The dual norm of the attack norm ``norm`` evaluated at ``theta``: ``||theta||_1`` for ``"linf"``,
    ``||theta||_2`` for ``"l2"``, ``||theta||_inf`` for ``"l1"`` (differentiable, subgradient 0 at 0).

    ``max_{||delta||_p <= 1} theta^T delta = ||theta||_q`` with ``q`` the dual exponent of ``p``.
    """
    _check_norm(norm)
    theta = theta.flatten()
    if norm == "linf":
        return theta.abs().sum()
    if norm == "l2":
        return torch.linalg.vector_norm(theta)
    return theta.abs().amax() if theta.numel() else theta.sum()


def adversarial_logistic_loss(model: BinaryLogistic, x: Tensor, y: Tensor, eps: float,
                              norm: str = "linf") -> Tensor:
    """Per-example exact worst-case logistic loss over the ``norm`` ball of radius ``eps``:
    ``softplus(-y (theta^T x + b) + eps ||theta||_q)``, ``q`` the dual norm (:func:`dual_norm`).

    ``norm`` is ``"linf"`` (``||theta||_1``, the default and the previous behaviour), ``"l2"``
    (``||theta||_2``) or ``"l1"`` (``||theta||_inf``). ``eps = 0`` is the standard logistic loss. Inputs are
    not clamped to [0, 1] in this closed form (see :func:`worst_case` with ``clip=True`` for that case).
    """
    eps = check_eps(eps)
    _check_norm(norm)
    _check_signs(y, len(x))
    theta = model.linear.weight.squeeze(0)
    return F.softplus(-y * model(x) + eps * dual_norm(theta, norm))


def _box_capacity(x: Tensor, w: Tensor) -> Tensor:
    """How far each coordinate of ``x`` in [0, 1] can move in the direction ``sign(w)`` (0 where ``w = 0``)."""
    return torch.where(w > 0, 1 - x, x).mul_(w != 0)


def _l1_box(x: Tensor, w: Tensor, eps: float) -> Tensor:
    """Exact ``argmax w^T delta`` s.t. ``||delta||_1 <= eps``, ``0 <= x + delta <= 1`` (per row): a fractional
    knapsack, filled greedily in decreasing ``|w_j|`` order."""
    cap = _box_capacity(x, w)
    order = torch.argsort(w.abs(), dim=1, descending=True, stable=True)
    cap_sorted = cap.gather(1, order)
    left_before = cap_sorted.cumsum(1).sub_(cap_sorted).neg_().add_(eps).clamp_(min=0)  # budget left at j
    moved = torch.empty_like(cap).scatter_(1, order, torch.minimum(cap_sorted, left_before))
    return moved.mul_(w.sign())


def _l2_box(x: Tensor, w: Tensor, eps: float) -> Tensor:
    """Exact ``argmax w^T delta`` s.t. ``||delta||_2 <= eps``, ``0 <= x + delta <= 1`` (per row).

    KKT: ``delta_j = sign(w_j) min(lam |w_j|, cap_j)`` for some ``lam >= 0``, with ``lam = inf`` (the box
    corner) if the corner is inside the ball, else ``||delta(lam)||_2 = eps``. ``||delta(lam)||^2`` is
    nondecreasing and piecewise quadratic in ``lam`` with breakpoints ``cap_j / |w_j|``; after sorting
    them, the piece holding ``eps^2`` is found with cumulative sums and ``lam`` solved on it in closed form
    (so no bisection tolerance is involved).
    """
    tiny = torch.finfo(w.dtype).tiny
    a = w.abs()
    cap = _box_capacity(x, w)  # 0 where w = 0: such coordinates are "saturated" at breakpoint 0
    brk, order = torch.sort(cap / a.clamp(min=tiny), dim=1)
    a2 = a.gather(1, order).square_()
    cap2 = cap.gather(1, order).square_()
    saturated = cap2.cumsum(1).sub_(cap2)  # on piece k the k smallest breakpoints are saturated
    free = a2.flip(1).cumsum(1).flip(1)  # sum of a_j^2 over the unsaturated coordinates of piece k
    reach = brk.square_().mul_(free).add_(saturated) >= eps**2  # ||delta||^2 at breakpoint k >= eps^2
    piece = reach.to(torch.int8).argmax(1, keepdim=True)  # the first breakpoint reaching the sphere
    lam = ((eps**2 - saturated.gather(1, piece)).clamp_(min=0)
           .div_(free.gather(1, piece).clamp_(min=tiny)).sqrt_())
    corner_inside = ~reach.any(1, keepdim=True)
    delta = torch.where(corner_inside, cap, torch.minimum(a.mul_(lam), cap))
    return delta.mul_(w.sign())


def worst_case(model: BinaryLogistic, x: Tensor, y: Tensor, eps: float, norm: str = "linf",
               clip: bool = False) -> Tensor:
    """The exact maximiser of the logistic loss over the ``norm`` ball of radius ``eps`` around each input.

    The loss is monotone in the margin, so this is the exact maximiser of the linear score
    ``-y theta^T delta`` (Kolter & Madry's NeurIPS 2018 tutorial, chapter 2); the loss there equals
    :func:`adversarial_logistic_loss` when ``clip=False``:

    * ``"linf"``: ``x - eps * y * sign(theta)``;
    * ``"l2"``: ``x - eps * y * theta / ||theta||_2`` (``x`` itself if ``theta = 0``);
    * ``"l1"``: ``x - eps * y * sign(theta_j) e_j`` with ``j = argmax_j |theta_j|`` (the first on ties).

    With ``clip=True`` the inputs must lie in [0, 1] and the point is the exact maximiser over the ball
    intersected with [0, 1]^d (``w = -y theta``, ``delta`` within ``[-x, 1 - x]``): ℓ∞ clamps the point above
    (the problem is separable); ℓ1 is a fractional knapsack, moving coordinates in decreasing ``|w_j|``
    order as far as the box allows until the budget ``eps`` is spent; ℓ2 uses the KKT conditions
    ``delta_j = clamp(lam w_j, -x_j, 1 - x_j)`` with ``lam >= 0`` solving ``||delta||_2 = eps`` (exactly, by
    sorting the breakpoints), or ``lam = inf`` if the whole box corner is inside the ball. The ℓ1 and ℓ2
    box problems are solved in float64 and returned in the dtype of ``x``.
    """
    eps = check_eps(eps)
    _check_norm(norm)
    x = x.flatten(1)
    _check_signs(y, len(x))
    if clip and x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise ValueError(f"with clip=True the inputs must lie in [0, 1], got values in "
                         f"[{float(x.min())}, {float(x.max())}]")
    with torch.no_grad():
        theta = model.linear.weight.squeeze(0).to(x.dtype)
        if norm == "linf":
            adv = x - eps * y[:, None] * theta.sign()[None, :]
            return adv.clamp(0, 1) if clip else adv
        if not clip:
            if norm == "l2":
                size = torch.linalg.vector_norm(theta)
                direction = theta / size if size > 0 else torch.zeros_like(theta)
            else:
                direction = torch.zeros_like(theta)
                if theta.numel():
                    j = int(theta.abs().argmax())
                    direction[j] = theta[j].sign()
            return x - eps * y[:, None] * direction[None, :]
        x64 = x.double()
        w = -y.double()[:, None] * theta.double()[None, :]
        delta = (_l2_box if norm == "l2" else _l1_box)(x64, w, eps)
        return (x64 + delta).clamp(0, 1).to(x.dtype)


def worst_case_linf(model: BinaryLogistic, x: Tensor, y: Tensor, eps: float, clip: bool = False) -> Tensor:
    """The exact maximiser of the logistic loss over the ℓ∞ ball: ``x - eps * y * sign(theta)``.

    With ``clip=True`` the point is clamped to [0, 1], which is the exact maximiser over the ball
    intersected with [0, 1]^d (a separable linear objective over a box). Same as
    ``worst_case(model, x, y, eps, "linf", clip)``.
    """
    return worst_case(model, x, y, eps, "linf", clip)


def error_rate(model: BinaryLogistic, x: Tensor, y: Tensor, eps: float = 0.0, clip: bool = False, *,
               norm: str = "linf") -> float:
    """Test error of ``model`` under its exact worst-case ``norm`` attack of radius ``eps`` (0 = clean).

    The attack is :func:`worst_case` (with ``clip=True``: the exact worst case inside [0, 1]^d); ``norm``
    is ``"linf"`` (default), ``"l2"`` or ``"l1"``.
    """
    eps = check_eps(eps)
    _check_norm(norm)
    adv = worst_case(model, x, y, eps, norm, clip) if eps > 0 else x.flatten(1)
    with torch.no_grad():
        return float((model(adv) * y <= 0).float().mean())


def train_logistic(x: Tensor, y: Tensor, eps: float = 0.0, *, norm: str = "linf", epochs: int = 10,
                   lr: float = 1.0, batch_size: int = 100, seed: int = 0) -> BinaryLogistic:
    """Logistic regression trained by SGD on the exact adversarial loss (``eps = 0``: standard training).

    The loss is :func:`adversarial_logistic_loss` for attacks in ``norm`` (``"linf"``, ``"l2"`` or ``"l1"``:
    penalty ``eps`` times ``||theta||_1``, ``||theta||_2`` or ``||theta||_inf``). Initialised at zero (as in
    the Kolter-Madry tutorial); batches shuffled by a generator seeded with ``seed``.
    """
    eps = check_eps(eps)
    _check_norm(norm)
    check_int(epochs, "epochs", 1)
    check_int(batch_size, "batch_size", 1)
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be finite and > 0, got lr={lr}")
    x = x.flatten(1)
    _check_signs(y, len(x))
    model = BinaryLogistic(x.shape[1])
    torch.nn.init.zeros_(model.linear.weight)
    torch.nn.init.zeros_(model.linear.bias)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            loss = adversarial_logistic_loss(model, x[idx], y[idx], eps, norm).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model
