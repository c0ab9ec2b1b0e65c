"""One set of gradient attacks for classifiers and Q-networks alike, in the torchattacks shape.

``atk = PGD(model, eps=..., alpha=..., steps=...)``, ``adv = atk(inputs, labels)``. The model maps a batch
of inputs to one score per class: a classifier's logits, or a Q-network's action values. For a Q-network the
label is the greedy action on the clean state, which is what ``atk(states)`` uses when no labels are given.

``__call__`` validates the inputs, puts the model in eval mode and restores its mode afterwards. Gradients
are taken with ``torch.autograd.grad`` with respect to the inputs only (the parameters are frozen for the call,
and the model's ``.grad`` is left alone); every step is projected onto
the ball, clipped to the valid input range (``clip``; [0, 1] for images, ``None`` for states) and detached.
``scale`` stretches the ball per input coordinate: the perturbation ``delta`` is allowed when
``delta / scale`` lies in the ``eps``-ball of ``norm`` (so ``|delta_i| <= eps * scale_i`` for ℓ∞), which
puts a Q-network's budget in the units of the robust agent's ``state_scale``. Random starts and random
noise use the shared ball sampler :func:`robustrl.estimators.sample_unit_ball`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustrl.checks import NORMS, check_choice, check_eps, check_int, check_probability
from robustrl.estimators import sample_unit_ball

__all__ = [
    "ACTOR_OBJECTIVES",
    "APGD",
    "APGD_LOSSES",
    "ActorAttack",
    "ATTACK_LOSSES",
    "LOSSES",
    "NORMS",
    "SCHEDULES",
    "FGM",
    "PGD",
    "PGDEnsemble",
    "Attack",
    "RandomNoise",
    "WorstOf",
    "check_labels",
    "dlr",
    "eval_mode",
    "frozen",
    "margin",
    "project",
    "ranked_margin",
    "targeted_dlr",
]

#: The losses an attack ascends: cross-entropy on softmax(scores) and the margin loss (see :func:`margin`).
LOSSES: tuple[str, ...] = ("ce", "margin")
#: Every loss an attack can take: :data:`LOSSES` and ``"score"``, which lowers the labelled score itself (for a
#: Q-network with label ``a``: the worst point of the ball for ``Q(., a)``, as in a worst-case TD target).
ATTACK_LOSSES: tuple[str, ...] = (*LOSSES, "score")
#: PGD's step-size schedules: ``constant`` (``alpha`` at every step) and ``cosine`` (``alpha`` decayed to
#: ~1/100 of it over the run, as the step-size decay of APGD does; Croce and Hein, ICML 2020).
SCHEDULES: tuple[str, ...] = ("constant", "cosine")


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


def margin(scores: Tensor, labels: Tensor) -> Tensor:
    """Per example ``z_y - max_{k != y} z_k``: negative exactly when another class (action) scores higher.

    For a Q-network with ``y`` the clean greedy action ``a*`` this is the SA-DQN margin
    ``Q(s, a*) - max_{a != a*} Q(s, a)`` (Zhang et al., "Robust Deep Reinforcement Learning against
    Adversarial Perturbations on State Observations", NeurIPS 2020); for a classifier it is the
    Carlini-Wagner margin (Carlini, Wagner, IEEE S&P 2017).
    """
    true = scores.gather(1, labels[:, None]).squeeze(1)
    other = scores.masked_fill(F.one_hot(labels, scores.shape[1]).bool(), float("-inf")).amax(1)
    return true - other


def ranked_margin(scores: Tensor, labels: Tensor, rank: int = 1) -> Tensor:
    """Per example ``z_y - z_(k)``, with ``z_(k)`` the ``rank``-th highest score among the other classes
    (``rank = 1`` is :func:`margin`). Ascending ``-ranked_margin`` with rank 2, 3, ... aims each run of an
    attack at another runner-up class, as the targeted runs of multi-targeted PGD do (Gowal et al., "An
    Alternative Surrogate Loss for PGD-based Adversarial Testing", 2019)."""
    true = scores.gather(1, labels[:, None]).squeeze(1)
    other = scores.masked_fill(F.one_hot(labels, scores.shape[1]).bool(), float("-inf"))
    rank = min(rank, scores.shape[1] - 1)
    return true - other.topk(rank, dim=1).values[:, -1]


def dlr(scores: Tensor, labels: Tensor) -> Tensor:
    """Per example the difference-of-logits ratio ``(z_y - max_{k != y} z_k) / (z_(1) - z_(3))`` (``z_(i)`` the
    ``i``-th highest score): the margin divided by a spread of the scores, so it does not change when the
    logits are shifted or rescaled (Croce and Hein, "Reliable evaluation of adversarial robustness with an
    ensemble of diverse parameter-free attacks", ICML 2020). Needs at least 3 classes."""
    top = scores.topk(3, dim=1).values
    return margin(scores, labels) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_dlr(scores: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
    """Per example the targeted DLR ``(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2)`` of APGD-T (Croce and Hein,
    ICML 2020): negative exactly when the target class ``t`` scores above the label. Needs at least 4 classes."""
    top = scores.topk(4, dim=1).values
    gap = scores.gather(1, labels[:, None]).squeeze(1) - scores.gather(1, targets[:, None]).squeeze(1)
    return gap / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def _per_example_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def project(delta: Tensor, eps: float | Tensor, norm: str, scale: Tensor | None = None) -> Tensor:
    """Project perturbations ``delta`` (batch first) onto the ``norm`` ball of radius ``eps``, measured in
    units of ``scale`` (per input coordinate, broadcast against the features; default all ones).

    ``eps`` is one radius, or one per example as a tensor of shape ``(batch, 1, ...)`` (see :meth:`Attack.budget`).
    """
    if scale is not None:
        if norm == "linf":
            bound = eps * scale
            return torch.maximum(torch.minimum(delta, bound), -bound)
        return scale * project(delta / scale, eps, norm)
    if norm == "linf":
        if isinstance(eps, Tensor):
            return torch.maximum(torch.minimum(delta, eps), -eps)
        return delta.clamp(-eps, eps)
    shrink = (eps / _per_example_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    return delta * shrink


def _ascent_direction(grad: Tensor, norm: str) -> Tensor:
    if norm == "linf":
        return grad.sign()
    return grad / _per_example_norm(grad).clamp_min(1e-12)


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Switch off ``requires_grad`` of ``model``'s parameters for the block (restored afterwards): an attack
    differentiates with respect to its inputs only, and the backward pass then skips the weights' gradients."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        yield model
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _check_scale(scale: Sequence[float] | Tensor | None) -> Tensor | None:
    if scale is None:
        return None
    values = torch.as_tensor(scale, dtype=torch.float64).detach().clone()
    if values.dim() == 0 or values.numel() == 0 or not (torch.isfinite(values) & (values > 0)).all():
        listed = values.tolist() if values.dim() else float(values)
        raise ValueError(f"scale must be a non-empty sequence of finite numbers > 0, got scale={listed}")
    return values


def _fits(scale_shape: torch.Size, feature_shape: torch.Size) -> bool:
    """Whether a scale of ``scale_shape`` broadcasts against features of ``feature_shape`` without growing them."""
    try:
        return torch.broadcast_shapes(scale_shape, feature_shape) == feature_shape
    except RuntimeError:
        return False


def _check_clip(clip: tuple[float, float] | None) -> tuple[float, float] | None:
    if clip is None:
        return None
    lo, hi = (float(c) for c in clip)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"clip must be None or (low, high) with finite low < high, got clip={clip!r}")
    return lo, hi


class Attack:
    """Base attack: holds the model, the norm, the budget ``eps`` and the loss; subclasses implement
    :meth:`forward`.

    :param model: maps a batch ``(B, *features)`` to scores ``(B, classes)`` (logits or Q-values).
    :param eps: radius of the ball (>= 0), in units of ``scale``.
    :param norm: ``"linf"`` or ``"l2"`` (over the flattened features).
    :param generator: the torch generator of every random draw (random starts, noise).
    :param loss: ``"ce"`` (cross-entropy on softmax(scores)), ``"margin"`` or ``"score"`` (see :meth:`loss`).
    :param scale: per-feature scale of the ball, broadcast against the features (default all ones).
    :param clip: the valid input range ``(low, high)``, enforced on inputs and results (default (0, 1),
        images); ``None`` for unbounded inputs such as states.
    """

    def __init__(self, model: nn.Module, eps: float, norm: str = "linf",
                 generator: torch.Generator | None = None, loss: str = "ce", *,
                 scale: Sequence[float] | Tensor | None = None,
                 clip: tuple[float, float] | None = (0.0, 1.0)) -> None:
        self.model = model
        self.eps = check_eps(eps)
        self.norm = check_choice(norm, NORMS, "norm")
        self.generator = generator
        self.loss_name = check_choice(loss, ATTACK_LOSSES, "attack loss")
        self.scale = _check_scale(scale)
        self.clip = _check_clip(clip)

    def loss(self, inputs: Tensor, labels: Tensor) -> Tensor:
        """The summed quantity the attack ascends: cross-entropy (``"ce"``), minus :func:`margin`
        (``"margin"``: the SA-DQN margin for a Q-network, the Carlini-Wagner margin for a classifier; it does
        not vanish when the softmax saturates, e.g. on MMC logits or large Q-values), or minus the labelled
        score (``"score"``: the attack then lowers ``Q(., label)`` itself)."""
        return self.loss_of(self.model(inputs), labels)

    def loss_of(self, scores: Tensor, labels: Tensor) -> Tensor:
        """:meth:`loss` from the model's scores of the inputs."""
        if self.loss_name == "ce":
            return F.cross_entropy(scores, labels, reduction="sum")
        if self.loss_name == "score":
            return -scores.gather(1, labels[:, None]).sum()
        return -margin(scores, labels).sum()

    def gradient(self, inputs: Tensor, labels: Tensor) -> Tensor:
        """Gradient of :meth:`loss` with respect to the inputs only (also under ``torch.no_grad()``)."""
        with torch.enable_grad():
            inputs = inputs.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.loss(inputs, labels), inputs)
        return grad

    def scores_and_gradient(self, inputs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """The model's scores of ``inputs`` (detached) and the gradient of :meth:`loss`, from one forward pass."""
        with torch.enable_grad():
            inputs = inputs.detach().requires_grad_(True)
            scores = self.model(inputs)
            (grad,) = torch.autograd.grad(self.loss_of(scores, labels), inputs)
        return scores.detach(), grad

    def budget(self, inputs: Tensor, eps: Sequence[float] | Tensor | None = None) -> float | Tensor:
        """The radius of each example's ball: ``self.eps``, or ``eps`` given per example (shape ``(batch,)``,
        finite and >= 0), returned as a tensor of shape ``(batch, 1, ...)`` in the dtype of ``inputs``."""
        if eps is None:
            return self.eps
        values = torch.as_tensor(eps, dtype=inputs.dtype, device=inputs.device)
        if tuple(values.shape) != (inputs.shape[0],):
            raise ValueError(f"per-example eps must have shape ({inputs.shape[0]},), got shape {tuple(values.shape)}")
        if values.numel() and not (torch.isfinite(values) & (values >= 0)).all():
            raise ValueError(f"per-example eps must be finite and >= 0, got {values.tolist()}")
        return values.view(-1, *([1] * (inputs.dim() - 1)))

    def scale_like(self, inputs: Tensor) -> Tensor | None:
        """``scale`` on the device and in the dtype of ``inputs`` (``None`` when it is all ones)."""
        return None if self.scale is None else self.scale.to(device=inputs.device, dtype=inputs.dtype)

    def step(self, grad: Tensor, size: float, scale: Tensor | None) -> Tensor:
        """The steepest ascent step of length ``size`` (in units of ``scale``) along ``grad``."""
        if scale is None:
            return size * _ascent_direction(grad, self.norm)
        return size * scale * _ascent_direction(grad * scale, self.norm)

    def clipped(self, inputs: Tensor) -> Tensor:
        """``inputs`` clamped to the valid range (unchanged when ``clip`` is ``None``)."""
        return inputs if self.clip is None else inputs.clamp(*self.clip)

    def random_points(self, inputs: Tensor, eps: float | Tensor | None = None) -> Tensor:
        """``inputs`` plus a point uniform in the scaled ``eps``-ball (the shared sampler), clipped; ``eps``
        defaults to ``self.eps`` (a per-example budget is a tensor of :meth:`budget`'s shape)."""
        u = sample_unit_ball(len(inputs), inputs.shape[1:], self.norm, generator=self.generator, dtype=inputs.dtype)
        noise = (self.eps if eps is None else eps) * u
        scale = self.scale_like(inputs)
        return self.clipped(inputs + (noise if scale is None else noise * scale))

    def forward(self, inputs: Tensor, labels: Tensor, eps: float | Tensor) -> Tensor:
        """Return adversarial inputs of the same shape, in the valid range and within the ball of radius ``eps``
        (one number, or one per example as shaped by :meth:`budget`) around ``inputs``."""
        raise NotImplementedError

    def check_inputs(self, inputs: Tensor) -> Tensor:
        """A floating tensor, batch first, finite, inside ``clip`` and of a shape ``scale`` fits."""
        if not isinstance(inputs, Tensor):
            raise ValueError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
        if inputs.dim() < 2:
            raise ValueError(f"inputs must have shape (batch, *features), got shape {tuple(inputs.shape)}")
        if not inputs.is_floating_point():
            raise ValueError(f"inputs must be floating point, got dtype {inputs.dtype}")
        if inputs.numel() and not torch.isfinite(inputs).all():
            raise ValueError("inputs must be finite, got NaN or infinite values")
        if self.clip is not None and inputs.numel() and (inputs.min() < self.clip[0] or inputs.max() > self.clip[1]):
            raise ValueError(f"inputs must lie in [{self.clip[0]:g}, {self.clip[1]:g}], got values in "
                             f"[{float(inputs.min())}, {float(inputs.max())}]")
        if self.scale is not None and not _fits(self.scale.shape, inputs.shape[1:]):
            raise ValueError(f"scale of shape {tuple(self.scale.shape)} does not fit inputs of shape "
                             f"{tuple(inputs.shape)}")
        return inputs

    def scores(self, inputs: Tensor) -> Tensor:
        """The model's scores of ``inputs`` without gradient; ``ValueError`` naming the shape if the inputs do
        not fit the model or the model does not return one row of scores per input."""
        try:
            with torch.no_grad():
                scores = self.model(inputs)
        except RuntimeError as error:
            raise ValueError(f"inputs of shape {tuple(inputs.shape)} do not fit the model: {error}") from error
        if scores.dim() != 2 or scores.shape[0] != inputs.shape[0]:
            raise ValueError(f"the model must return scores of shape ({inputs.shape[0]}, classes) for inputs of "
                             f"shape {tuple(inputs.shape)}, got shape {tuple(scores.shape)}")
        return scores

    def __call__(self, inputs: Tensor, labels: Tensor | None = None, *,
                 eps: Sequence[float] | Tensor | None = None) -> Tensor:
        """Attack ``inputs`` with ``labels`` (default: the model's own prediction on the clean inputs, i.e. the
        greedy action of a Q-network); the model's mode and ``.grad`` are left as they were.

        ``eps`` gives each example its own budget (shape ``(batch,)``), e.g. one batch holding several
        levels of a robustness curve; by default every example has ``self.eps``.
        """
        self.check_inputs(inputs)
        budget = self.budget(inputs, eps)
        with eval_mode(self.model), frozen(self.model):
            if labels is None:
                labels = self.scores(inputs).argmax(1)
            else:
                check_labels(labels, inputs.shape[0], self.scores(inputs[:1]).shape[1])
            return self.forward(inputs.detach(), labels, budget).detach()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps}, norm={self.norm!r})"


class FGM(Attack):
    """Fast gradient method: one step of size ``eps`` along sign(grad) (ℓ∞, = FGSM) or grad/‖grad‖₂
    (ℓ2), in units of ``scale``.

    Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015; on the
    states of a Q-network: Huang et al., "Adversarial Attacks on Neural Network Policies", 2017.
    """

    def forward(self, inputs: Tensor, labels: Tensor, eps: float | Tensor) -> Tensor:  # noqa: D102
        scale = self.scale_like(inputs)
        step = self.step(self.gradient(inputs, labels), eps, scale)
        return self.clipped(inputs + project(step, eps, self.norm, scale))


class PGD(Attack):
    """Iterative FGM / projected gradient descent with a random start and random restarts.

    ``steps`` ascent steps of size ``alpha`` (default ``2.5 * eps / steps``, in units of ``scale``), each
    projected onto the ball, clipped and detached. With ``restarts > 1`` the attack is re-run from fresh
    random starts on the examples whose prediction (greedy action) has not changed yet; per example it keeps
    a point that changes it if any restart finds one, else the point of lowest :func:`margin`. So an example
    counts as robust only if every restart fails. Kurakin et al. 2017 (IFGM); Madry, Makelov, Schmidt,
    Tsipras, Vladu, "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018 (PGD); on
    Q-networks with the margin loss: Zhang et al. (SA-DQN), NeurIPS 2020.
    """

    def __init__(self, model: nn.Module, eps: float, alpha: float | None = None, steps: int = 10,
                 norm: str = "linf", random_start: bool = True, restarts: int = 1,
                 generator: torch.Generator | None = None, loss: str = "ce", *,
                 scale: Sequence[float] | Tensor | None = None,
                 clip: tuple[float, float] | None = (0.0, 1.0), stop_on_flip: bool = False,
                 schedule: str = "constant", box_aware: bool = False, target_rank: int = 1) -> None:
        super().__init__(model, eps, norm, generator, loss, scale=scale, clip=clip)
        self.steps = check_int(steps, "steps", 1)
        self.restarts = check_int(restarts, "restarts", 1)
        self.schedule = check_choice(schedule, SCHEDULES, "step schedule")
        default_alpha = 2.5 * self.eps / steps if self.schedule == "constant" else 2.0 * self.eps
        self.alpha = check_eps(default_alpha if alpha is None else alpha, "alpha")
        self.random_start = bool(random_start)
        self.stop_on_flip = bool(stop_on_flip)
        self.box_aware = bool(box_aware)
        self.target_rank = check_int(target_rank, "target_rank", 1)

    def loss_of(self, scores: Tensor, labels: Tensor) -> Tensor:  # noqa: D102
        if self.loss_name == "margin" and self.target_rank > 1:
            return -ranked_margin(scores, labels, self.target_rank).sum()
        return super().loss_of(scores, labels)

    def step_factor(self, t: int) -> float:
        """The multiplier of ``alpha`` at step ``t``: 1 (``constant``), or ``(1 + cos(pi t / steps)) / 2 +
        1/100`` (``cosine``: large steps first, then fine ones near the boundary)."""
        if self.schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * t / self.steps)) + 0.01

    def usable(self, grad: Tensor, adv: Tensor) -> Tensor:
        """``grad`` with the coordinates zeroed that sit on a bound of ``clip`` and point out of it (with
        ``box_aware``): for ℓ2 the step then spends its length on coordinates that can move."""
        if not self.box_aware or self.clip is None:
            return grad
        low, high = self.clip
        return grad * ~(((adv <= low) & (grad < 0)) | ((adv >= high) & (grad > 0)))

    def step_size(self, eps: float | Tensor) -> float | Tensor:
        """``alpha`` for the attack's own budget; for per-example budgets, ``alpha`` in proportion to each
        example's ``eps`` (``alpha / self.eps`` of it, or ``2.5 / steps`` when ``self.eps`` is 0)."""
        if not isinstance(eps, Tensor):
            return self.alpha
        return eps * (self.alpha / self.eps if self.eps > 0 else 2.5 / self.steps)

    def run(self, inputs: Tensor, labels: Tensor, eps: float | Tensor | None = None) -> Tensor:
        """One PGD run (one random start) on ``inputs``, with the budget ``eps`` (default ``self.eps``).

        With ``stop_on_flip`` an example stops moving at the first point that changes its prediction (its
        greedy action): that point is kept, and the remaining steps cost nothing for it.
        """
        eps = self.eps if eps is None else eps
        scale, size = self.scale_like(inputs), self.step_size(eps)
        adv = self.random_points(inputs, eps) if self.random_start else inputs
        if not self.stop_on_flip:
            for t in range(self.steps):
                grad = self.usable(self.gradient(adv, labels), adv)
                adv = adv + self.step(grad, size * self.step_factor(t), scale)
                adv = self.clipped(inputs + project(adv - inputs, eps, self.norm, scale)).detach()
            return adv
        adv, active = adv.clone(), torch.arange(len(inputs), device=inputs.device)
        for t in range(self.steps):
            scores, grad = self.scores_and_gradient(adv[active], labels[active])
            moving = scores.argmax(1) == labels[active]
            active, grad = active[moving], grad[moving]
            if len(active) == 0:
                break
            grad = self.usable(grad, adv[active])
            adv[active] = self.step_rows(adv, inputs, active, grad, eps, size * self.step_factor(t), scale)
        return adv.detach()

    def step_rows(self, adv: Tensor, inputs: Tensor, active: Tensor, grad: Tensor, eps: float | Tensor,
                  size: float | Tensor, scale: Tensor | None) -> Tensor:
        """One projected ascent step of the rows ``active`` of ``adv`` (``grad``: their gradient), each in its
        own ball around ``inputs``; per-example ``eps`` and ``size`` are indexed like ``adv``."""
        rows_eps = eps[active] if isinstance(eps, Tensor) else eps
        rows_size = size[active] if isinstance(size, Tensor) else size
        start = inputs[active]
        moved = adv[active] + self.step(grad, rows_size, scale)
        return self.clipped(start + project(moved - start, rows_eps, self.norm, scale))

    def forward(self, inputs: Tensor, labels: Tensor, eps: float | Tensor) -> Tensor:  # noqa: D102
        return _restarted(self.model, lambda rows: self.run(inputs[rows], labels[rows], _rows(eps, rows)),
                          inputs, labels, self.restarts)

    def __repr__(self) -> str:
        extra = "" if self.schedule == "constant" else f", schedule={self.schedule!r}"
        extra += f", target_rank={self.target_rank}" if self.target_rank > 1 else ""
        return (f"PGD(eps={self.eps}, alpha={self.alpha:.4g}, steps={self.steps}, norm={self.norm!r}, "
                f"restarts={self.restarts}, loss={self.loss_name!r}{extra})")


