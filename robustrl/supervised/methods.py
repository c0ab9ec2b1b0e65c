"""Training methods, each a small object whose :meth:`Method.loss` returns the scalar to minimise.

Names (:data:`METHODS`): ``erm``, ``fgm-at``, ``ifgm-at``, ``entropic-saa``, ``entropic-sg``,
``entropic-mlmc``, ``adt-exp``, ``mmc`` and ``mmc-at``. Exact adversarial logistic regression is in
:mod:`robustrl.supervised.linear`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustrl.estimators import Estimator, check_eta, check_rho, make_estimator
from robustrl.checks import check_int
from robustrl.supervised._checks import check_choice, check_eps
from robustrl.supervised.attacks import FGM, NORMS, PGD
from robustrl.supervised.models import MMCNet
from robustrl.supervised.names import METHODS

__all__ = [
    "METHODS",
    "ADTEXP",
    "AdversarialTraining",
    "ERM",
    "EntropicAT",
    "MMCLoss",
    "Method",
    "MethodConfig",
    "make_method",
]



class Method:
    """A training objective: :meth:`loss` maps a batch to a scalar loss (the model is in train mode)."""

    name: str = "method"

    def loss(self, model: nn.Module, x: Tensor, y: Tensor,
             generator: torch.Generator | None = None) -> Tensor:
        """Scalar training loss on the batch ``(x, y)``."""
        raise NotImplementedError


class ERM(Method):
    """Empirical risk minimisation: mean cross-entropy on clean inputs."""

    name = "erm"

    def loss(self, model, x, y, generator=None):  # noqa: D102
        return F.cross_entropy(model(x), y)


class AdversarialTraining(Method):
    """Adversarial training on attack points: FGM-AT (``steps=0``) or IFGM/PGD-AT (``steps >= 1``).

    The loss is the cross-entropy at ``attack(x, y)`` only (Madry et al., ICLR 2018); FGM-AT is the
    FGSM training of Goodfellow et al. (ICLR 2015) without the clean term.
    """

    def __init__(self, eps: float, norm: str = "linf", steps: int = 7, name: str = "ifgm-at") -> None:
        self.eps, self.norm, self.steps, self.name = eps, norm, steps, name

    def attack_points(self, model: nn.Module, x: Tensor, y: Tensor,
                      generator: torch.Generator | None) -> Tensor:
        """The training attack's adversarial inputs."""
        if self.steps == 0:
            return FGM(model, self.eps, self.norm, generator)(x, y)
        return PGD(model, self.eps, steps=self.steps, norm=self.norm, generator=generator)(x, y)

    def loss(self, model, x, y, generator=None):  # noqa: D102
        return F.cross_entropy(model(self.attack_points(model, x, y, generator)), y)


class EntropicAT(Method):
    """Entropic adversarial training (Wang, Gao, Xie, arXiv:2408.09672).

    Loss ``mean_x eta * log E_{z ~ U(B_rho(c(x)))} exp(CE(theta; z, y) / eta)``, estimated by the shared
    estimator (SAA, SG or RT-MLMC of :mod:`robustrl.estimators`) with samples clamped to [0, 1].
    The ball centre ``c(x)`` is the clean input when ``center_steps == 0`` (the paper's formula) and,
    when ``center_steps = k > 0``, a k-step PGD point inside ``B_eps(x)`` (found without gradient to
    theta), so samples then lie in ``B_{eps+rho}(x)``: the practical "start from a PGD point" variant.
    With ``match_budget=True`` the centre is searched in ``B_{eps-rho}(x)`` instead (and a clean centre needs
    ``rho <= eps``), so every sample lies in ``B_eps(x)``, the ball adversarial training with budget ``eps``
    trains in (clamping to [0, 1] only moves a sample closer to ``x``, which lies in [0, 1]).
    With ``groups = G > 1`` the batch is split into G sub-batches, each estimated by its own call (so
    RT-MLMC draws an independent level per sub-batch instead of one level for the whole batch; the
    estimate stays unbiased and its variance drops).
    """

    def __init__(self, estimator: Estimator, rho: float, eta: float, norm: str = "linf",
                 center_steps: int = 0, eps: float = 0.0, name: str = "entropic", groups: int = 1,
                 match_budget: bool = False) -> None:
        self.estimator, self.rho, self.eta, self.norm = estimator, check_rho(rho), check_eta(eta), norm
        self.center_steps, self.eps, self.name = center_steps, eps, name
        self.groups = check_int(groups, "groups", 1)
        self.match_budget = bool(match_budget)
        if self.match_budget and rho > eps:
            raise ValueError(f"match_budget needs rho <= eps so that samples stay in the eps-ball, got "
                             f"rho={rho}, eps={eps}")

    @property
    def center_eps(self) -> float:
        """The radius the ball centre is searched in: ``eps``, or ``eps - rho`` with ``match_budget``."""
        return self.eps - self.rho if self.match_budget else self.eps

    @property
    def reach(self) -> float:
        """The largest distance from the clean input any sample can have: ``rho`` plus the centre's radius
        (``center_eps``, or 0 for a clean centre)."""
        return self.rho + (self.center_eps if self.center_steps > 0 else 0.0)

    def loss(self, model, x, y, generator=None):  # noqa: D102
        centre = x
        if self.center_steps > 0 and self.center_eps > 0:
            centre = PGD(model, self.center_eps, steps=self.center_steps, norm=self.norm, generator=generator)(x, y)

        risks = []
        for c, t in zip(centre.tensor_split(self.groups), y.tensor_split(self.groups)):
            if len(t) == 0:
                continue

            def per_sample_loss(z: Tensor, t: Tensor = t) -> Tensor:
                b, m = z.shape[:2]
                logits = model(z.reshape(b * m, *z.shape[2:]))
                return F.cross_entropy(logits, t.repeat_interleave(m), reduction="none").view(b, m)

            risks.append(self.estimator.estimate(per_sample_loss, c, rho=self.rho, eta=self.eta,
                                                 norm=self.norm, generator=generator, clip=(0.0, 1.0)))
        return torch.cat(risks).mean()


