"""SG(L) versus RT-MLMC(L) on a digits CNN: samples per gradient, time per step, gradient variance, bias.

Wang, Gao, Xie (arXiv:2408.09672) motivate RT-MLMC by its O(L) expected cost against SG's O(2^L) for the
same target ``F^L``. This module measures that on the entropic cross-entropy loss of a small CNN trained
briefly on digits, for ``L = 2..8``, using only :mod:`robustrl.estimators`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from robustrl.estimators import RTMLMC, SAA, SG, Estimator
from robustrl.supervised.data import load_digits_dataset
from robustrl.supervised.methods import ERM
from robustrl.supervised.models import make_model
from robustrl.supervised.training import TrainConfig, train

__all__ = [
    "EstimatorBenchConfig",
    "quick_config",
    "run_estimator_benchmark",
    "summary_lines",
    "write_estimator_report",
]


@dataclass
class EstimatorBenchConfig:
    """Settings: levels, the entropic ``rho``/``eta`` (ℓ∞), batch sizes, repetition counts, seed."""

    levels: list[int] = field(default_factory=lambda: list(range(2, 9)))
    rho: float = 0.2
    eta: float = 0.5
    batch: int = 8
    step_batch: int = 64
    value_reps_sg: int = 200
    value_reps_mlmc: int = 4000
    grad_reps_sg: int = 40
    grad_reps_mlmc: int = 400
    timing_steps_sg: int = 10
    timing_steps_mlmc: int = 100
    reference_samples: int = 1 << 15
    reference_reps: int = 4
    pretrain_epochs: int = 3
    seed: int = 0


def _loss_fn(model: nn.Module, y: Tensor):
    def f(z: Tensor) -> Tensor:
        b, m = z.shape[:2]
        out = model(z.reshape(b * m, *z.shape[2:]))
        return F.cross_entropy(out, y.repeat_interleave(m), reduction="none").view(b, m)

    return f


class _Counting:
    """Wrap ``f`` to count how many perturbed inputs it evaluates per input row."""

    def __init__(self, f):
        self.f, self.count = f, 0

    def __call__(self, z: Tensor) -> Tensor:
        self.count += z.shape[1]
        return self.f(z)


def _value_stats(est: Estimator, model, x, y, reps, cfg, gen) -> tuple[float, float, float]:
    vals, counted = [], _Counting(_loss_fn(model, y))
    with torch.no_grad():
        for _ in range(reps):
            vals.append(float(est.estimate(counted, x, rho=cfg.rho, eta=cfg.eta, generator=gen,
                                           clip=(0.0, 1.0)).mean()))
    v = np.array(vals)
    se = float(v.std(ddof=1) / math.sqrt(reps)) if reps > 1 else math.nan
    return float(v.mean()), se, counted.count / reps


def _estimate(est: Estimator, model, x, y, cfg, gen) -> Tensor:
    value = est.estimate(_loss_fn(model, y), x, rho=cfg.rho, eta=cfg.eta, generator=gen, clip=(0.0, 1.0))
    return value.mean()


def _grad_variance(est: Estimator, model, x, y, reps, cfg, gen) -> tuple[float, float]:
    params = [p for p in model.parameters()]
    grads = []
    for _ in range(reps):
        value = _estimate(est, model, x, y, cfg, gen)
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(value, params)]))
    g = torch.stack(grads).double()
    return float(g.var(0, unbiased=True).sum()), float(g.mean(0).pow(2).sum())


def _step_seconds(est: Estimator, model, x, y, steps, cfg, gen) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    start = time.perf_counter()
    for _ in range(steps):
        loss = _estimate(est, model, x, y, cfg, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def run_estimator_benchmark(cfg: EstimatorBenchConfig, progress: bool = True) -> dict:
    """Measure SG(L) and RT-MLMC(L) for each level; return a dict with the config, reference and rows."""
    data = load_digits_dataset()
    model = make_model("small-cnn", seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train(model, ERM(), data.x_train, data.y_train, TrainConfig(epochs=cfg.pretrain_epochs), generator=gen,
          progress=False)
    model.eval()
    x, y = data.x_test[: cfg.batch], data.y_test[: cfg.batch]
    xs, ys = data.x_test[: cfg.step_batch], data.y_test[: cfg.step_batch]
    reference = SAA(cfg.reference_samples)
    ref = [_value_stats(reference, model, x, y, 1, cfg, gen)[0] for _ in range(cfg.reference_reps)]
    ref_mean, ref_se = float(np.mean(ref)), float(np.std(ref, ddof=1) / math.sqrt(len(ref)))
    rows = []
    for level in tqdm(cfg.levels, desc="levels", disable=not progress):
        for name, est, vreps, greps, tsteps in (
            ("SG", SG(level), cfg.value_reps_sg, cfg.grad_reps_sg, cfg.timing_steps_sg),
            ("RT-MLMC", RTMLMC(level), cfg.value_reps_mlmc, cfg.grad_reps_mlmc, cfg.timing_steps_mlmc),
        ):
            mean, se, samples = _value_stats(est, model, x, y, vreps, cfg, gen)
            gvar, gnorm2 = _grad_variance(est, model, x, y, greps, cfg, gen)
            rows.append(dict(estimator=name, L=level, expected_samples=est.expected_samples,
                             measured_samples=samples,
                             seconds_per_step=_step_seconds(est, model, xs, ys, tsteps, cfg, gen),
                             value_mean=mean, value_se=se, bias=mean - ref_mean,
                             bias_se=math.sqrt(se**2 + ref_se**2), grad_variance=gvar,
                             grad_mean_norm2=gnorm2, value_reps=vreps, grad_reps=greps))
    return dict(config=asdict(cfg), reference=dict(mean=ref_mean, se=ref_se, samples=cfg.reference_samples,
                                                   reps=cfg.reference_reps), rows=rows,
                torch_version=torch.__version__, threads=torch.get_num_threads())


def summary_lines(result: dict) -> list[str]:
    """Per level: RT-MLMC/SG sample ratio and the bias difference in units of its standard error."""
    by = {(r["estimator"], r["L"]): r for r in result["rows"]}
    lines = []
    for level in result["config"]["levels"]:
        sg, ml = by[("SG", level)], by[("RT-MLMC", level)]
        diff = ml["bias"] - sg["bias"]
        se = math.sqrt(ml["value_se"] ** 2 + sg["value_se"] ** 2)
        ratio = ml["expected_samples"] / sg["expected_samples"]
        lines.append(f"- L={level}: RT-MLMC expected samples {ml['expected_samples']:.2f} vs SG "
                     f"{sg['expected_samples']:.0f} (ratio {ratio:.3f}); bias RT-MLMC {ml['bias']:+.5f} "
                     f"vs SG {sg['bias']:+.5f}, difference {diff:+.5f} = {diff / se:+.2f} SE")
    return lines


def write_estimator_report(result: dict, out_dir, command: str) -> str:
    """Write ``estimator_benchmark.{json,csv,md}`` into ``out_dir``; return the Markdown."""
    from pathlib import Path

    from robustrl.experiments.io import atomic_write_json, atomic_write_text

    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "estimator_benchmark.json", dict(command=command, **result))
    c, ref = result["config"], result["reference"]
    header = [
        f"Made by: {command}",
        f"Digits small CNN after {c['pretrain_epochs']} ERM epochs (seed {c['seed']}); "
        "entropic cross-entropy, "
        f"l-inf rho={c['rho']}, eta={c['eta']}, batch of {c['batch']} test images (value, gradient) and "
        f"{c['step_batch']} (timing)",
        f"Reference F: SAA with {ref['samples']} samples, mean of {ref['reps']} reps = {ref['mean']:.6f} "
        f"(SE {ref['se']:.1e}); bias = estimator mean - reference, SE includes the reference SE",
        f"Reps: value SG {c['value_reps_sg']}, RT-MLMC {c['value_reps_mlmc']}; "
        f"gradient SG {c['grad_reps_sg']}, "
        f"RT-MLMC {c['grad_reps_mlmc']}; grad_variance = trace of the covariance of the parameter gradient "
        "of one estimate (one RT-MLMC level drawn per call for the whole batch); work_normalised_variance = "
        "grad_variance * expected_samples (variance at equal sampling cost)",
        f"seconds_per_step: forward+backward+optimizer step, mean over {c['timing_steps_sg']} (SG) / "
        f"{c['timing_steps_mlmc']} (RT-MLMC) steps, torch {result['torch_version']}, "
        f"{result['threads']} thread, "
        "on a CPU shared with other jobs (timings are indicative)",
    ]
    for r in result["rows"]:
        r["work_normalised_variance"] = r["grad_variance"] * r["expected_samples"]
    cols = ["estimator", "L", "expected_samples", "measured_samples", "seconds_per_step", "grad_variance",
            "work_normalised_variance", "bias", "bias_se"]
    fmt = {"expected_samples": "{:.3f}", "measured_samples": "{:.3f}", "seconds_per_step": "{:.5f}",
           "grad_variance": "{:.4g}", "work_normalised_variance": "{:.4g}", "bias": "{:+.5f}",
           "bias_se": "{:.5f}"}

    def cell(r, k):
        return fmt[k].format(r[k]) if k in fmt else str(r[k])

    atomic_write_text(out_dir / "estimator_benchmark.csv", "\n".join(
        [f"# {h}" for h in header] + [",".join(cols)]
        + [",".join(cell(r, k) for k in cols) for r in result["rows"]]
    ) + "\n")
    md = [f"<!-- {h} -->" for h in header] + ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(cell(r, k) for k in cols) + " |" for r in result["rows"]]
    md += ["", "Summary (RT-MLMC vs SG at each L):", ""] + summary_lines(result)
    md += ["", "How this was made:", ""] + [f"- {h}" for h in header]
    text = "\n".join(md) + "\n"
    atomic_write_text(out_dir / "estimator_benchmark.md", text)
    return text


def quick_config(levels: Sequence[int] = (2, 3)) -> EstimatorBenchConfig:
    """A tiny configuration for tests."""
    return EstimatorBenchConfig(levels=list(levels), value_reps_sg=5, value_reps_mlmc=20, grad_reps_sg=3,
                                grad_reps_mlmc=5, timing_steps_sg=2, timing_steps_mlmc=2,
                                reference_samples=256, reference_reps=2, pretrain_epochs=1)
