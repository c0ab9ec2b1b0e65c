"""Accuracy-versus-budget benchmarks: run (method, seed) pairs, save one JSON per run, build tables and plots.

Tables are generated only from the saved run records; every table file states the command and the
configuration that produced it.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from robustrl.checks import check_int, check_seed, is_number, is_of
from robustrl.kernels import kernel_report
from robustrl.supervised._checks import check_choice
from robustrl.supervised.attacks import targeted_starts
from robustrl.supervised.data import DATASETS, Dataset, load_dataset, subset
from robustrl.experiments.io import (
    atomic_write_json,
    atomic_write_png,
    atomic_write_text,
    atomic_write_with,
    read_json,
)
from robustrl.supervised.methods import METHODS, MethodConfig, make_method, needs_mmc_head
from robustrl.supervised.models import make_model
from robustrl.supervised.training import (
    AttackSpec,
    GradientCounter,
    TrainConfig,
    convergence,
    evaluate_points,
    train,
)

__all__ = [
    "ENSEMBLE_RESTARTS",
    "ENSEMBLE_VERSION",
    "ENSEMBLE_STEPS",
    "PAPER_BUDGET",
    "PAPER_ERRORS",
    "PRESETS",
    "RECORDS_DIR",
    "BenchmarkConfig",
    "attack_cost_lines",
    "compare_record",
    "compare_records",
    "comparison_lines",
    "headline",
    "convergence_lines",
    "cost_lines",
    "load_data",
    "load_runs",
    "make_table",
    "pack_points",
    "paired_difference",
    "paper_claim_lines",
    "robust_columns",
    "run_benchmark",
    "run_one",
    "run_settings",
    "same_training_rows",
    "sanity_lines",
    "summarise",
    "train_row",
    "unpack_points",
    "verdict",
    "write_benchmark_tables",
]


@dataclass
class BenchmarkConfig:
    """Everything that defines a benchmark: data, model, methods, seeds, optimisation, attacks.

    ``methods`` are the table's rows: a method of :data:`METHODS`, or a row name of ``variants``, which maps
    it to the method it trains (so one method can appear twice with different settings, e.g. Entropic-AT
    with a clean-centred ball beside the budget-matched one). ``method_overrides`` maps a row name to the
    :class:`MethodConfig` fields that differ for it. ``attacks`` are the evaluation columns
    (:class:`AttackSpec` as dicts). For the seeds of ``convergence_seeds`` every column is also rerun with
    twice the steps and restarts (:func:`~robustrl.supervised.training.convergence`), on the first
    ``convergence_n`` test points (all when ``None``).
    """

    name: str
    dataset: str = "digits"
    root: str | None = None
    arch: str = "small-cnn"
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    seeds: list[int] = field(default_factory=lambda: [0])
    n_train: int | None = None
    n_test: int | None = None
    train: dict = field(default_factory=lambda: asdict(TrainConfig()))
    method: dict = field(default_factory=lambda: asdict(MethodConfig()))
    method_overrides: dict[str, dict] = field(default_factory=dict)
    attacks: list[dict] = field(default_factory=list)
    variants: dict[str, str] = field(default_factory=dict)
    convergence_seeds: list[int] = field(default_factory=list)
    convergence_n: int | None = None

    def validate(self) -> BenchmarkConfig:
        """Raise ``ValueError`` naming any bad value; return ``self``."""
        check_choice(self.dataset, DATASETS, "dataset")
        for row, method in self.variants.items():
            check_choice(method, METHODS, f"method of variant {row!r}")
            if row in METHODS:
                raise ValueError(f"variant name {row!r} is already a method name")
        for m in self.methods:
            if m not in self.variants:
                check_choice(m, METHODS, "method")
        for s in [*self.seeds, *self.convergence_seeds]:
            check_seed(s)
        if self.convergence_n is not None:
            check_int(self.convergence_n, "convergence_n", 1)
        TrainConfig(**self.train).validate()
        for m in self.methods:
            self.method_config(m)
        self.attack_specs()
        return self

    def base_method(self, row: str) -> str:
        """The method of :data:`METHODS` that row ``row`` trains."""
        return self.variants.get(row, row)

    def method_config(self, method: str) -> MethodConfig:
        """The resolved :class:`MethodConfig` of row ``method``."""
        return MethodConfig(**{**self.method, **self.method_overrides.get(method, {})}).validate()

    def attack_specs(self) -> list[AttackSpec]:
        """The evaluation columns."""
        return [AttackSpec(**a) for a in self.attacks]

    def to_dict(self) -> dict:
        """Plain-dict form (stored in every run record)."""
        return asdict(self)


#: The evaluation's attack: the ensemble of :func:`~robustrl.supervised.attacks.attack_ensemble` at these
#: steps and restarts per loss.
ENSEMBLE_STEPS, ENSEMBLE_RESTARTS = 50, 3


def _columns(budgets: dict[str, Sequence[float]], *, single_step: bool = True,
             noise: bool = True) -> list[dict]:
    """For each norm and budget: the ensemble (the robust accuracy), FGM (a labelled single-step attack)
    and, at the largest budget, uniform noise."""
    out = []
    for norm, eps_list in budgets.items():
        out += [dict(name="ensemble", norm=norm, eps=e, steps=ENSEMBLE_STEPS, restarts=ENSEMBLE_RESTARTS)
                for e in eps_list]
        if single_step:
            out += [dict(name="fgm", norm=norm, eps=e, steps=1, restarts=1) for e in eps_list]
        if noise:
            out.append(dict(name="noise", norm=norm, eps=eps_list[-1], steps=1, restarts=1))
    return out


#: The paper's MNIST comparison is at l-inf eps = 0.35; these columns measure, at that budget, how weak an
#: attack must be to leave ERM with the paper's 18.7 % error: noise, FGM, 1- and 5-step PGD, the ensemble.
PAPER_BUDGET = 0.35
_PAPER_COLUMNS = [
    dict(name="noise", norm="linf", eps=PAPER_BUDGET, steps=1, restarts=1),
    dict(name="fgm", norm="linf", eps=PAPER_BUDGET, steps=1, restarts=1),
    dict(name="pgd", norm="linf", eps=PAPER_BUDGET, steps=1, restarts=1, label="pgd1"),
    dict(name="pgd", norm="linf", eps=PAPER_BUDGET, steps=5, restarts=1, label="pgd5"),
    dict(name="ensemble", norm="linf", eps=PAPER_BUDGET, steps=ENSEMBLE_STEPS, restarts=ENSEMBLE_RESTARTS),
]


#: The benchmark presets by name (``robustrl supervised benchmark --preset NAME``); the names are
#: :data:`robustrl.supervised.names.PRESET_NAMES`.
PRESETS: dict[str, BenchmarkConfig] = {
    "digits": BenchmarkConfig(
        name="digits",
        dataset="digits",
        arch="small-cnn",
        methods=["erm", "fgm-at", "ifgm-at", "entropic-saa", "entropic-saa-clean", "entropic-sg",
                 "entropic-mlmc", "adt-exp", "mmc", "mmc-at"],
        seeds=[0, 1, 2],
        train=dict(epochs=7, batch_size=64, lr=2e-3),
        # Budget- and cost-matched: IFGM-AT trains at PGD points of B_0.15 (5 steps + the loss = 6 gradient
        # evaluations per example); Entropic-AT's samples stay in B_0.15 (centre: 2 PGD steps in B_0.10,
        # radius 0.05) and cost 2 + 4 = 6.
        method=dict(eps=0.15, norm="linf", steps=5, rho=0.05, eta=0.5, m=4, L=2, center_steps=2,
                    match_budget=True),
        method_overrides={"entropic-mlmc": dict(groups=8),
                          "entropic-saa-clean": dict(center_steps=0, rho=0.15, m=6)},
        variants={"entropic-saa-clean": "entropic-saa"},
        attacks=_columns({"linf": (0.1, 0.15), "l2": (0.5, 0.75)}) + _PAPER_COLUMNS,
        convergence_seeds=[0],
    ),
    "fashion-mnist": BenchmarkConfig(
        name="fashion-mnist",
        dataset="fashion-mnist",
        arch="paper-cnn",
        methods=["erm", "ifgm-at", "entropic-saa", "entropic-saa-clean"],
        seeds=[0, 1, 2],
        n_train=5000,
        n_test=1000,
        train=dict(epochs=3, batch_size=64, lr=1e-3),
        method=dict(eps=0.1, norm="linf", steps=5, rho=0.05, eta=0.5, m=4, L=2, center_steps=2,
                    match_budget=True),
        method_overrides={"entropic-saa-clean": dict(center_steps=0, rho=0.1, m=6)},
        variants={"entropic-saa-clean": "entropic-saa"},
        attacks=_columns({"linf": (0.1,), "l2": (1.5,)}, noise=False) + [
            c for c in _PAPER_COLUMNS if c["name"] in ("noise", "fgm", "ensemble")],
        convergence_seeds=[0],
        convergence_n=500,
    ),
}


PRESET_NOTES: dict[str, str] = {
    "digits": "Digits benchmark: full 8x8 digits split, 3 seeds, 10 rows; every adversarial method trained "
    "against l-inf eps=0.15 with 6 gradient evaluations per example (so the l2 columns measure transfer to "
    "another norm); Entropic-AT's samples stay in B_0.15(x) except in the clean-centred row, whose ball "
    "is B_0.15(x) itself.",
    "fashion-mnist": "Fashion-MNIST benchmark on a CPU budget: random 5000-image training subset, 3 epochs, "
    "random 1000-image test subset (binomial standard error <= 1.6 points per seed, <= 0.9 for the mean of 3 "
    "seeds; the attack ensemble spends ~750 gradient passes on each point it cannot break, which on 2500 test "
    "images, the former subset, comes to about 3 h on 2 cores), "
    "4 rows, 3 seeds; trained against l-inf eps=0.1 with 6 gradient evaluations per example. The paper "
    "trains on all 60000 images for far longer, so absolute accuracies are lower.",
}


RECORDS_DIR = "records"  # not "runs/": the repository's .gitignore ignores every runs/ directory


def run_name(config: BenchmarkConfig, method: str, seed: int) -> str:
    """``{dataset}__{method}__{seed}``."""
    return f"{config.dataset}__{method}__{seed}"


def load_data(config: BenchmarkConfig) -> Dataset:
    """The dataset of ``config``: its train and test subsets (drawn with seed 0, the same for every run)."""
    return subset(load_dataset(config.dataset, config.root), config.n_train, config.n_test, seed=0)


def pack_points(correct: torch.Tensor) -> str:
    """A per-point bool tensor as a hex string (8 points per byte, first point in the high bit)."""
    return np.packbits(correct.numpy().astype(np.uint8)).tobytes().hex()


def unpack_points(packed: str, n: int) -> np.ndarray:
    """The bool array of :func:`pack_points` (``n`` points)."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(packed), dtype=np.uint8))[:n].astype(bool)


