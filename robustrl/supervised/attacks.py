"""Attacks in the torchattacks shape: a class per attack, ``atk = PGD(model, eps=..., alpha=..., steps=...)``,
``adv = atk(inputs, labels)``.

``__call__`` validates the inputs, puts the model in eval mode and restores its mode afterwards. Gradients
are taken with ``torch.autograd.grad`` (the model's ``.grad`` is left alone); every step is projected onto
the ball, clamped to [0, 1] and detached. Random starts and random noise use the shared ball sampler
:func:`robustrl.estimators.sample_unit_ball`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustrl.estimators import NORMS, sample_unit_ball
from robustrl.checks import check_int
from robustrl.supervised._checks import check_choice, check_eps, check_images, check_labels
from robustrl.supervised.names import ATTACKS

__all__ = ["ATTACKS", "LOSSES", "NORMS", "Attack", "FGM", "PGD", "RandomNoise", "make_attack", "project"]

LOSSES: tuple[str, ...] = ("ce", "margin")


def _per_example_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def project(delta: Tensor, eps: float, norm: str) -> Tensor:
    """Project perturbations ``delta`` (batch first) onto the ``norm`` ball of radius ``eps``."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    scale = (eps / _per_example_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    return delta * scale


def _ascent_direction(grad: Tensor, norm: str) -> Tensor:
    if norm == "linf":
        return grad.sign()
    return grad / _per_example_norm(grad).clamp_min(1e-12)


class Attack:
    """Base attack: holds the model, the norm and the budget ``eps``; subclasses implement :meth:`forward`."""

    def __init__(self, model: nn.Module, eps: float, norm: str = "linf",
                 generator: torch.Generator | None = None, loss: str = "ce") -> None:
        self.model = model
        self.eps = check_eps(eps)
        self.norm = check_choice(norm, NORMS, "norm")
        self.generator = generator
        self.loss_name = check_choice(loss, LOSSES, "attack loss")

    def loss(self, inputs: Tensor, labels: Tensor) -> Tensor:
        """The summed quantity the attack ascends: cross-entropy (``"ce"``) or the Carlini-Wagner margin
        ``max_{k != y} z_k - z_y`` (``"margin"``, which does not vanish when the softmax saturates, e.g. on
        MMC logits)."""
        logits = self.model(inputs)
        if self.loss_name == "ce":
            return F.cross_entropy(logits, labels, reduction="sum")
        true = logits.gather(1, labels[:, None]).squeeze(1)
        other = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(1)
        return (other - true).sum()

    def gradient(self, inputs: Tensor, labels: Tensor) -> Tensor:
        """Gradient of :meth:`loss` with respect to the inputs only (also under ``torch.no_grad()``)."""
        with torch.enable_grad():
            inputs = inputs.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.loss(inputs, labels), inputs)
        return grad

    def forward(self, inputs: Tensor, labels: Tensor) -> Tensor:
        """Return adversarial inputs of the same shape, in [0, 1] and within ``eps`` of ``inputs``."""
        raise NotImplementedError

    def __call__(self, inputs: Tensor, labels: Tensor) -> Tensor:
        check_images(inputs)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                num_classes = self.model(inputs[:1]).shape[1]
            check_labels(labels, inputs.shape[0], num_classes)
            return self.forward(inputs.detach(), labels).detach()
        finally:
            self.model.train(was_training)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps}, norm={self.norm!r})"


class FGM(Attack):
    """Fast gradient method: one step of size ``eps`` along sign(grad) (ℓ∞, = FGSM) or grad/‖grad‖₂
    (ℓ2).

    Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015.
    """

    def forward(self, inputs: Tensor, labels: Tensor) -> Tensor:  # noqa: D102
        step = self.eps * _ascent_direction(self.gradient(inputs, labels), self.norm)
        return (inputs + project(step, self.eps, self.norm)).clamp(0, 1)


class PGD(Attack):
    """Iterative FGM / projected gradient descent with a random start and random restarts.

    ``steps`` ascent steps of size ``alpha`` (default ``2.5 * eps / steps``), each projected onto the
    ``eps``-ball, clamped to [0, 1] and detached. With ``restarts > 1`` the attack is re-run from fresh
    random starts on the examples not yet misclassified, keeping any adversarial example found, so an
    example counts as robust only if every restart fails. Kurakin et al. 2017 (IFGM);
    Madry, Makelov, Schmidt, Tsipras, Vladu, ICLR 2018 (PGD).
    """

    def __init__(self, model: nn.Module, eps: float, alpha: float | None = None, steps: int = 10,
                 norm: str = "linf", random_start: bool = True, restarts: int = 1,
                 generator: torch.Generator | None = None, loss: str = "ce") -> None:
        super().__init__(model, eps, norm, generator, loss)
        self.steps = check_int(steps, "steps", 1)
        self.restarts = check_int(restarts, "restarts", 1)
        self.alpha = check_eps(2.5 * self.eps / steps if alpha is None else alpha, "alpha")
        self.random_start = bool(random_start)

    def _run(self, inputs: Tensor, labels: Tensor) -> Tensor:
        adv = inputs
        if self.random_start:
            u = sample_unit_ball(len(inputs), inputs.shape[1:], self.norm, generator=self.generator,
                                 dtype=inputs.dtype)
            adv = (inputs + self.eps * u).clamp(0, 1)
        for _ in range(self.steps):
            adv = adv + self.alpha * _ascent_direction(self.gradient(adv, labels), self.norm)
            adv = (inputs + project(adv - inputs, self.eps, self.norm)).clamp(0, 1).detach()
        return adv

    def forward(self, inputs: Tensor, labels: Tensor) -> Tensor:  # noqa: D102
        best = self._run(inputs, labels)
        for _ in range(self.restarts - 1):
            with torch.no_grad():
                still_correct = (self.model(best).argmax(1) == labels).nonzero().squeeze(1)
            if len(still_correct) == 0:
                break
            candidate = self._run(inputs[still_correct], labels[still_correct])
            with torch.no_grad():
                fooled = self.model(candidate).argmax(1) != labels[still_correct]
            best[still_correct[fooled]] = candidate[fooled]
        return best

    def __repr__(self) -> str:
        return (f"PGD(eps={self.eps}, alpha={self.alpha:.4g}, steps={self.steps}, norm={self.norm!r}, "
                f"restarts={self.restarts}, loss={self.loss_name!r})")


class RandomNoise(Attack):
    """Uniform random noise in the ``eps``-ball of ``norm`` (the shared sampler), clamped to [0, 1]."""

    def forward(self, inputs: Tensor, labels: Tensor) -> Tensor:  # noqa: D102
        u = sample_unit_ball(len(inputs), inputs.shape[1:], self.norm, generator=self.generator,
                             dtype=inputs.dtype)
        return (inputs + self.eps * u).clamp(0, 1)


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
