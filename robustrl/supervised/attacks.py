"""The supervised half's attacks: the shared classes of :mod:`robustrl.attacks` (one FGM / PGD for
classifiers and Q-networks alike) and :func:`make_attack`, which builds one by the name picked on the
command line (:data:`ATTACKS`).

``atk = PGD(model, eps=..., alpha=..., steps=...)``, ``adv = atk(inputs, labels)``; images stay in [0, 1]
(the attacks' default ``clip``).
"""

from __future__ import annotations

import torch
from torch import nn

from robustrl.attacks import APGD, FGM, LOSSES, NORMS, PGD, Attack, RandomNoise, WorstOf, project
from robustrl.checks import check_choice
from robustrl.supervised.names import ATTACKS

__all__ = ["APGD", "ATTACKS", "LOSSES", "NORMS", "Attack", "FGM", "PGD", "RandomNoise", "WorstOf", "attack_ensemble",
           "make_attack", "project", "targeted_starts"]


def targeted_starts(restarts: int) -> int:
    """Random starts per target class of the ensemble's APGD-T for ``restarts`` runs per PGD loss: one per three,
    rounded up (1 at the evaluation's 3, 2 at the convergence check's 6)."""
    return -(-restarts // 3)


def attack_ensemble(model: nn.Module, eps: float, norm: str = "linf", *, steps: int = 50, restarts: int = 3,
                    alpha: float | None = None, generator: torch.Generator | None = None,
                    targeted: bool = True) -> WorstOf:
    """The evaluation's attack: per point, the worst of ``restarts`` runs of cross-entropy PGD, ``restarts``
    runs of margin-loss PGD, the ``r``-th margin run aimed at the ``r``-th runner-up class
    (:func:`~robustrl.attacks.ranked_margin`; the first is the Carlini-Wagner margin, which does not vanish
    when the softmax saturates, e.g. on MMC logits), and (``targeted``) APGD-T: Auto-PGD on the targeted DLR
    loss aimed in turn at *every* other class, :func:`targeted_starts` random starts per class
    (:class:`~robustrl.attacks.APGD`). The PGD runs have ``steps`` steps from their own random start, a
    cosine-decayed step size starting at ``alpha`` (default ``2 * eps``), box-aware steps (coordinates on
    the [0, 1] bound that point out of it do not take up the ℓ2 step), and stop at the first point that
    changes the prediction; APGD-T has ``steps`` steps and its own step-size rule. A point counts as robust
    only if every run fails; each run is spent only on the points the earlier runs left unchanged, so the
    targeted runs (the most numerous) see only the points that survive the untargeted ones.

    Madry et al., ICLR 2018 (PGD with restarts); Carlini and Wagner, IEEE S&P 2017 (the margin loss);
    Gowal et al. 2019 (runs aimed at several classes); Croce and Hein, ICML 2020 (APGD, the targeted DLR
    loss, step-size decay, and evaluating by an ensemble of diverse attacks, per point).
    """
    common = dict(alpha=alpha, steps=steps, norm=norm, random_start=True, restarts=1, generator=generator,
                  stop_on_flip=True, schedule="cosine", box_aware=True)
    runs: list[Attack] = [PGD(model, eps, loss="ce", **common) for _ in range(restarts)]
    runs += [PGD(model, eps, loss="margin", target_rank=r, **common) for r in range(1, restarts + 1)]
    if targeted:
        runs.append(APGD(model, eps, steps, norm, targeted_starts(restarts), generator, "dlr-targeted"))
    return WorstOf(runs)


def make_attack(name: str, model: nn.Module, eps: float, norm: str = "linf", *, steps: int = 20,
                restarts: int = 1, alpha: float | None = None,
                generator: torch.Generator | None = None) -> Attack | WorstOf:
    """Build an attack by name: ``"ensemble"`` (:func:`attack_ensemble`), ``"fgm"``, ``"pgd"`` (``steps``,
    ``restarts``, ``alpha``), ``"pgd-margin"`` (PGD on the margin loss), ``"noise"``, or Auto-PGD
    (:class:`~robustrl.attacks.APGD`: ``"apgd-ce"``, ``"apgd-dlr"``, and ``"apgd-t"``, targeted DLR at every
    other class with ``restarts`` starts per class)."""
    check_choice(name, ATTACKS, "attack")
    if name == "ensemble":
        return attack_ensemble(model, eps, norm, steps=steps, restarts=restarts, alpha=alpha, generator=generator)
    if name.startswith("apgd"):
        loss = {"apgd-ce": "ce", "apgd-dlr": "dlr", "apgd-t": "dlr-targeted"}[name]
        return APGD(model, eps, steps, norm, restarts, generator, loss, alpha=alpha)
    if name == "fgm":
        return FGM(model, eps, norm, generator)
    if name == "noise":
        return RandomNoise(model, eps, norm, generator)
    loss = "margin" if name == "pgd-margin" else "ce"
    return PGD(model, eps, alpha, steps, norm, True, restarts, generator, loss)
