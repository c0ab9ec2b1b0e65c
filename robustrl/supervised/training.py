"""Mini-batch training and accuracy-under-attack evaluation."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from robustrl.attacks import eval_mode
from robustrl.checks import check_int
from robustrl.supervised._checks import check_choice, check_eps, check_images, check_labels
from robustrl.supervised.attacks import ATTACKS, NORMS, make_attack
from robustrl.supervised.methods import Method

__all__ = ["AttackSpec", "GradientCounter", "NonFiniteLossError", "TrainConfig", "accuracy", "attacked_correct",
           "convergence", "evaluate", "evaluate_points", "train"]


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the message names the epoch and batch."""


@dataclass
class TrainConfig:
    """Optimisation settings: Adam with learning rate ``lr``, ``epochs`` passes in batches of
    ``batch_size``."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` on a bad value; return ``self``."""
        check_int(self.epochs, "epochs", 1)
        check_int(self.batch_size, "batch_size", 1)
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be finite and > 0, got lr={self.lr}")
        return self

    def to_dict(self) -> dict:
        """Plain-dict form for run records."""
        return asdict(self)


def _num_classes(model: nn.Module, x: Tensor) -> int:
    with torch.no_grad():
        was = model.training
        model.eval()
        out = model(x[:1]).shape[1]
        model.train(was)
    return out


def train(model: nn.Module, method: Method, x: Tensor, y: Tensor, config: TrainConfig, *,
          generator: torch.Generator, progress: bool = True) -> list[float]:
    """Train ``model`` in place with ``method``; return the mean training loss of each epoch.

    Batches are shuffled with ``generator``, which also drives every random draw of the method, so the
    same seed gives the same model. A non-finite loss raises :class:`NonFiniteLossError` naming the
    epoch and batch.
    """
    config.validate()
    check_images(x, "x")
    check_labels(y, len(x), _num_classes(model, x), "y")
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    history = []
    n_batches = math.ceil(len(x) / config.batch_size)
    bar = tqdm(total=config.epochs * n_batches, desc=f"train {method.name}", disable=not progress,
               leave=False)
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for batch, start in enumerate(range(0, len(x), config.batch_size), start=1):
            idx = order[start : start + config.batch_size]
            loss = method.loss(model, x[idx], y[idx], generator)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"non-finite loss {loss.item()} in method {method.name!r} at epoch {epoch}, batch {batch}"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            bar.update(1)
        history.append(total / len(x))
        bar.set_postfix(epoch=epoch, loss=f"{history[-1]:.4f}")
    bar.close()
    model.eval()
    return history


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """Fraction of ``x`` classified as ``y`` (model in eval mode, mode restored)."""
    was = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            correct += (model(x[start : start + batch_size]).argmax(1) == y[start : start + batch_size]).sum()
    model.train(was)
    return float(correct) / len(x)


@dataclass(frozen=True)
class AttackSpec:
    """One evaluation column: attack ``name`` in ``norm`` with budget ``eps`` (PGD and the ensemble:
    ``steps`` and ``restarts``); ``label`` replaces ``name`` in the column key, so one table can hold the same
    attack at several strengths (e.g. ``label="pgd5"`` for a 5-step PGD)."""

    name: str
    norm: str
    eps: float
    steps: int = 20
    restarts: int = 1
    label: str | None = None

    def __post_init__(self) -> None:
        check_choice(self.name, ATTACKS, "attack")
        check_choice(self.norm, NORMS, "norm")
        check_eps(self.eps)
        check_int(self.steps, "steps", 1)
        check_int(self.restarts, "restarts", 1)
        if self.label is not None and (not isinstance(self.label, str) or not self.label
                                       or "_" in self.label):
            raise ValueError(f"label must be a non-empty string without '_', got label={self.label!r}")

    @property
    def key(self) -> str:
        """Column key such as ``ensemble_linf_0.1`` (``{label or name}_{norm}_{eps}``)."""
        return f"{self.label or self.name}_{self.norm}_{self.eps:g}"

    def stronger(self, factor: int = 2) -> AttackSpec:
        """The same attack with ``factor`` times the steps and the restarts (the convergence check)."""
        return replace(self, steps=self.steps * factor, restarts=self.restarts * factor)

    def to_dict(self) -> dict:
        """Plain-dict form (``label`` only when set, so records without labels stay as they were)."""
        out = asdict(self)
        if out["label"] is None:
            del out["label"]
        return out


#: Test points attacked per batch in evaluation (one attack generator runs through the batches in order, so the
#: results of the first ``k * EVAL_BATCH_SIZE`` points do not depend on the points after them).
EVAL_BATCH_SIZE = 250


def attack_generator(seed: int, index: int) -> torch.Generator:
    """The generator of evaluation column ``index`` of a run with ``seed`` (its attacks' random starts), so a column's
    result does not depend on the other columns."""
    return torch.Generator().manual_seed(seed * 1000 + index)


