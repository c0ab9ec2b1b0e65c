"""Input validation shared by the supervised modules: every check raises ``ValueError`` naming the value."""

from __future__ import annotations

import math

import torch
from torch import Tensor



def check_images(x: Tensor, name: str = "inputs") -> Tensor:
    """Images must be a floating tensor of shape ``(B, C, H, W)`` with every value in [0, 1]."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        lo, hi = float(x.min()), float(x.max())
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo}, {hi}]")
    return x


def check_labels(y: Tensor, batch: int, num_classes: int, name: str = "labels") -> Tensor:
    """Labels must be an integer tensor of shape ``(batch,)`` with values in ``{0..num_classes-1}``."""
    if not isinstance(y, Tensor) or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"{name} must be an integer torch.Tensor, got {getattr(y, 'dtype', type(y))}")
    if tuple(y.shape) != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got shape {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"{name} must be in [0, {num_classes - 1}], got values in [{int(y.min())}, {int(y.max())}]"
        )
    return y


def check_eps(eps: float, name: str = "eps") -> float:
    """A perturbation budget: finite and ``>= 0``."""
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {name}={eps}")
    return eps


def check_choice(value: str, choices: tuple[str, ...], name: str) -> str:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value
