"""The supervised half's attacks: the shared classes of :mod:`robustrl.attacks` (one FGM / PGD for
classifiers and Q-networks alike) and :func:`make_attack`, which builds one by the name picked on the
command line (:data:`ATTACKS`).

``atk = PGD(model, eps=..., alpha=..., steps=...)``, ``adv = atk(inputs, labels)``; images stay in [0, 1]
(the attacks' default ``clip``).
"""

from __future__ import annotations

import torch
from torch import nn

from robustrl.attacks import FGM, LOSSES, NORMS, PGD, Attack, RandomNoise, project
from robustrl.checks import check_choice
from robustrl.supervised.names import ATTACKS

__all__ = ["ATTACKS", "LOSSES", "NORMS", "Attack", "FGM", "PGD", "RandomNoise", "make_attack", "project"]


def make_attack(name: str, model: nn.Module, eps: float, norm: str = "linf", *, steps: int = 20,
                restarts: int = 1, alpha: float | None = None,
                generator: torch.Generator | None = None) -> Attack:
    """Build an attack by name: ``"fgm"``, ``"pgd"`` (``steps``, ``restarts``, ``alpha``), ``"pgd-margin"``
    (PGD on the margin loss) or ``"noise"``."""
    check_choice(name, ATTACKS, "attack")
    if name == "fgm":
        return FGM(model, eps, norm, generator)
    if name == "noise":
        return RandomNoise(model, eps, norm, generator)
    loss = "margin" if name == "pgd-margin" else "ce"
    return PGD(model, eps, alpha, steps, norm, True, restarts, generator, loss)