def train_row(config: BenchmarkConfig, method: str, seed: int, data: Dataset | None = None, *,
              progress: bool = True) -> tuple[nn.Module, Any, list, int]:
    """Train row ``method`` of ``config`` with ``seed``, as :func:`run_one` does: returns the model (in eval
    mode), the training method, the loss history and the forward passes that built a graph."""
    data = data if data is not None else load_data(config)
    gen = torch.Generator().manual_seed(seed)
    mcfg = config.method_config(method)
    base = config.base_method(method)
    model = make_model(config.arch, data.num_classes, head="mmc" if needs_mmc_head(base) else "softmax",
                       seed=seed, mmc_C=mcfg.mmc_C)
    training = make_method(base, mcfg)
    training.name = method
    with GradientCounter(model) as counter:
        history = train(model, training, data.x_train, data.y_train, TrainConfig(**config.train), generator=gen,
                        progress=progress)
    return model.eval(), training, history, counter.rows


def run_one(config: BenchmarkConfig, method: str, seed: int, data: Dataset | None = None, *,
            progress: bool = True, checkpoint: Path | None = None) -> dict:
    """Train row ``method`` with ``seed`` and evaluate it on every attack column; return the run record.

    The record holds the accuracies, the per-point results (``points``, packed by :func:`pack_points`),
    the gradient evaluations per training example per step (forward passes that build a graph, counted by
    :class:`~robustrl.supervised.training.GradientCounter`), the convergence check for the seeds of
    ``config.convergence_seeds`` (the ensemble columns only), and the seconds spent training, evaluating
    and checking convergence.
    """
    data = data if data is not None else load_data(config)
    mcfg = config.method_config(method)
    base = config.base_method(method)
    tcfg = TrainConfig(**config.train)
    t0 = time.perf_counter()
    model, training, history, rows = train_row(config, method, seed, data, progress=progress)
    t1 = time.perf_counter()
    specs = config.attack_specs()
    costs: dict[str, dict[str, float]] = {}
    points = evaluate_points(model, data.x_test, data.y_test, specs, seed=seed, progress=progress, costs=costs)
    t2 = time.perf_counter()
    record = dict(
        run=run_name(config, method, seed), method=method, base_method=base, seed=seed,
        config=config.to_dict(), method_config=mcfg.to_dict(), train_loss=history,
        accuracy={k: float(v.float().mean()) for k, v in points.items()},
        points={k: pack_points(v) for k, v in points.items()},
        grad_evals_per_example=rows / (tcfg.epochs * len(data.y_train)), eval_costs=costs,
        train_seconds=t1 - t0, eval_seconds=t2 - t1, n_train=len(data.y_train), n_test=len(data.y_test),
        torch_version=torch.__version__, threads=torch.get_num_threads(), ensemble=ENSEMBLE_VERSION,
        kernels=kernel_report(),
    )
    if hasattr(training, "reach"):
        record["sample_reach"] = training.reach
    if seed in config.convergence_seeds:
        n = len(data.y_test) if config.convergence_n is None else min(config.convergence_n, len(data.y_test))
        sub = {k: v[:n] for k, v in points.items()}
        robust = [s for s in specs if s.name == "ensemble"]
        record["convergence"] = convergence(model, data.x_test[:n], data.y_test[:n], robust, sub, seed=seed,
                                            progress=progress)
        record["convergence_n"] = n
        record["convergence_seconds"] = time.perf_counter() - t2
    if checkpoint is not None:
        atomic_write_with(checkpoint, lambda f: torch.save(model.state_dict(), f))
    return record