class PGDEnsemble(PGD):
    """PGD with every loss of ``losses`` and ``restarts`` random starts per loss, all run side by side.

    The same attack as ``WorstOf.over_losses(PGD, ..., restarts=restarts, stop_on_flip=True)``: per example
    the worst of the ``len(losses) * restarts`` runs (a point that changes the prediction if any run finds
    one, else the lowest :func:`margin`), each run stopping at the first point that changes it, and every run
    of an example stopping once one of them has changed it (the worst is then a change anyway). Here every
    run starts at once, stacked into one batch, so a step costs one forward and backward pass for all of
    them: more arithmetic than restarting only the examples not yet flipped, but ``len(losses) * restarts``
    times fewer passes, which is what costs on small batches such as the states of a vector env
    (the robustness suite of :mod:`robustrl.experiments.suite`).
    """

    def __init__(self, model: nn.Module, eps: float, alpha: float | None = None, steps: int = 10,
                 norm: str = "linf", restarts: int = 1, generator: torch.Generator | None = None,
                 losses: Sequence[str] = LOSSES, *, scale: Sequence[float] | Tensor | None = None,
                 clip: tuple[float, float] | None = (0.0, 1.0)) -> None:
        losses = [check_choice(loss, LOSSES, "attack loss") for loss in losses]
        if not losses:
            raise ValueError("PGDEnsemble needs at least one loss")
        super().__init__(model, eps, alpha, steps, norm, True, restarts, generator, losses[0], scale=scale,
                         clip=clip, stop_on_flip=True)
        self.losses = losses

    def forward(self, inputs: Tensor, labels: Tensor, eps: float | Tensor) -> Tensor:  # noqa: D102
        copies, batch = len(self.losses) * self.restarts, len(inputs)
        stacked = inputs.repeat(copies, *([1] * (inputs.dim() - 1)))
        stacked_labels = labels.repeat(copies)
        budget = eps.repeat(copies, *([1] * (eps.dim() - 1))) if isinstance(eps, Tensor) else eps
        uses_ce = torch.tensor([loss == "ce" for loss in self.losses], device=inputs.device)
        uses_ce = uses_ce.repeat_interleave(self.restarts * batch)
        scale, size = self.scale_like(inputs), self.step_size(budget)
        adv = self.random_points(stacked, budget)
        active = torch.arange(len(stacked), device=inputs.device)
        flipped = torch.zeros(batch, dtype=torch.bool, device=inputs.device)
        for _ in range(self.steps):
            with torch.enable_grad():
                points = adv[active].requires_grad_(True)
                scores = self.model(points)
                rows_labels = stacked_labels[active]
                per_row = torch.where(uses_ce[active], F.cross_entropy(scores, rows_labels, reduction="none"),
                                      -margin(scores, rows_labels))
                (grad,) = torch.autograd.grad(per_row.sum(), points)
            flipped[active[scores.detach().argmax(1) != rows_labels] % batch] = True
            moving = ~flipped[active % batch]  # once one run flips an example, its other runs stop too
            active, grad = active[moving], grad[moving]
            if len(active) == 0:
                break
            adv[active] = self.step_rows(adv, stacked, active, grad, budget, size, scale).detach()
        runs = adv.view(copies, batch, *inputs.shape[1:])
        best = runs[0].clone()
        for candidate in runs[1:]:
            worse = _worse(self.model, best, candidate, labels)
            best[worse] = candidate[worse]
        return best

    def __repr__(self) -> str:
        return (f"PGDEnsemble(eps={self.eps}, alpha={self.alpha:.4g}, steps={self.steps}, norm={self.norm!r}, "
                f"restarts={self.restarts}, losses={self.losses!r})")


