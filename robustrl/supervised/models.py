"""Networks: the paper's 28x28 CNN, a small CNN for 8x8 digits, the Max-Mahalanobis Center head and
binary logistic regression."""

from __future__ import annotations

import math
import pickle
import zipfile
from pathlib import Path

import torch
from torch import Tensor, nn

from robustrl.checks import check_int
from robustrl.supervised._checks import check_choice
from robustrl.supervised.names import ARCHS

__all__ = [
    "ARCHS",
    "HEADS",
    "BinaryLogistic",
    "MMCNet",
    "PaperCNN",
    "SmallCNN",
    "load_checkpoint",
    "make_model",
    "simplex_centers",
]

HEADS: tuple[str, ...] = ("softmax", "mmc")


class PaperCNN(nn.Module):
    """The network of the paper's supervised experiments for 28x28 inputs (the cleverhans basic CNN).

    conv 64@8x8 stride 2 (padding 3, 28 -> 14) -> ELU -> conv 128@6x6 stride 2 (14 -> 5) -> ELU ->
    conv 128@5x5 (5 -> 1) -> ELU -> linear 10. Wang, Gao, Xie (arXiv:2408.09672), Section 5.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 8, stride=2, padding=3), nn.ELU(),
            nn.Conv2d(64, 128, 6, stride=2), nn.ELU(),
            nn.Conv2d(128, 128, 5), nn.ELU(),
            nn.Flatten(),
        )
        self.feature_dim = 128
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape ``(B, num_classes)``, for images ``(B, 1, 28, 28)``."""
        return self.head(self.features(x))


class SmallCNN(nn.Module):
    """A small CNN for 8x8 digits: conv 32@3x3 (pad 1) -> ELU -> conv 64@3x3 stride 2 -> ELU -> linear 128
    -> ELU -> linear ``num_classes``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ELU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ELU(),
            nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ELU(),
        )
        self.feature_dim = 128
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape ``(B, num_classes)``, for images ``(B, 1, 8, 8)``."""
        return self.head(self.features(x))


def simplex_centers(num_classes: int, dim: int, norm: float) -> Tensor:
    """``num_classes`` centers of norm ``norm`` in ``R^dim`` forming a regular simplex.

    They are the centred one-hot vectors ``e_k - 1/K`` rescaled to norm ``norm`` (pairwise inner product
    ``-norm^2/(K-1)``, the Max-Mahalanobis configuration of Pang et al., ICLR 2020), embedded in the first
    ``K`` coordinates; needs ``dim >= K``.
    """
    check_int(num_classes, "num_classes", 2)
    if dim < num_classes:
        raise ValueError(f"dim must be >= num_classes={num_classes}, got dim={dim}")
    centred = torch.eye(num_classes) - 1.0 / num_classes
    centred = centred / centred.norm(dim=1, keepdim=True) * norm
    out = torch.zeros(num_classes, dim)
    out[:, :num_classes] = centred
    return out


class MMCNet(nn.Module):
    """Max-Mahalanobis Center head over a backbone's features (Pang, Xu, Dong, Du, Chen, Zhu, ICLR 2020).

    Features ``z`` are mapped by a linear layer to ``R^dim``; logits are ``-||z - mu_k||^2`` for fixed
    simplex centers ``mu_k`` of norm ``C`` (:func:`simplex_centers`). The MMC training loss is
    ``0.5 ||z - mu_y||^2`` (:class:`robustrl.supervised.methods.MMCLoss`); attacks use cross-entropy (or the
    margin loss, ``pgd-margin``, which exposes the gradient masking of saturated MMC logits) on the logits.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, dim: int | None = None,
                 C: float = 10.0) -> None:
        super().__init__()
        self.backbone = backbone.features
        self.dim = dim or max(num_classes, 16)
        self.embed = nn.Linear(backbone.feature_dim, self.dim)
        self.register_buffer("centers", simplex_centers(num_classes, self.dim, C))

    def embedding(self, x: Tensor) -> Tensor:
        """The feature vector ``z``, shape ``(B, dim)``."""
        return self.embed(self.backbone(x))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``-||z - mu_k||^2``, shape ``(B, num_classes)``."""
        z = self.embedding(x)
        return -torch.cdist(z, self.centers).pow(2)


class BinaryLogistic(nn.Module):
    """Binary logistic regression ``theta^T x + b`` on flattened inputs; labels in ``{-1, +1}``."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        """The margin score ``theta^T x + b``, shape ``(B,)``."""
        return self.linear(x.flatten(1)).squeeze(1)


def make_model(arch: str, num_classes: int = 10, *, head: str = "softmax", seed: int = 0,
               mmc_C: float = 10.0) -> nn.Module:
    """Build ``arch`` (``"paper-cnn"`` or ``"small-cnn"``) with a ``"softmax"`` or ``"mmc"`` head.

    Initialisation is seeded by ``seed`` inside a forked RNG, so the global torch RNG is left untouched.
    """
    check_choice(arch, ARCHS, "arch")
    check_choice(head, HEADS, "head")
    if not math.isfinite(mmc_C) or mmc_C <= 0:
        raise ValueError(f"mmc_C must be finite and > 0, got mmc_C={mmc_C}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = PaperCNN(num_classes) if arch == "paper-cnn" else SmallCNN(num_classes)
        if head == "mmc":
            net = MMCNet(net, num_classes, C=mmc_C)
    return net


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the weights saved at ``path`` (``torch.save(model.state_dict())``) into ``model``.

    :raises ValueError: naming the file if it is missing, truncated, or holds weights of another model.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, TypeError,
            AttributeError) as err:
        problem = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"checkpoint {path} is truncated, corrupted or not a {type(model).__name__}: {problem}"
        ) from None
    return model