def _run_job(job: tuple[BenchmarkConfig, str, int, str, str, bool]) -> str:
    config, method, seed, path, command, progress = job
    torch.set_num_threads(1)
    record = run_one(config, method, seed, progress=progress)
    record["command"] = command
    atomic_write_json(Path(path), record)
    return path


def run_benchmark(config: BenchmarkConfig, out_dir: Path | str, *, command: str = "",
                  progress: bool = True, resume: bool = True, jobs: int = 1) -> list[dict]:
    """Run every (row, seed) of ``config``, writing ``out_dir/records/<run>.json`` after each.

    With ``resume``, a run whose record exists with the same configuration is loaded, not re-run. With
    ``jobs > 1`` the runs go to that many worker processes (one torch thread each); every run is seeded, so
    the records do not depend on ``jobs``.
    """
    config.validate()
    check_int(jobs, "jobs", 1)
    out_dir = Path(out_dir)
    pairs = [(m, s) for s in config.seeds for m in config.methods]
    paths = [out_dir / RECORDS_DIR / f"{run_name(config, m, s)}.json" for m, s in pairs]
    todo = []
    for (method, seed), path in zip(pairs, paths):
        if resume and path.exists():
            done = read_record(path)
            if (run_settings(done.get("config")) == run_settings(config.to_dict())
                    and done.get("ensemble") == ENSEMBLE_VERSION):
                continue
        todo.append((config, method, seed, str(path), command, progress and jobs == 1))
    from robustrl.experiments.parallel import run_calls

    with tqdm(total=len(todo), desc=f"benchmark {config.name}", disable=not progress) as bar:
        run_calls(_run_job, [(job,) for job in todo], min(jobs, max(len(todo), 1)), done=lambda _: bar.update(1))
    return [read_record(p) for p in paths]


def run_settings(config: dict | None) -> dict | None:
    """What of a benchmark's configuration (``BenchmarkConfig.to_dict()``) one run depends on: all of it but the
    list of ``seeds`` the benchmark trains (a run records its own seed), so a run trained by ``--seeds 1`` is the
    same run as seed 1 of the full benchmark, for resuming and for :func:`compare_record`."""
    return None if config is None else {key: value for key, value in config.items() if key != "seeds"}


