"""Does a variant of the attack ensemble converge better? The convergence check of the benchmarks, on the digits
models where the shipped ensemble converges worst, for several variants of its runs.

    .venv/bin/python scripts/ensemble_variants.py [--out results/supervised/ensemble_variants.md]

For each (model, cell) and variant: the 50-step x 3-restart ensemble's robust accuracy on the 450 digits test
points, then the drop in points when a 100 x 6 ensemble of the same variant is run on the points the first left
robust (the check of ``robustrl.supervised.training.convergence``). Variants: the starting step size of the cosine
schedule (1, 2 = the shipped default, 4 times eps) and the mix of the 6 runs (``shipped``: 3 cross-entropy runs and
3 margin runs aimed at the 1st, 2nd and 3rd runner-up class; ``margin-heavy``: 1 cross-entropy run and 5 margin
runs cycling over the runner-up ranks). Models: the digits preset's training (7 epochs, eps 0.15, 5 PGD steps)
of MMC, MMC-AT, FGM-AT and ADT-EXP, seed 0, one torch thread. About 2 minutes on one core.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch

from robustrl.attacks import PGD, WorstOf
from robustrl.experiments.io import atomic_write_text
from robustrl.supervised.data import load_digits_dataset
from robustrl.supervised.methods import MethodConfig, make_method
from robustrl.supervised.models import make_model
from robustrl.supervised.training import TrainConfig, train

CELLS = [("mmc", "l2", 0.75), ("mmc-at", "l2", 0.75), ("fgm-at", "l2", 0.75), ("adt-exp", "linf", 0.15)]
PLANS = {
    "shipped": lambda r: [("ce", 1)] * r + [("margin", k) for k in range(1, r + 1)],
    "margin-heavy": lambda r: [("ce", 1)] * max(r // 3, 1)
    + [("margin", k % 3 + 1) for k in range(2 * r - max(r // 3, 1))],
}


def _trained(name: str, data) -> torch.nn.Module:
    model = make_model("small-cnn", seed=0, head="mmc" if name.startswith("mmc") else "softmax")
    train(model, make_method(name, MethodConfig(eps=0.15, steps=5)), data.x_train, data.y_train,
          TrainConfig(epochs=7, lr=2e-3), generator=torch.Generator().manual_seed(0), progress=False)
    return model.eval()


def _ensemble(model, eps, norm, steps, restarts, seed, alpha_factor, plan) -> WorstOf:
    gen = torch.Generator().manual_seed(seed)
    common = dict(alpha=alpha_factor * eps, steps=steps, norm=norm, random_start=True, restarts=1, generator=gen,
                  stop_on_flip=True, schedule="cosine", box_aware=True)
    return WorstOf([PGD(model, eps, loss=loss, target_rank=rank, **common) for loss, rank in PLANS[plan](restarts)])


def _robust(model, attack, x, y) -> torch.Tensor:
    with torch.no_grad():
        right = (model(x).argmax(1) == y).nonzero().squeeze(1)
    out = torch.zeros(len(x), dtype=torch.bool)
    adv = attack(x[right], y[right])
    with torch.no_grad():
        out[right] = model(adv).argmax(1) == y[right]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/supervised/ensemble_variants.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load_digits_dataset()
    x, y = data.x_test, data.y_test
    lines = ["| model | cell | runs | first step (x eps) | robust % (50 x 3) | change at 100 x 6 (points) | s |",
             "|---|---|---|---|---|---|---|"]
    for name, norm, eps in CELLS:
        model = _trained(name, data)
        for plan in PLANS:
            for factor in (1.0, 2.0, 4.0):
                start = time.perf_counter()
                base = _robust(model, _ensemble(model, eps, norm, 50, 3, 1, factor, plan), x, y)
                seconds = time.perf_counter() - start
                survivors = base.nonzero().squeeze(1)
                strong = base.clone()
                strong[survivors] = _robust(model, _ensemble(model, eps, norm, 100, 6, 2, factor, plan),
                                            x[survivors], y[survivors])
                change = 100 * (base.float().mean() - strong.float().mean()).item()
                lines.append(f"| {name} | {norm} {eps:g} | {plan} | {factor:g} | {100 * base.float().mean():.2f} | "
                             f"{change:.2f} | {seconds:.1f} |")
                print(lines[-1], flush=True)
    command = shlex.join(["python", "scripts/ensemble_variants.py", *(sys.argv[1:] if argv is None else argv)])
    text = "\n".join([f"<!-- Made by: {command} -->", "", "# Convergence of attack-ensemble variants (digits, seed 0)",
                      "", __doc__.split("\n\n", 2)[2].strip(), "", *lines]) + "\n"
    atomic_write_text(args.out, text)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