class ADTEXP(Method):
    """ADT-EXP: adversarial distributional training with an explicit per-example perturbation distribution.

    Dong, Deng, Pang, Su, Zhu, "Adversarial Distributional Training for Robust Deep Learning",
    NeurIPS 2020. Each example gets ``delta = eps * tanh(mu + sigma * n)``, ``n ~ N(0, I)``,
    ``sigma = softplus(v)`` (ℓ∞ ball), starting from ``mu = 0, v = 0``. ``steps`` signed-gradient ascent
    steps of size ``lr`` on ``(mu, v)`` (the reference implementation's Adam with betas (0, 0) is such a
    signed step) maximise ``sum_b CE(x_b + delta_b) + lam * sum_b H_b``, one reparameterised sample per
    step, where ``H_b`` is the per-dimension average of the entropy of ``delta_b`` up to constants,
    ``mean_d [log sigma + log(1 - tanh^2(u))]`` (change of variables). The model then minimises the
    cross-entropy at a fresh sample from the fitted distribution.
    """

    name = "adt-exp"

    def __init__(self, eps: float, steps: int = 7, lam: float = 0.01, lr: float = 0.3) -> None:
        self.eps, self.steps, self.lam, self.lr = eps, steps, lam, lr

    def _sample(self, x: Tensor, mu: Tensor, v: Tensor, gen: torch.Generator | None) -> tuple[Tensor, Tensor]:
        sigma = F.softplus(v)
        t = torch.tanh(mu + sigma * torch.randn(mu.shape, generator=gen, dtype=x.dtype))
        entropy = (torch.log(sigma + 1e-8) + torch.log(1 - t.pow(2) + 1e-8)).flatten(1).mean(1)
        return (x + self.eps * t).clamp(0, 1), entropy

    def loss(self, model, x, y, generator=None):  # noqa: D102
        was_training = model.training
        model.eval()
        mu, v = torch.zeros_like(x), torch.zeros_like(x)
        for _ in range(self.steps):
            mu.requires_grad_(True)
            v.requires_grad_(True)
            with torch.enable_grad():
                z, entropy = self._sample(x, mu, v, generator)
                objective = F.cross_entropy(model(z), y, reduction="sum") + self.lam * entropy.sum()
                g_mu, g_v = torch.autograd.grad(objective, (mu, v))
            mu = (mu + self.lr * g_mu.sign()).detach()
            v = (v + self.lr * g_v.sign()).detach()
        model.train(was_training)
        with torch.no_grad():
            z, _ = self._sample(x, mu, v, generator)
        return F.cross_entropy(model(z), y)