def compare_record(record: dict, reference: dict) -> list[str]:
    """What differs between a run record and a reference record of the same run; empty if it replays.

    Compares the configuration first (:func:`run_settings`; other settings make the rest meaningless), then the
    training loss of every epoch, the accuracy of every column and every point's result, and the convergence
    check, all exactly: a run that replays on another CPU gives the same bits (the kernels are pinned at ``import
    robustrl``). Timings, commands and the machine are not compared."""
    if run_settings(record.get("config")) != run_settings(reference.get("config")) or record.get(
            "method_config") != reference.get("method_config"):
        return ["configuration differs; nothing else compared"]
    out = []
    new_loss, old_loss = record.get("train_loss", []), reference.get("train_loss", [])
    if new_loss != old_loss:
        epoch = next((i for i, (a, b) in enumerate(zip(new_loss, old_loss), 1) if a != b), min(len(new_loss),
                                                                                               len(old_loss)) + 1)
        out.append(f"training loss parts at epoch {epoch}" + (
            f": {new_loss[epoch - 1]!r} vs {old_loss[epoch - 1]!r}" if epoch <= min(len(new_loss), len(old_loss))
            else ""))
    moved = [f"{key} {100 * reference['accuracy'][key]:.2f} -> {100 * value:.2f}"
             for key, value in record.get("accuracy", {}).items()
             if key in reference.get("accuracy", {}) and value != reference["accuracy"][key]]
    if moved:
        out.append("accuracy moved: " + ", ".join(moved))
    points = [key for key, packed in record.get("points", {}).items()
              if key in reference.get("points", {}) and packed != reference["points"][key]]
    if points and not moved:
        out.append(f"per-point results differ (same accuracy) in {', '.join(points)}")
    if record.get("ensemble") != reference.get("ensemble"):
        out.append(f"made with another attack ensemble ({reference.get('ensemble', 'untargeted PGD')} in the "
                   f"reference, {record.get('ensemble', 'untargeted PGD')} here)")
    if "convergence" in record and "convergence" in reference and record["convergence"] != reference["convergence"]:
        out.append("convergence check differs")
    return out


def compare_records(run_dir: Path | str, reference_dir: Path | str) -> dict[str, list[str]]:
    """:func:`compare_record` for every record of ``run_dir`` against its namesake in ``reference_dir`` (both
    folders of ``*.json`` run records); a record without a namesake is listed as such."""
    run_dir, reference_dir = Path(run_dir), Path(reference_dir)
    if not reference_dir.is_dir():
        raise ValueError(f"reference records folder {reference_dir} does not exist")
    out = {}
    for path in sorted(run_dir.glob("*.json")):
        other = reference_dir / path.name
        out[path.stem] = compare_record(read_record(path), read_record(other)) if other.is_file() else [
            f"no reference record {other}"]
    return out


_RECORD_FIELDS: dict[str, type] = {"method": str, "seed": int, "config": dict, "method_config": dict,
                                   "accuracy": dict}
_RECORD_CONFIG_FIELDS: dict[str, type | tuple[type, ...]] = {
    "dataset": str, "arch": str, "methods": list, "attacks": list, "root": (str, type(None)),
    "n_train": (int, type(None)), "n_test": (int, type(None)),
}


def read_record(path: Path | str) -> dict:
    """A run record written by ``robustrl supervised train`` or a benchmark; an error naming the file and the
    first problem: ``FileNotFoundError`` if it is missing, ``ValueError`` if it is not JSON or not a run record."""
    path = Path(path)
    record = read_json(path)
    if not isinstance(record, dict):
        raise ValueError(f"{path} is not a run record: expected a JSON object")
    checks = ((_RECORD_FIELDS, record, ""), (_RECORD_CONFIG_FIELDS, record.get("config"), "config."))
    for fields, data, prefix in checks:
        for key, kind in fields.items():
            if key not in data:
                raise ValueError(f"{path} is not a run record: no {prefix}{key}")
            if not is_of(data[key], kind):
                raise ValueError(f"{path} is not a run record: {prefix}{key} is {data[key]!r}")
    if not all(isinstance(a, dict) for a in record["config"]["attacks"]):
        raise ValueError(f"{path} is not a run record: config.attacks must be a list of attack settings")
    if not all(is_number(v) for v in record["accuracy"].values()):
        raise ValueError(f"{path} is not a run record: accuracy values must be numbers")
    return record


def load_runs(run_dir: Path | str) -> list[dict]:
    """Every run record (``*.json``) in ``run_dir``, sorted by name (each checked by :func:`read_record`)."""
    paths = sorted(Path(run_dir).glob("*.json"))
    if not paths:
        raise ValueError(f"no run records (*.json) in {run_dir}")
    return [read_record(p) for p in paths]


Summary = dict[str, dict[str, tuple[float, float, int]]]


def summarise(runs: Sequence[dict]) -> tuple[list[str], list[str], Summary]:
    """Rows (in config order), column keys, and ``{row: {key: (mean, std, n_seeds)}}`` in percent."""
    methods = [m for m in runs[0]["config"]["methods"] if any(r["method"] == m for r in runs)]
    methods += sorted({r["method"] for r in runs} - set(methods))
    keys = ["clean"] + [AttackSpec(**a).key for a in runs[0]["config"]["attacks"]]
    table: dict[str, dict[str, tuple[float, float, int]]] = {}
    for m in methods:
        rows = [r for r in runs if r["method"] == m]
        table[m] = {}
        for k in keys:
            vals = np.array([100.0 * r["accuracy"][k] for r in rows if k in r["accuracy"]])
            if len(vals) == 0:
                table[m][k] = (float("nan"), 0.0, 0)
                continue
            std = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            table[m][k] = (float(vals.mean()), std, len(vals))
    return methods, keys, table


def _specs_by_key(runs: Sequence[dict]) -> dict[str, AttackSpec]:
    return {spec.key: spec for spec in (AttackSpec(**a) for a in runs[0]["config"]["attacks"])}


def robust_columns(runs: Sequence[dict]) -> list[AttackSpec]:
    """The columns that measure robustness (the attack ensemble), in config order: every verdict uses
    these; FGM, noise and the few-step PGD columns are labelled single attacks."""
    return [s for s in _specs_by_key(runs).values() if s.name == "ensemble"]


