"""Mini-batch training and accuracy-under-attack evaluation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from robustrl.checks import check_int
from robustrl.supervised._checks import check_choice, check_eps, check_images, check_labels
from robustrl.supervised.attacks import ATTACKS, NORMS, make_attack
from robustrl.supervised.methods import Method

__all__ = ["AttackSpec", "NonFiniteLossError", "TrainConfig", "accuracy", "evaluate", "train"]


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
    """One evaluation column: attack ``name`` in ``norm`` with budget ``eps`` (PGD: ``steps``,
    ``restarts``)."""

    name: str
    norm: str
    eps: float
    steps: int = 20
    restarts: int = 1

    def __post_init__(self) -> None:
        check_choice(self.name, ATTACKS, "attack")
        check_choice(self.norm, NORMS, "norm")
        check_eps(self.eps)
        check_int(self.steps, "steps", 1)
        check_int(self.restarts, "restarts", 1)

    @property
    def key(self) -> str:
        """Column key such as ``pgd_linf_0.1``."""
        return f"{self.name}_{self.norm}_{self.eps:g}"


def evaluate(model: nn.Module, x: Tensor, y: Tensor, specs: Sequence[AttackSpec], *, seed: int = 0,
             batch_size: int = 250, progress: bool = True) -> dict[str, float]:
    """Clean accuracy (key ``clean``) and accuracy under each attack in ``specs`` (keys ``spec.key``).

    Each attack gets its own generator seeded from ``seed`` and the column index, so results do not
    depend on the order or number of columns.
    """
    check_images(x, "x")
    check_labels(y, len(x), _num_classes(model, x), "y")
    results = {"clean": accuracy(model, x, y, batch_size)}
    for i, spec in enumerate(tqdm(specs, desc="evaluate", disable=not progress, leave=False)):
        gen = torch.Generator().manual_seed(seed * 1000 + i)
        atk = make_attack(spec.name, model, spec.eps, spec.norm, steps=spec.steps, restarts=spec.restarts,
                          generator=gen)
        correct = 0
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            adv = atk(xb, yb)
            with torch.no_grad():
                correct += int((model(adv).argmax(1) == yb).sum())
        results[spec.key] = correct / len(x)
    return results