class MMCLoss(Method):
    """Max-Mahalanobis Center loss ``0.5 ||z - mu_y||^2`` (Pang et al., ICLR 2020); needs an :class:`MMCNet`.

    With ``adversarial=True`` the loss is taken at PGD points (found with cross-entropy on the MMC logits).
    """

    def __init__(self, eps: float = 0.0, norm: str = "linf", steps: int = 7,
                 adversarial: bool = False) -> None:
        self.eps, self.norm, self.steps, self.adversarial = eps, norm, steps, adversarial
        self.name = "mmc-at" if adversarial else "mmc"

    def loss(self, model, x, y, generator=None):  # noqa: D102
        if not isinstance(model, MMCNet):
            raise ValueError(
                f"method {self.name!r} needs a model with an MMC head, got {type(model).__name__}"
            )
        if self.adversarial:
            x = PGD(model, self.eps, steps=self.steps, norm=self.norm, generator=generator)(x, y)
        z = model.embedding(x)
        return 0.5 * (z - model.centers[y]).pow(2).sum(1).mean()


@dataclass
class MethodConfig:
    """Hyperparameters of every method (each method reads the ones it needs).

    ``eps``/``norm``: training budget; ``steps``: PGD steps for IFGM-AT, MMC-AT and the Entropic-AT
    centre; ``rho``/``eta``: the entropic ball radius and temperature; ``m``: SAA samples; ``L``: SG and
    RT-MLMC level; ``center_steps``: PGD steps to the Entropic-AT ball centre (0 = clean centre);
    ``groups``: Entropic-AT sub-batches with independent estimator calls; ``adt_lambda``/``adt_lr``:
    ADT-EXP entropy bonus (on the per-dimension entropy) and inner step size; ``mmc_C``: MMC center norm;
    ``match_budget``: Entropic-AT's samples stay in ``B_eps(x)`` (centre searched in ``B_{eps-rho}(x)``).
    """

    eps: float = 0.1
    norm: str = "linf"
    steps: int = 7
    rho: float = 0.1
    eta: float = 0.5
    m: int = 8
    L: int = 3
    center_steps: int = 0
    groups: int = 1
    adt_lambda: float = 0.01
    adt_lr: float = 0.3
    mmc_C: float = 10.0
    match_budget: bool = False

    def validate(self) -> MethodConfig:
        """Raise ``ValueError`` on a bad value; return ``self``."""
        check_eps(self.eps)
        check_choice(self.norm, NORMS, "norm")
        check_int(self.steps, "steps", 1)
        check_int(self.center_steps, "center_steps", 0)
        check_int(self.groups, "groups", 1)
        check_int(self.m, "m", 1)
        check_int(self.L, "L", 0)
        check_rho(self.rho)
        check_eta(self.eta)
        if not math.isfinite(self.mmc_C) or self.mmc_C <= 0:
            raise ValueError(f"mmc_C must be finite and > 0, got mmc_C={self.mmc_C}")
        if not isinstance(self.match_budget, bool):
            raise ValueError(f"match_budget must be true or false, got match_budget={self.match_budget!r}")
        if self.match_budget and self.rho > self.eps:
            raise ValueError(f"match_budget needs rho <= eps so that samples stay in the eps-ball, got "
                             f"rho={self.rho}, eps={self.eps}")
        return self

    def to_dict(self) -> dict:
        """Plain-dict form for run records."""
        return asdict(self)


def make_method(name: str, config: MethodConfig | None = None) -> Method:
    """Build a training method by name (see :data:`METHODS`) from a :class:`MethodConfig`."""
    check_choice(name, METHODS, "method")
    c = (config or MethodConfig()).validate()
    if name == "erm":
        return ERM()
    if name == "fgm-at":
        return AdversarialTraining(c.eps, c.norm, steps=0, name=name)
    if name == "ifgm-at":
        return AdversarialTraining(c.eps, c.norm, steps=c.steps, name=name)
    if name.startswith("entropic-"):
        kind = name.split("-", 1)[1]
        est = make_estimator(kind, m=c.m, L=c.L)
        return EntropicAT(est, c.rho, c.eta, c.norm, c.center_steps, c.eps, name=name, groups=c.groups,
                          match_budget=c.match_budget)
    if name == "adt-exp":
        if c.norm != "linf":
            raise ValueError(f"adt-exp supports norm='linf' only, got norm={c.norm!r}")
        return ADTEXP(c.eps, steps=c.steps, lam=c.adt_lambda, lr=c.adt_lr)
    return MMCLoss(c.eps, c.norm, c.steps, adversarial=(name == "mmc-at"))


def needs_mmc_head(name: str) -> bool:
    """Whether method ``name`` trains an MMC-head model."""
    return name in ("mmc", "mmc-at")