def _t_quantile(df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def paired_difference(runs: Sequence[dict], row: str, baseline: str, key: str) -> tuple[float, float, float, int]:
    """Mean over seeds of ``row - baseline`` accuracy (points) in column ``key``, with the 95 % paired
    t-interval over the seeds both rows have; ``(mean, low, high, n_pairs)`` (``nan`` bounds with < 2 pairs)."""
    by = {(r["method"], r["seed"]): 100.0 * r["accuracy"][key] for r in runs if key in r["accuracy"]}
    seeds = sorted(s for (m, s) in by if m == row and (baseline, s) in by)
    d = np.array([by[(row, s)] - by[(baseline, s)] for s in seeds])
    if len(d) == 0:
        return float("nan"), float("nan"), float("nan"), 0
    if len(d) < 2:
        return float(d.mean()), float("nan"), float("nan"), len(d)
    half = _t_quantile(len(d) - 1) * float(d.std(ddof=1)) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half), len(d)


def verdict(low: float, high: float) -> str:
    """``HOLDS`` if the interval lies above 0, ``DOES NOT HOLD`` if below, else ``TIE``."""
    if low > 0:
        return "HOLDS"
    if high < 0:
        return "DOES NOT HOLD"
    return "TIE"


def comparison_lines(runs: Sequence[dict], row: str, baseline: str = "ifgm-at") -> list[str]:
    """Markdown table of ``row >= baseline`` per robust column and clean: mean difference, its paired 95 %
    CI over seeds and the verdict (:func:`verdict`)."""
    lines = [f"| column | {row} | {baseline} | difference [95 % CI] | seeds | verdict |",
             "|---|---|---|---|---|---|"]
    _, _, table = summarise(runs)
    for key in ["clean"] + [s.key for s in robust_columns(runs)]:
        mean, low, high, n = paired_difference(runs, row, baseline, key)
        if n == 0:
            continue
        ci = f"[{low:+.1f}, {high:+.1f}]" if n > 1 else "(one seed: no CI)"
        v = verdict(low, high) if n > 1 else "TIE"
        lines.append(f"| {key} | {table[row][key][0]:.1f} | {table[baseline][key][0]:.1f} | {mean:+.1f} {ci} | "
                     f"{n} | {v} |")
    return lines


def cost_lines(runs: Sequence[dict]) -> list[str]:
    """Markdown table per row: gradient evaluations per training example per step (measured), how far from
    the clean input training evaluates the model, and the mean training seconds."""
    methods, _, _ = summarise(runs)
    lines = ["| row | gradient evaluations per example per step | farthest training point from x | "
             "train s (mean) |", "|---|---|---|---|"]
    for m in methods:
        rows = [r for r in runs if r["method"] == m]
        evals = [r["grad_evals_per_example"] for r in rows if "grad_evals_per_example" in r]
        mc = rows[0]["method_config"]
        base = rows[0].get("base_method", m)
        if base.startswith("entropic-"):
            reach = rows[0].get("sample_reach")
            where = f"{reach:g} (ball radius {mc['rho']:g})" if reach is not None else "?"
        elif base == "erm" or base == "mmc":
            where = "0 (clean)"
        else:
            where = f"{mc['eps']:g}"
        ev = f"{np.mean(evals):.2f}" if evals else "not recorded"
        lines.append(f"| {m} | {ev} | {where} | {np.mean([r['train_seconds'] for r in rows]):.1f} |")
    return lines


def attack_cost_lines(runs: Sequence[dict]) -> list[str]:
    """Markdown table of what each robust column cost: gradient evaluations (forward-backward passes) per
    test point and seconds per run, means over the runs that recorded them, for the most and the least
    robust row."""
    recorded = [r for r in runs if "eval_costs" in r]
    if not recorded:
        return ["- the cost of each column was not recorded in these run records (older records)"]
    lines = ["| column | passes per test point (mean over runs) | range over rows | seconds per run (mean) |",
             "|---|---|---|---|"]
    for spec in robust_columns(runs):
        vals = [(r["method"], r["eval_costs"][spec.key]) for r in recorded if spec.key in r["eval_costs"]]
        if not vals:
            continue
        per_row: dict[str, list[float]] = {}
        for m, c in vals:
            per_row.setdefault(m, []).append(c["passes_per_point"])
        means = {m: float(np.mean(v)) for m, v in per_row.items()}
        lo, hi = min(means, key=means.get), max(means, key=means.get)
        lines.append(f"| {spec.key} | {np.mean([c['passes_per_point'] for _, c in vals]):.0f} | "
                     f"{means[lo]:.0f} ({lo}) to {means[hi]:.0f} ({hi}) | "
                     f"{np.mean([c['seconds'] for _, c in vals]):.1f} |")
    return lines


