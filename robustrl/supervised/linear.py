"""Exact adversarial training of binary logistic regression under ℓ∞ attacks.

For a linear score ``theta^T x + b`` and labels ``y in {-1, +1}`` the inner maximum of the logistic loss
over the ℓ∞ ball of radius ``eps`` is attained at ``x - eps * y * sign(theta)`` and equals
``log(1 + exp(-y (theta^T x + b) + eps ||theta||_1))``, so adversarial training is exact and convex
(Kolter & Madry, "Adversarial Robustness: Theory and Practice", NeurIPS 2018 tutorial, chapter 2).
When inputs must also stay in [0, 1] the objective is still linear and separable over a box, so the
exact maximiser is the same point clamped to [0, 1] (:func:`worst_case_linf` with ``clip=True``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from robustrl.checks import check_int
from robustrl.supervised._checks import check_eps
from robustrl.supervised.data import Dataset
from robustrl.supervised.models import BinaryLogistic

__all__ = [
    "BinaryData",
    "adversarial_logistic_loss",
    "binary_subset",
    "error_rate",
    "train_logistic",
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


def adversarial_logistic_loss(model: BinaryLogistic, x: Tensor, y: Tensor, eps: float) -> Tensor:
    """Per-example exact worst-case logistic loss ``softplus(-y (theta^T x + b) + eps ||theta||_1)``.

    ``eps = 0`` is the standard logistic loss. Inputs are not clamped to [0, 1] in this closed form.
    """
    eps = check_eps(eps)
    _check_signs(y, len(x))
    theta = model.linear.weight.squeeze(0)
    return F.softplus(-y * model(x) + eps * theta.abs().sum())


def worst_case_linf(model: BinaryLogistic, x: Tensor, y: Tensor, eps: float, clip: bool = False) -> Tensor:
    """The exact maximiser of the logistic loss over the ℓ∞ ball: ``x - eps * y * sign(theta)``.

    With ``clip=True`` the point is clamped to [0, 1], which is the exact maximiser over the ball
    intersected with [0, 1]^d (a separable linear objective over a box).
    """
    eps = check_eps(eps)
    _check_signs(y, len(x))
    with torch.no_grad():
        theta = model.linear.weight.squeeze(0)
        adv = x.flatten(1) - eps * y[:, None] * theta.sign()[None, :]
        return adv.clamp(0, 1) if clip else adv


def error_rate(model: BinaryLogistic, x: Tensor, y: Tensor, eps: float = 0.0, clip: bool = False) -> float:
    """Test error of ``model`` under its exact worst-case ℓ∞ attack of radius ``eps`` (0 = clean)."""
    adv = worst_case_linf(model, x, y, eps, clip) if eps > 0 else x.flatten(1)
    with torch.no_grad():
        return float((model(adv) * y <= 0).float().mean())


def train_logistic(x: Tensor, y: Tensor, eps: float = 0.0, *, epochs: int = 10, lr: float = 1.0,
                   batch_size: int = 100, seed: int = 0) -> BinaryLogistic:
    """Logistic regression trained by SGD on the exact adversarial loss (``eps = 0``: standard training).

    Initialised at zero (as in the Kolter-Madry tutorial); batches shuffled by a generator seeded with
    ``seed``.
    """
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
            loss = adversarial_logistic_loss(model, x[idx], y[idx], eps).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model