#: APGD's losses: cross-entropy, the DLR loss (:func:`dlr`) and the targeted DLR loss (:func:`targeted_dlr`).
APGD_LOSSES: tuple[str, ...] = ("ce", "dlr", "dlr-targeted")


class APGD(Attack):
    """Auto-PGD: PGD with momentum and a step size that halves itself where the loss stops rising (Croce and
    Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks",
    ICML 2020), as its reference implementation (fra31/auto-attack) does it.

    Each example starts uniform in the ball and has its own step size, ``alpha`` (default ``2 * eps``, in units
    of ``scale``). A step moves along the steepest ascent direction, projects and clips, then mixes in the last
    move with momentum 0.25. At checkpoints (first after 22 % of ``steps``, then 3 % of ``steps`` sooner each time,
    at least 6 % apart) an example's step size is halved, and it restarts from its best point so far, when the
    loss rose in at most ``rho`` of the steps since the last checkpoint, or when its step size was not halved
    at the last one and its best loss has not improved since. An example stops at the first point that changes
    its prediction (that point is returned); the others return the point of highest loss.

    ``loss``: ``"ce"``, ``"dlr"`` (:func:`dlr`, APGD-DLR; 3 classes or more) or ``"dlr-targeted"``
    (:func:`targeted_dlr`, APGD-T; below 4 classes it ascends the plain targeted margin ``z_t - z_y``).
    APGD-T aims in turn at the ``targets`` classes scoring highest after the label on the clean input (default
    every other class), each target on the examples the earlier ones left unchanged, with ``restarts`` random
    starts per target; the other losses run ``restarts`` random starts, each on the examples still unchanged.
    """

    def __init__(self, model: nn.Module, eps: float, steps: int = 100, norm: str = "linf", restarts: int = 1,
                 generator: torch.Generator | None = None, loss: str = "ce", *, alpha: float | None = None,
                 rho: float = 0.75, targets: int | None = None, scale: Sequence[float] | Tensor | None = None,
                 clip: tuple[float, float] | None = (0.0, 1.0)) -> None:
        super().__init__(model, eps, norm, generator, "ce", scale=scale, clip=clip)
        self.loss_name = check_choice(loss, APGD_LOSSES, "APGD loss")
        self.steps = check_int(steps, "steps", 1)
        self.restarts = check_int(restarts, "restarts", 1)
        self.alpha = check_eps(2.0 * self.eps if alpha is None else alpha, "alpha")
        self.rho = check_probability(rho, "rho")
        self.targets = None if targets is None else check_int(targets, "targets", 1)

    def per_example_loss(self, scores: Tensor, labels: Tensor, targets: Tensor | None = None) -> Tensor:
        """The loss each example ascends: cross-entropy, minus DLR, or minus targeted DLR at ``targets``."""
        if self.loss_name == "ce":
            return F.cross_entropy(scores, labels, reduction="none")
        if self.loss_name == "dlr":
            if scores.shape[1] < 3:
                raise ValueError(f"APGD's DLR loss needs at least 3 classes, the model has {scores.shape[1]}")
            return -dlr(scores, labels)
        if targets is None:
            raise ValueError("APGD's targeted DLR loss needs the target class of every example")
        if scores.shape[1] < 4:  # DLR's spread needs 4 classes: the plain targeted margin z_t - z_y
            return scores.gather(1, targets[:, None]).squeeze(1) - scores.gather(1, labels[:, None]).squeeze(1)
        return -targeted_dlr(scores, labels, targets)

    def loss_of(self, scores: Tensor, labels: Tensor) -> Tensor:  # noqa: D102
        return self.per_example_loss(scores, labels).sum()

    def _scores_loss_gradient(self, inputs: Tensor, labels: Tensor,
                              targets: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        with torch.enable_grad():
            inputs = inputs.detach().requires_grad_(True)
            scores = self.model(inputs)
            losses = self.per_example_loss(scores, labels, targets)
            (grad,) = torch.autograd.grad(losses.sum(), inputs)
        return scores.detach(), losses.detach(), grad

    def _checkpoints(self) -> set[int]:
        """The steps (0-based) after which step sizes are checked: the reference's p_j schedule."""
        first = max(int(0.22 * self.steps), 1)
        shrink, least = max(int(0.03 * self.steps), 1), max(int(0.06 * self.steps), 1)
        points, at, length = set(), first - 1, first
        while at < self.steps:
            points.add(at)
            length = max(length - shrink, least)
            at += length
        return points

    def run(self, inputs: Tensor, labels: Tensor, eps: float | Tensor, targets: Tensor | None = None) -> Tensor:
        """One APGD run from one random start (APGD-T: aimed at ``targets``, one class per example)."""
        scale, batch = self.scale_like(inputs), len(inputs)
        shape = (batch, *([1] * (inputs.dim() - 1)))
        size = (eps * (self.alpha / self.eps if self.eps > 0 else 2.0) if isinstance(eps, Tensor)
                else torch.full(shape, self.alpha, dtype=inputs.dtype, device=inputs.device)).clone()

        def projected(points: Tensor) -> Tensor:
            return self.clipped(inputs + project(points - inputs, eps, self.norm, scale))

        adv = self.random_points(inputs, eps)
        scores, loss, grad = self._scores_loss_gradient(adv, labels, targets)
        flipped = scores.argmax(1) != labels
        best, best_loss, best_grad = adv.clone(), loss.clone(), grad.clone()
        previous = adv.clone()
        history = [loss]
        loss_at_check, halved_at_check = best_loss.clone(), torch.ones(batch, dtype=torch.bool, device=adv.device)
        checkpoints, last_check = self._checkpoints(), -1
        rows = torch.arange(batch, device=adv.device)
        for t in range(self.steps):
            active = rows[~flipped]
            if len(active) == 0:
                break
            momentum = 0.75 if t > 0 else 1.0
            a, g, s = adv[active], grad[active], size[active]
            rows_eps = eps[active] if isinstance(eps, Tensor) else eps
            start = inputs[active]
            z = self.clipped(start + project(a + self.step(g, 1.0, scale) * s - start, rows_eps, self.norm, scale))
            z = a + (z - a) * momentum + (a - previous[active]) * (1 - momentum)
            moved = self.clipped(start + project(z - start, rows_eps, self.norm, scale)).detach()
            previous[active] = a
            adv[active] = moved
            scores, rows_loss, rows_grad = self._scores_loss_gradient(
                moved, labels[active], None if targets is None else targets[active])
            grad[active] = rows_grad
            loss = history[-1].clone()
            loss[active] = rows_loss
            history.append(loss)
            now_flipped = scores.argmax(1) != labels[active]
            flipped[active[now_flipped]] = True
            better = active[rows_loss > best_loss[active]]
            best[better], best_loss[better], best_grad[better] = adv[better], loss[better], grad[better]
            if t in checkpoints:
                span = t - last_check
                rises = sum((history[j + 1] > history[j]).float() for j in range(len(history) - 1 - span,
                                                                                len(history) - 1))
                oscillating = rises <= span * self.rho
                stalled = ~halved_at_check & (loss_at_check >= best_loss)
                halve = (oscillating | stalled) & ~flipped
                halved_at_check, loss_at_check = halve, best_loss.clone()
                size[halve] /= 2.0
                adv[halve], grad[halve] = best[halve], best_grad[halve]
                last_check = t
        return torch.where(flipped.view(shape), adv, best).detach()

    def forward(self, inputs: Tensor, labels: Tensor, eps: float | Tensor) -> Tensor:  # noqa: D102
        if self.loss_name != "dlr-targeted":
            return self._restarts(inputs, labels, eps, None)
        with torch.no_grad():
            clean = self.model(inputs)
        others = clean.masked_fill(F.one_hot(labels, clean.shape[1]).bool(), float("-inf"))
        ranked = others.argsort(dim=1, descending=True)[:, : clean.shape[1] - 1]
        count = ranked.shape[1] if self.targets is None else min(self.targets, ranked.shape[1])
        best = inputs.clone()
        for rank in range(count):
            best = self._restarts(inputs, labels, eps, ranked[:, rank], best if rank else None)
        return best

    def _restarts(self, inputs: Tensor, labels: Tensor, eps: float | Tensor, target: Tensor | None,
                  best: Tensor | None = None) -> Tensor:
        """``restarts`` runs, each on the examples no earlier run (or ``best``, when given) has changed."""
        return _restarted(self.model, lambda rows: self.run(inputs[rows], labels[rows], _rows(eps, rows),
                                                            None if target is None else target[rows]),
                          inputs, labels, self.restarts, best)

    def __repr__(self) -> str:
        extra = f", targets={self.targets}" if self.loss_name == "dlr-targeted" else ""
        return (f"APGD(eps={self.eps}, steps={self.steps}, norm={self.norm!r}, restarts={self.restarts}, "
                f"loss={self.loss_name!r}{extra})")


class RandomNoise(Attack):
    """Uniform random noise in the scaled ``eps``-ball of ``norm`` (the shared sampler), clipped."""

    def forward(self, inputs: Tensor, labels: Tensor, eps: float | Tensor) -> Tensor:  # noqa: D102
        return self.random_points(inputs, eps)


def _rows(eps: float | Tensor, rows: Tensor) -> float | Tensor:
    """The budget of examples ``rows``: one number for all, or their rows of a per-example budget."""
    return eps[rows] if isinstance(eps, Tensor) else eps


def _restarted(model: nn.Module, run: Any, inputs: Tensor, labels: Tensor, restarts: int,
               best: Tensor | None = None) -> Tensor:
    """``restarts`` calls of ``run(rows)`` (an attack run on the examples ``rows``), the first on every example
    (unless ``best`` already holds a result), each later one on the examples no result so far has changed; per
    example the worst result is kept (:func:`_worse`)."""
    for _ in range(restarts):
        if best is None:
            best = run(torch.arange(len(inputs), device=inputs.device))
            continue
        with torch.no_grad():
            rows = (model(best).argmax(1) == labels).nonzero().squeeze(1)
        if len(rows) == 0:
            break
        candidate = run(rows)
        worse = _worse(model, best[rows], candidate, labels[rows])
        best[rows[worse]] = candidate[worse]
    assert best is not None
    return best


def _worse(model: nn.Module, current: Tensor, candidate: Tensor, labels: Tensor) -> Tensor:
    """Per example, whether ``candidate`` beats ``current`` as an attack: it changes the prediction and
    ``current`` does not, or both agree on that and ``candidate`` has the lower :func:`margin`."""
    with torch.no_grad():
        now, new = model(current), model(candidate)
    flipped_now, flipped_new = now.argmax(1) != labels, new.argmax(1) != labels
    return (flipped_new & ~flipped_now) | ((flipped_new == flipped_now) & (margin(new, labels) < margin(now, labels)))


class WorstOf:
    """The worst of several attacks on one model, per example: a point that changes the prediction (greedy
    action) if any attack finds one, else the point of lowest :func:`margin` (ties keep the earlier attack).

    ``WorstOf.over_losses(PGD, q_net, eps, ...)`` runs the same attack with every loss of :data:`LOSSES`
    (cross-entropy and the SA-DQN margin), the reported attack of a robustness evaluation.
    """

    def __init__(self, attacks: Sequence[Attack]) -> None:
        attacks = list(attacks)
        if not attacks or not all(isinstance(a, Attack) for a in attacks):
            raise ValueError(f"WorstOf needs a non-empty sequence of attacks, got {attacks!r}")
        if any(a.model is not attacks[0].model for a in attacks):
            raise ValueError("WorstOf needs attacks on one model; got attacks on different models")
        self.attacks = attacks
        self.model = attacks[0].model

    @classmethod
    def over_losses(cls, attack: type[Attack], model: nn.Module, eps: float, **kwargs: object) -> WorstOf:
        """``attack(model, eps, loss=l, **kwargs)`` for every loss ``l`` of :data:`LOSSES`, worst per example."""
        return cls([attack(model, eps, loss=loss, **kwargs) for loss in LOSSES])  # type: ignore[arg-type]

    def __call__(self, inputs: Tensor, labels: Tensor | None = None, *,
                 eps: Sequence[float] | Tensor | None = None) -> Tensor:
        """Run every attack on ``inputs`` (labels default to the model's clean prediction); keep the worst.

        An attack after the first runs only on the examples whose prediction no attack has changed yet (a
        change found earlier wins the tie anyway). ``eps`` gives each example its own budget (shape ``(batch,)``).
        """
        first = self.attacks[0]
        first.check_inputs(inputs)
        if labels is None:
            with eval_mode(self.model):
                labels = first.scores(inputs).argmax(1)
        per_example = None if eps is None else first.budget(inputs, eps).flatten()
        best = first(inputs, labels, eps=per_example)
        for attack in self.attacks[1:]:
            with eval_mode(self.model), torch.no_grad():
                unchanged = (self.model(best).argmax(1) == labels).nonzero().squeeze(1)
            if len(unchanged) == 0:
                break
            candidate = attack(inputs[unchanged], labels[unchanged],
                               eps=None if per_example is None else per_example[unchanged])
            with eval_mode(self.model):
                worse = _worse(self.model, best[unchanged], candidate, labels[unchanged])
            best[unchanged[worse]] = candidate[worse]
        return best

    def __repr__(self) -> str:
        return f"WorstOf({self.attacks!r})"


#: What an attack on an actor-critic agent's observations ascends: ``"mad"`` (the change of the action) or
#: ``"critic"`` (minus the critic's value of the clean state at the attacked action).
ACTOR_OBJECTIVES = ("mad", "critic")


class ActorAttack(PGD):
    """PGD on the observation of an actor-critic agent (SAC, TD3): the agent acts on ``s~`` in the ball around the
    true state ``s``, and the attack chooses ``s~``.

    - ``objective="mad"``: maximise ``||pi(s~) - pi(s)||^2``, the change of the action (the maximal action
      difference attack of SA-DDPG / SA-PPO: Zhang et al., "Robust Deep Reinforcement Learning against Adversarial
      Perturbations on State Observations", NeurIPS 2020);
    - ``objective="critic"``: minimise ``Q(s, pi(s~))``, the agent's own critic at the true state (the critic attack
      of the same paper, after Pattanaik et al. 2018).

    ``model`` is the deterministic actor (states -> actions in [-1, 1]); ``critic`` maps (states, actions) to one
    value per row (the first critic of SB3's SAC and TD3). One random start, ``steps`` steps of size
    ``2.5 * eps / steps``, the ball in units of ``scale``; states are unbounded (no clip).
    """

    def __init__(self, model: nn.Module, eps: float, objective: str = "mad", critic: Any = None, steps: int = 10,
                 norm: str = "linf", generator: torch.Generator | None = None, *,
                 scale: Sequence[float] | Tensor | None = None) -> None:
        super().__init__(model, eps, steps=steps, norm=norm, generator=generator, loss="score", scale=scale,
                         clip=None)
        self.objective = check_choice(objective, ACTOR_OBJECTIVES, "actor attack objective")
        if self.objective == "critic" and critic is None:
            raise ValueError("the critic attack needs the agent's critic")
        self.critic = critic
        self._clean: Tensor | None = None
        self._actions: Tensor | None = None

    def loss_of(self, scores: Tensor, labels: Tensor) -> Tensor:
        """``labels`` are row indices into the clean batch of :meth:`__call__`; ``scores`` the attacked actions."""
        assert self._clean is not None and self._actions is not None
        if self.objective == "mad":
            return ((scores - self._actions[labels]) ** 2).sum()
        return -self.critic(self._clean[labels], scores).sum()

    def __call__(self, inputs: Tensor, labels: Tensor | None = None, *,
                 eps: Sequence[float] | Tensor | None = None) -> Tensor:
        """Attack ``inputs`` (the true states); ``labels`` are not used (the clean actions are the reference)."""
        self.check_inputs(inputs)
        budget = self.budget(inputs, eps)
        with eval_mode(self.model), frozen(self.model):
            with torch.no_grad():
                self._clean, self._actions = inputs.detach(), self.model(inputs).detach()
            rows = torch.arange(len(inputs), device=inputs.device)
            try:
                return self.run(inputs.detach(), rows, budget).detach()
            finally:
                self._clean = self._actions = None

    def __repr__(self) -> str:
        return f"ActorAttack(eps={self.eps}, objective={self.objective!r}, steps={self.steps}, norm={self.norm!r})"