def convergence_lines(runs: Sequence[dict], tolerance: float = 0.5) -> list[str]:
    """The convergence check: per run that has one, the change of each robust column when the ensemble gets
    twice the steps and restarts; the largest change, and whether it is within ``tolerance`` points."""
    checked = [r for r in runs if "convergence" in r]
    if not checked:
        return ["- no run of these records has a convergence check"]
    keys = [s.key for s in robust_columns(runs)]
    spec = robust_columns(runs)[0] if keys else None
    lines = []
    if spec is not None:
        lines.append(f"Ensemble {spec.steps} steps x {spec.restarts} restarts per loss against "
                     f"{2 * spec.steps} x {2 * spec.restarts} (run only on the points the first left robust), "
                     f"on the first {checked[0].get('convergence_n', checked[0]['n_test'])} test points; "
                     "entries: accuracy change in points.")
        lines.append("")
    lines += ["| run | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    worst = 0.0
    for r in checked:
        cells = []
        for k in keys:
            ch = r["convergence"].get(k, {}).get("change")
            worst = max(worst, ch or 0.0)
            cells.append("" if ch is None else f"{ch:.2f}")
        lines.append(f"| {r['method']} (seed {r['seed']}) | " + " | ".join(cells) + " |")
    lines += ["", f"Largest change: {worst:.2f} points (<= {tolerance:g}: "
              f"{'HOLDS' if worst <= tolerance else 'DOES NOT HOLD'})."]
    return lines


def sanity_lines(runs: Sequence[dict]) -> list[str]:
    """The sanity floor at the largest robust budget of each norm: ERM loses >= 50 points, and every other
    row recovers at least half of that loss."""
    methods, keys, table = summarise(runs)
    if "erm" not in table:
        return ["- sanity check skipped: no erm runs"]
    lines = []
    for norm in ("linf", "l2"):
        cols = [s for s in robust_columns(runs) if s.norm == norm and s.eps != PAPER_BUDGET]
        if not cols:
            continue
        spec = max(cols, key=lambda s: s.eps)
        clean, attacked = table["erm"]["clean"][0], table["erm"][spec.key][0]
        drop = clean - attacked
        lines.append(f"- {spec.key}: ERM {clean:.1f} clean -> {attacked:.1f} (loses {drop:.1f} points; "
                     f">= 50: {'HOLDS' if drop >= 50 else 'DOES NOT HOLD'})")
        for m in methods:
            if m != "erm":
                rec = table[m][spec.key][0] - attacked
                lines.append(f"  - {m}: {table[m][spec.key][0]:.1f} (recovers {rec:.1f}; at least half: "
                             f"{'HOLDS' if rec >= drop / 2 else 'DOES NOT HOLD'})")
    return lines


#: The paper's MNIST numbers at l-inf eps = 0.35 (test error in %).
PAPER_ERRORS = {"erm": 18.7, "ifgm-at": 12.5, "entropic": 9.3}


def paper_claim_lines(runs: Sequence[dict]) -> list[str]:
    """Our test error at the paper's budget (l-inf 0.35) under each attack present there, beside the paper's
    MNIST numbers, and the attack whose ERM error comes closest to the paper's ERM error."""
    methods, _, table = summarise(runs)
    specs = [s for s in _specs_by_key(runs).values() if s.norm == "linf" and s.eps == PAPER_BUDGET]
    if not specs:
        return []
    rows = [m for m in methods if m in ("erm", "ifgm-at") or m.startswith("entropic-saa")]
    lines = ["| row | paper (MNIST) | " + " | ".join(s.key for s in specs) + " |",
             "|---|---|" + "---|" * len(specs)]
    for m in rows:
        paper = PAPER_ERRORS.get("entropic" if m.startswith("entropic") else m)
        cells = [f"{100 - table[m][s.key][0]:.1f}" for s in specs]
        lines.append(f"| {m} | {paper if paper is not None else ''} | " + " | ".join(cells) + " |")
    if "erm" in table:
        nearest = min(specs, key=lambda s: abs(100 - table["erm"][s.key][0] - PAPER_ERRORS["erm"]))
        lines += ["", f"Entries: test error in %, mean over seeds. ERM's error comes closest to the paper's "
                  f"{PAPER_ERRORS['erm']}% under `{nearest.key}` "
                  f"({100 - table['erm'][nearest.key][0]:.1f}%); under the ensemble it is "
                  f"{100 - table['erm'][specs[-1].key][0]:.1f}%."]
    return lines


#: What a run record's ``ensemble`` field says when its robust columns used the ensemble with targeted APGD runs.
ENSEMBLE_VERSION = "pgd-ce+pgd-margin+apgd-t"


def _ensemble_text(runs: Sequence[dict], spec: AttackSpec) -> str:
    text = (f"per point the worst of {spec.restarts} cross-entropy PGD runs and {spec.restarts} margin-loss PGD "
            f"runs (the r-th aimed at the r-th runner-up class), {spec.steps} steps each from a random start with "
            "a step size starting at 2*eps and decayed on a cosine schedule")
    if all(r.get("ensemble") == ENSEMBLE_VERSION for r in runs):
        text += (f", then APGD-T (targeted DLR loss, {spec.steps} steps, APGD's own step-size rule) aimed at every "
                 f"other class, {targeted_starts(spec.restarts)} start(s) per class; each run attacks only the points the "
                 "earlier runs left unchanged")
    else:
        text += " (records made before the ensemble had its targeted APGD runs)"
    return text + "; a point is robust only if every run fails."


def same_training_rows(config: dict) -> list[tuple[str, str, int]]:
    """Pairs ``(saa_row, sg_row, samples)`` of a benchmark configuration (a record's ``config``) that train the
    same model: SG(L) is SAA with ``2^L`` samples, so an SG row whose ``2^L`` equals an SAA row's ``m``, with
    every other method setting equal, gives that SAA row's models and entries (same seeds, same draws)."""
    base, overrides, variants = config["method"], config.get("method_overrides", {}), config.get("variants", {})
    resolved = {row: {**base, **overrides.get(row, {})} for row in config["methods"]}
    kind = {row: variants.get(row, row) for row in config["methods"]}
    pairs = []
    for a in (r for r in config["methods"] if kind[r] == "entropic-saa"):
        for b in (r for r in config["methods"] if kind[r] == "entropic-sg"):
            ca, cb = dict(resolved[a]), dict(resolved[b])
            if 2 ** cb.pop("L") == ca.pop("m") and {k: v for k, v in ca.items() if k != "L"} == {
                    k: v for k, v in cb.items() if k != "m"}:
                pairs.append((a, b, int(resolved[a]["m"])))
    return pairs


def _same_training_text(config: dict) -> str | None:
    pairs = same_training_rows(config)
    if not pairs:
        return None
    return "; ".join(f"{b} and {a} train the same models (SG(L) is SAA with 2^L samples, here {m} in both), so "
                     f"their entries coincide by construction" for a, b, m in pairs)


def _header(runs: Sequence[dict], command: str) -> list[str]:
    cfg = runs[0]["config"]
    seeds = sorted({r["seed"] for r in runs})
    train_min = sum(r["train_seconds"] for r in runs) / 60
    eval_min = sum(r["eval_seconds"] for r in runs) / 60
    conv_min = sum(r.get("convergence_seconds", 0.0) for r in runs) / 60
    note = PRESET_NOTES.get(cfg["name"])
    ens = robust_columns(runs)
    attack_line = (f"Attacks: {len(cfg['attacks'])} columns. `ensemble` = the robust accuracy: "
                   f"{_ensemble_text(runs, ens[0])} `fgm` = one FGM step, `noise` = uniform noise in the ball, "
                   "`pgd1`/`pgd5` = single cross-entropy PGD runs of 1 and 5 steps: labelled single attacks, never "
                   "a model's robustness. All clamped to [0, 1]" if ens else
                   f"Attacks: {len(cfg['attacks'])} columns (no ensemble column: no robustness verdicts)")
    same = _same_training_text(cfg)
    return ([note] if note else []) + ([same] if same else []) + [
        f"Made by: {command or runs[0].get('command', '(unknown)')}",
        f"Run records: {len(runs)} (seeds {seeds}); per-run commands: "
        f"{sorted({r.get('command', '') for r in runs})}",
        f"Dataset {cfg['dataset']} (train {runs[0]['n_train']}, test {runs[0]['n_test']} examples), "
        f"arch {cfg['arch']}, training {json.dumps(cfg['train'])}",
        f"Method config {json.dumps(cfg['method'])}; overrides {json.dumps(cfg['method_overrides'])}; "
        f"variants {json.dumps(cfg.get('variants', {}))}",
        attack_line,
        "Training: adversarial methods use the norm and budget eps of the method config; "
        "IFGM-AT/MMC-AT/ADT-EXP use `steps` inner steps; Entropic-AT = entropic risk (eta, rho) over uniform "
        "samples in a ball of the training norm, radius rho, centred at a `center_steps`-step PGD point "
        "(clean point if 0) searched in B_{eps-rho}(x) when match_budget is set (so every sample stays in "
        "B_eps(x)), clamped to [0, 1]; SAA m samples, SG/RT-MLMC level L",
        f"Wall-clock summed over runs: train {train_min:.1f} min, eval {eval_min:.1f} min, convergence check "
        f"{conv_min:.1f} min (torch {runs[0]['torch_version']}, {runs[0]['threads']} thread(s) per run)",
        "Entries: test accuracy in %, mean +- std over seeds (std 0 with one seed).",
    ]


def make_table(runs: Sequence[dict], out_dir: Path | str, *, command: str = "",
               checks: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``table.csv``, ``table.md`` and ``accuracy_vs_budget.png`` into ``out_dir`` from ``runs``.

    ``checks`` are extra Markdown lines (target verdicts) appended to the Markdown table.
    """
    out_dir = Path(out_dir)
    methods, keys, table = summarise(runs)
    header = _header(runs, command)
    buf = io.StringIO()
    buf.writelines(f"# {line}\n" for line in header)
    writer = csv.writer(buf)
    writer.writerow(["method", "n_seeds"] + [f"{k}_{s}" for k in keys for s in ("mean", "std")])
    for m in methods:
        n = table[m]["clean"][2]
        writer.writerow([m, n] + [f"{v:.2f}" for k in keys for v in table[m][k][:2]])
    paths = {"csv": atomic_write_text(out_dir / "table.csv", buf.getvalue())}
    md = [f"<!-- {line} -->" for line in header] + [""]
    md.append("| method | seeds | " + " | ".join(keys) + " |")
    md.append("|---|---|" + "---|" * len(keys))
    for m in methods:
        cells = [f"{table[m][k][0]:.1f} ± {table[m][k][1]:.1f}" for k in keys]
        md.append(f"| {m} | {table[m]['clean'][2]} | " + " | ".join(cells) + " |")
    md += ["", "How this was made:", ""] + [f"- {line}" for line in header]
    if checks:
        md += ["", "Target checks (computed from the run records):", ""] + list(checks)
    paths["md"] = atomic_write_text(out_dir / "table.md", "\n".join(md) + "\n")
    paths["png"] = plot_accuracy(runs, out_dir / "accuracy_vs_budget.png")
    return paths


_PLOT_TITLES = {"ensemble": "robust accuracy (attack ensemble)", "fgm": "FGM, one step (single attack)",
                "noise": "uniform noise", "pgd": "PGD (single attack)", "pgd-margin": "margin PGD (single attack)"}


def plot_accuracy(runs: Sequence[dict], path: Path | str) -> Path:
    """Accuracy versus budget in the style of the paper's figure: one row per norm, one panel per attack,
    one line per row of the table (mean over seeds, bars +- 1 std), budget 0 = clean accuracy."""
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone, renders with Agg

    methods, keys, table = summarise(runs)
    specs = _specs_by_key(runs)
    attack_order = {"ensemble": 0, "pgd": 1, "pgd-margin": 2, "fgm": 3, "noise": 4}
    cols_of = {k: (s.label or s.name, s.norm, s.eps) for k, s in specs.items()
               if s.label is None}  # the few-step PGD columns of the paper's budget are in the table only
    norms = [n for n in ("linf", "l2") if any(c[1] == n for c in cols_of.values())]
    attacks = sorted({c[0] for c in cols_of.values()}, key=lambda a: attack_order.get(a, 9))
    n_seeds = sorted({table[m]["clean"][2] for m in methods})
    fig = Figure(figsize=(3.4 * len(attacks), 3.0 * len(norms) + 0.4))
    axes = fig.subplots(len(norms), len(attacks), squeeze=False)
    for row, norm in enumerate(norms):
        for col, attack in enumerate(attacks):
            ax = axes[row][col]
            cols = sorted((k for k, c in cols_of.items() if c[:2] == (attack, norm)), key=lambda k: cols_of[k][2])
            xs = [0.0] + [cols_of[k][2] for k in cols]
            for m in methods:
                ys = [table[m]["clean"][0]] + [table[m][k][0] for k in cols]
                es = [table[m]["clean"][1]] + [table[m][k][1] for k in cols]
                ax.errorbar(xs, ys, yerr=es, marker="o", ms=3, capsize=2, label=m)
            ax.set_title(f"{_PLOT_TITLES.get(attack, attack)} ({'ℓ∞' if norm == 'linf' else 'ℓ2'})", fontsize=8)
            ax.set_xlabel("budget ε", fontsize=8)
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
        axes[row][0].set_ylabel("test accuracy (%)", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(methods), 5), fontsize=8)
    fig.suptitle(f"{runs[0]['config']['dataset']}: test accuracy, mean over {'/'.join(map(str, n_seeds))} "
                 "seeds, bars ±1 std", fontsize=9)
    fig.tight_layout(rect=(0, 0.12 if len(norms) > 1 else 0.2, 1, 0.97))
    atomic_write_png(path, fig, 100, tight=False)
    return Path(path)


def preset(name: str, **overrides: object) -> BenchmarkConfig:
    """A copy of preset ``name`` with fields replaced by ``overrides`` (``None`` values ignored)."""
    check_choice(name, tuple(PRESETS), "preset")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}).validate()




def headline(runs: Sequence[dict]) -> str:
    """One Markdown paragraph with a benchmark's answer (the README shows it): at the training budget, each entropic
    row against IFGM-AT (robust and clean accuracy, the paired difference with its 95 % CI and verdict), and ERM's
    robust accuracy there; numbers from the run records only."""
    cfg = runs[0]["config"]
    method = MethodConfig(**cfg["method"])
    budget = f"ensemble_{method.norm}_{method.eps:g}"
    methods, _, table = summarise(runs)
    if budget not in table.get("ifgm-at", {}):
        return ""
    seeds = len({r["seed"] for r in runs})
    norm = "ℓ∞" if method.norm == "linf" else "ℓ2"
    parts = []
    same = {b: (a, m) for a, b, m in same_training_rows(cfg)}
    for row in (m for m in methods if m.startswith("entropic") and budget in table[m]):
        if row in same and same[row][0] in methods:
            parts.append(f"{row} = {same[row][0]} (the same models: SG(L) is SAA with 2^L = {same[row][1]} "
                         "samples)")
            continue
        mean, low, high, n = paired_difference(runs, row, "ifgm-at", budget)
        clean = paired_difference(runs, row, "ifgm-at", "clean")
        parts.append(f"{row} {table[row][budget][0]:.1f} % against IFGM-AT's {table['ifgm-at'][budget][0]:.1f} % "
                     f"({mean:+.1f} [{low:+.1f}, {high:+.1f}], {verdict(low, high)}; clean "
                     f"{table[row]['clean'][0]:.1f} against {table['ifgm-at']['clean'][0]:.1f}, {clean[0]:+.1f} "
                     f"[{clean[1]:+.1f}, {clean[2]:+.1f}])")
    if "erm" in table:
        parts.append(f"ERM {table['erm'][budget][0]:.1f} %")
    return (f"**{cfg['name']}** ({cfg['dataset']}, {runs[0]['n_test']} test points, {seeds} seeds, paired 95 % CIs "
            f"over seeds), robust accuracy under the attack ensemble at {norm} ε = {method.eps:g}, the "
            f"training budget: " + "; ".join(parts) + "." + (
                "" if all(r.get("ensemble") == ENSEMBLE_VERSION for r in runs) else
                " (Records made before the ensemble had its targeted APGD runs: robust accuracies may be a little "
                "high.)"))


def write_benchmark_tables(runs: Sequence[dict], out_dir: Path | str, command: str = "") -> dict[str, Path]:
    """:func:`make_table` with the target checks: the sanity floor, the cost of each row, the convergence
    of the ensemble, Entropic-AT versus IFGM-AT (paired CI over seeds) for each entropic row, and the
    paper's claim at l-inf 0.35."""
    n_test = runs[0]["n_test"]
    worst_se = max(100.0 * float(np.sqrt(r["accuracy"][k] * (1 - r["accuracy"][k]) / n_test))
                   for r in runs for k in r["accuracy"])
    checks = [f"Test set: {n_test} points per run, so the binomial standard error of one run's cell is at most "
              f"{worst_se:.2f} points here ({100 * 0.5 / np.sqrt(n_test):.2f} at 50 % accuracy).", ""]
    checks += ["Sanity floor (largest ensemble budget per norm):", ""] + sanity_lines(runs)
    checks += ["", "Cost of each row (measured while training):", ""] + cost_lines(runs)
    checks += ["", "Cost of the attack ensemble per cell (a robust point costs every run's full steps; "
               "a point stops costing at its first flip):", ""] + attack_cost_lines(runs)
    checks += ["", "Convergence of the attack ensemble:", ""] + convergence_lines(runs)
    methods = {r["method"] for r in runs}
    for m in sorted(x for x in methods if x.startswith("entropic-")):
        if "ifgm-at" in methods and robust_columns(runs):
            checks += ["", f"{m} >= ifgm-at: HOLDS only where the paired 95 % CI over seeds lies above 0, "
                       "DOES NOT HOLD where it lies below, TIE otherwise:", ""]
            checks += comparison_lines(runs, m, "ifgm-at")
    paper = paper_claim_lines(runs)
    if paper:
        checks += ["", f"The paper's claim (MNIST, l-inf eps = {PAPER_BUDGET}: Entropic {PAPER_ERRORS['entropic']}% "
                   f"error, IFGM-AT {PAPER_ERRORS['ifgm-at']}%, ERM {PAPER_ERRORS['erm']}%) beside ours:", ""]
        checks += paper
    paths = make_table(runs, out_dir, command=command, checks=checks)
    text = headline(runs)
    if text:
        paths["headline"] = Path(out_dir) / "headline.md"
        atomic_write_text(paths["headline"], text + "\n")
    return paths