def attacked_correct(model: nn.Module, x: Tensor, y: Tensor, spec: AttackSpec, generator: torch.Generator,
                     batch_size: int = EVAL_BATCH_SIZE) -> Tensor:
    """Per point, whether ``model`` still classifies ``x`` correctly under the attack ``spec`` (a bool
    tensor of shape ``(len(x),)``); points misclassified clean count as not robust without being attacked.
    The model is in eval mode throughout (its mode is restored)."""
    atk = make_attack(spec.name, model, spec.eps, spec.norm, steps=spec.steps, restarts=spec.restarts,
                      generator=generator)
    out = torch.zeros(len(x), dtype=torch.bool)
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            with torch.no_grad():
                right = (model(xb).argmax(1) == yb).nonzero().squeeze(1)
            if len(right) == 0:
                continue
            adv = atk(xb[right], yb[right])
            with torch.no_grad():
                out[start + right] = model(adv).argmax(1) == yb[right]
    return out


def evaluate_points(model: nn.Module, x: Tensor, y: Tensor, specs: Sequence[AttackSpec], *, seed: int = 0,
                    batch_size: int = EVAL_BATCH_SIZE, progress: bool = True,
                    costs: dict[str, dict[str, float]] | None = None) -> dict[str, Tensor]:
    """Per-point correctness, clean (key ``clean``) and under each attack of ``specs`` (keys ``spec.key``),
    as bool tensors; the accuracies of :func:`evaluate` are their means.

    Each attack gets its own generator seeded from ``seed`` and the column index, so results do not
    depend on the order or number of columns. When ``costs`` is a dict, it receives per column the
    seconds and the gradient evaluations (forward-backward passes) per test point the attack took.
    """
    check_images(x, "x")
    check_labels(y, len(x), _num_classes(model, x), "y")
    with eval_mode(model), torch.no_grad():
        clean = torch.cat([model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]
                           for i in range(0, len(x), batch_size)])
    results = {"clean": clean}
    for i, spec in enumerate(tqdm(specs, desc="evaluate", disable=not progress, leave=False)):
        start = time.perf_counter()
        with GradientCounter(model) as counter:
            results[spec.key] = attacked_correct(model, x, y, spec, attack_generator(seed, i), batch_size)
        if costs is not None:
            costs[spec.key] = dict(seconds=time.perf_counter() - start, passes_per_point=counter.rows / len(x))
    return results


def evaluate(model: nn.Module, x: Tensor, y: Tensor, specs: Sequence[AttackSpec], *, seed: int = 0,
             batch_size: int = EVAL_BATCH_SIZE, progress: bool = True) -> dict[str, float]:
    """Clean accuracy (key ``clean``) and accuracy under each attack in ``specs`` (keys ``spec.key``): the
    means of :func:`evaluate_points`."""
    points = evaluate_points(model, x, y, specs, seed=seed, batch_size=batch_size, progress=progress)
    return {k: float(v.float().mean()) for k, v in points.items()}


def convergence(model: nn.Module, x: Tensor, y: Tensor, specs: Sequence[AttackSpec],
                base: dict[str, Tensor], *, seed: int = 0, factor: int = 2, batch_size: int = EVAL_BATCH_SIZE,
                progress: bool = True) -> dict[str, dict[str, float]]:
    """How much stronger attacks change each column: for every spec, the attack with ``factor`` times its
    steps and restarts (:meth:`AttackSpec.stronger`, fresh random starts) is run on the points ``base`` (the
    per-point result of :func:`evaluate_points` on the same ``x``) counts as robust, so the point counts only
    if both attacks fail. Returns ``{key: {"base": acc, "stronger": acc, "change": points}}`` (accuracies as
    fractions, the change in percentage points)."""
    out = {}
    for i, spec in enumerate(tqdm(specs, desc="convergence", disable=not progress, leave=False)):
        survived = base[spec.key].nonzero().squeeze(1)
        still = torch.zeros(len(x), dtype=torch.bool)
        if len(survived):
            gen = attack_generator(seed + 7919, i)
            still[survived] = attacked_correct(model, x[survived], y[survived], spec.stronger(factor), gen,
                                               batch_size)
        b, s = float(base[spec.key].float().mean()), float(still.float().mean())
        out[spec.key] = dict(base=b, stronger=s, change=100.0 * (b - s), steps=spec.steps * factor,
                             restarts=spec.restarts * factor)
    return out


class GradientCounter:
    """Counts, per input row, the model's forward passes that build a graph (each is followed by one
    backward pass in training: an attack step, an entropic sample, the loss itself). Use as a context
    manager; :attr:`rows` is the total. The count is taken at the model's first layer with parameters,
    which every forward path goes through (also :meth:`MMCNet.embedding`, which skips the head)."""

    def __init__(self, model: nn.Module) -> None:
        layers = [m for m in model.modules() if not list(m.children()) and list(m.parameters(recurse=False))]
        if not layers:
            raise ValueError(f"{type(model).__name__} has no layer with parameters to count passes at")
        self.model, self.layer, self.rows, self._handle = model, layers[0], 0, None

    def _hook(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        if torch.is_grad_enabled() and isinstance(output, Tensor) and output.requires_grad:
            self.rows += len(output)

    def __enter__(self) -> GradientCounter:
        self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()
