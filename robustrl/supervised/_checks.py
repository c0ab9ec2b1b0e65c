"""Input validation shared by the supervised modules: every check raises ``ValueError`` naming the value."""

from __future__ import annotations

import torch
from torch import Tensor

from robustrl.attacks import check_labels
from robustrl.checks import check_choice, check_eps

__all__ = ["check_choice", "check_eps", "check_images", "check_labels"]


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
