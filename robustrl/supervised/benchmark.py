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

import numpy as np
import torch
from tqdm.auto import tqdm

from robustrl.checks import check_seed, is_number, is_of
from robustrl.supervised._checks import check_choice
from robustrl.supervised.data import DATASETS, Dataset, load_dataset, subset
from robustrl.experiments.io import atomic_write_json, atomic_write_text, atomic_write_with, read_json
from robustrl.supervised.methods import METHODS, MethodConfig, make_method, needs_mmc_head
from robustrl.supervised.models import make_model
from robustrl.supervised.training import AttackSpec, TrainConfig, evaluate, train

__all__ = [
    "PRESETS",
    "RECORDS_DIR",
    "BenchmarkConfig",
    "load_runs",
    "make_table",
    "ordering_check",
    "run_benchmark",
    "run_one",
    "sanity_check",
    "summarise",
    "write_benchmark_tables",
]


@dataclass
class BenchmarkConfig:
    """Everything that defines a benchmark: data, model, methods, seeds, optimisation, attacks.

    ``method_overrides`` maps a method name to :class:`MethodConfig` fields that differ for it.
    ``attacks`` are the evaluation columns (:class:`AttackSpec` as dicts).
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

    def validate(self) -> BenchmarkConfig:
        """Raise ``ValueError`` naming any bad value; return ``self``."""
        check_choice(self.dataset, DATASETS, "dataset")
        for m in self.methods:
            check_choice(m, METHODS, "method")
        for s in self.seeds:
            check_seed(s)
        TrainConfig(**self.train).validate()
        for m in self.methods:
            self.method_config(m)
        self.attack_specs()
        return self

    def method_config(self, method: str) -> MethodConfig:
        """The resolved :class:`MethodConfig` of ``method``."""
        return MethodConfig(**{**self.method, **self.method_overrides.get(method, {})}).validate()

    def attack_specs(self) -> list[AttackSpec]:
        """The evaluation columns."""
        return [AttackSpec(**a) for a in self.attacks]

    def to_dict(self) -> dict:
        """Plain-dict form (stored in every run record)."""
        return asdict(self)


def _attacks(linf: Sequence[float], l2: Sequence[float], steps: int, restarts: int,
             extra: Sequence[str] = ("fgm", "noise")) -> list[dict]:
    out = []
    for norm, budgets in (("linf", linf), ("l2", l2)):
        for name in ("pgd", *extra):
            out += [dict(name=name, norm=norm, eps=e, steps=steps, restarts=restarts) for e in budgets]
    return out


#: The benchmark presets by name (``robustrl supervised benchmark --preset NAME``); the names are
#: :data:`robustrl.supervised.names.PRESET_NAMES`.
PRESETS: dict[str, BenchmarkConfig] = {
    "digits": BenchmarkConfig(
        name="digits",
        dataset="digits",
        arch="small-cnn",
        methods=list(METHODS),
        seeds=[0],
        train=dict(epochs=7, batch_size=64, lr=2e-3),
        method=dict(eps=0.15, norm="linf", steps=4, rho=0.05, eta=0.5, m=4, L=3, center_steps=4),
        method_overrides={"entropic-mlmc": dict(groups=8)},
        attacks=[dict(name=name, norm=norm, eps=eps, steps=10, restarts=2)
                 for norm, budgets in (("linf", (0.1, 0.15)), ("l2", (0.5, 0.75)))
                 for name, eps_list in (("pgd", budgets), ("pgd-margin", budgets[-1:]), ("fgm", budgets),
                                        ("noise", budgets[-1:]))
                 for eps in eps_list],
    ),
    "fashion-mnist": BenchmarkConfig(
        name="fashion-mnist",
        dataset="fashion-mnist",
        arch="paper-cnn",
        methods=["erm", "ifgm-at", "entropic-saa"],
        seeds=[0, 1, 2],
        n_train=5000,
        n_test=500,
        train=dict(epochs=3, batch_size=64, lr=1e-3),
        method=dict(eps=0.1, norm="linf", steps=3, rho=0.05, eta=0.5, m=4, L=2, center_steps=3),
        attacks=_attacks(linf=(0.1, 0.15), l2=(0.75, 1.5), steps=20, restarts=2, extra=("fgm",)),
    ),
}
PRESETS["fashion-mnist-l2"] = replace(
    PRESETS["fashion-mnist"], name="fashion-mnist-l2", methods=["ifgm-at", "entropic-saa"],
    method=dict(eps=1.0, norm="l2", steps=3, rho=0.5, eta=0.5, m=4, L=2, center_steps=3),
)
PRESETS["digits-entropic-ablation"] = replace(
    PRESETS["digits"], name="digits-entropic-ablation",
    methods=["erm", "ifgm-at", "entropic-saa", "entropic-sg", "entropic-mlmc"],
    method_overrides={m: dict(center_steps=0, rho=0.15, groups=8 if m == "entropic-mlmc" else 1)
                      for m in ("entropic-saa", "entropic-sg", "entropic-mlmc")},
)


PRESET_NOTES: dict[str, str] = {
    "digits": "Quick benchmark (target <= 3 min on 1 thread): full digits split, one seed; all adversarial "
    "methods trained against l-inf eps=0.15, so the l2 columns measure transfer to another norm.",
    "fashion-mnist": "Budgeted to finish in <= 45 min on 2 shared CPU cores (1 torch thread): random "
    "5000-image training subset, 3 epochs, 500-image test subset, 3 methods, 3 seeds, 2 budgets per norm; "
    "the paper trains on all 60000 images for far longer, so absolute accuracies are lower.",
    "fashion-mnist-l2": "Same data, model, budget and attacks as the fashion-mnist preset, but IFGM-AT and "
    "Entropic-AT are trained against l2 perturbations (eps=1.0; entropic ball: l2, rho=0.5, centred at a "
    "3-step "
    "l2 PGD point), so the l2 columns compare norm-matched training. ERM is in the fashion-mnist table.",
    "digits-entropic-ablation": "Ablation: Entropic-AT with the paper's clean-centred ball (center_steps=0) "
    "versus ERM and IFGM-AT on digits.",
}


RECORDS_DIR = "records"  # not "runs/": the repository's .gitignore ignores every runs/ directory


def run_name(config: BenchmarkConfig, method: str, seed: int) -> str:
    """``{dataset}__{method}__{seed}``."""
    return f"{config.dataset}__{method}__{seed}"


def _load_data(config: BenchmarkConfig) -> Dataset:
    return subset(load_dataset(config.dataset, config.root), config.n_train, config.n_test, seed=0)


def run_one(config: BenchmarkConfig, method: str, seed: int, data: Dataset | None = None, *,
            progress: bool = True, checkpoint: Path | None = None) -> dict:
    """Train ``method`` with ``seed`` and evaluate it on every attack column; return the run record."""
    data = data if data is not None else _load_data(config)
    gen = torch.Generator().manual_seed(seed)
    mcfg = config.method_config(method)
    model = make_model(config.arch, data.num_classes, head="mmc" if needs_mmc_head(method) else "softmax",
                       seed=seed, mmc_C=mcfg.mmc_C)
    t0 = time.perf_counter()
    history = train(model, make_method(method, mcfg), data.x_train, data.y_train,
                    TrainConfig(**config.train), generator=gen, progress=progress)
    t1 = time.perf_counter()
    acc = evaluate(model, data.x_test, data.y_test, config.attack_specs(), seed=seed, progress=progress)
    t2 = time.perf_counter()
    if checkpoint is not None:
        atomic_write_with(checkpoint, lambda f: torch.save(model.state_dict(), f))
    return dict(
        run=run_name(config, method, seed), method=method, seed=seed, config=config.to_dict(),
        method_config=mcfg.to_dict(), train_loss=history, accuracy=acc,
        train_seconds=t1 - t0, eval_seconds=t2 - t1, n_train=len(data.y_train), n_test=len(data.y_test),
        torch_version=torch.__version__, threads=torch.get_num_threads(),
    )


def run_benchmark(config: BenchmarkConfig, out_dir: Path | str, *, command: str = "",
                  progress: bool = True, resume: bool = True) -> list[dict]:
    """Run every (method, seed) of ``config``, writing ``out_dir/records/<run>.json`` after each.

    With ``resume``, a run whose record exists with the same configuration is loaded, not re-run.
    """
    config.validate()
    out_dir = Path(out_dir)
    data = _load_data(config)
    records = []
    pairs = [(m, s) for s in config.seeds for m in config.methods]
    for method, seed in tqdm(pairs, desc=f"benchmark {config.name}", disable=not progress):
        path = out_dir / RECORDS_DIR / f"{run_name(config, method, seed)}.json"
        if resume and path.exists():
            old = read_record(path)
            if old.get("config") == config.to_dict():
                records.append(old)
                continue
        record = run_one(config, method, seed, data, progress=progress)
        record["command"] = command
        atomic_write_json(path, record)
        records.append(record)
    return records


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
    """Methods (in config order), column keys, and ``{method: {key: (mean, std, n_seeds)}}`` in percent."""
    methods = [m for m in runs[0]["config"]["methods"] if any(r["method"] == m for r in runs)]
    methods += sorted({r["method"] for r in runs} - set(methods))
    keys = ["clean"] + [AttackSpec(**a).key for a in runs[0]["config"]["attacks"]]
    table: dict[str, dict[str, tuple[float, float, int]]] = {}
    for m in methods:
        rows = [r for r in runs if r["method"] == m]
        table[m] = {}
        for k in keys:
            vals = np.array([100.0 * r["accuracy"][k] for r in rows if k in r["accuracy"]])
            std = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            table[m][k] = (float(vals.mean()), std, len(vals))
    return methods, keys, table


def _split_key(key: str) -> tuple[str, str, float]:
    attack, norm, eps = key.split("_")
    return attack, norm, float(eps)


def _pgd_family(attack: str) -> bool:
    return attack.startswith("pgd")


def _strongest(table: dict, method: str, keys: Sequence[str], norm: str, eps: float) -> float:
    """Lowest mean accuracy of ``method`` over the PGD-family columns (``pgd``, ``pgd-margin``) at
    (norm, eps)."""
    return min(table[method][k][0] for k in keys
               if k != "clean" and _pgd_family(_split_key(k)[0]) and _split_key(k)[1:] == (norm, eps))


def _strongest_std(table: dict, method: str, keys: Sequence[str], norm: str, eps: float) -> float:
    """Seed std of the column :func:`_strongest` picks."""
    cols = [k for k in keys
            if k != "clean" and _pgd_family(_split_key(k)[0]) and _split_key(k)[1:] == (norm, eps)]
    return table[method][min(cols, key=lambda k: table[method][k][0])][1]


def _pgd_budgets(keys: Sequence[str], norm: str) -> list[float]:
    return sorted({_split_key(k)[2] for k in keys if k != "clean" and _pgd_family(_split_key(k)[0])
                   and _split_key(k)[1] == norm})


def ordering_check(runs: Sequence[dict], better: str, baseline: str, n_largest: int = 2,
                   clean_tolerance: float = 2.0) -> list[str]:
    """Lines stating whether ``better`` >= ``baseline`` at the ``n_largest`` PGD budgets per norm
    (accuracy under the strongest PGD-family attack at that budget), and whether its clean accuracy is within
    ``clean_tolerance`` points (means over seeds)."""
    methods, keys, table = summarise(runs)
    if better not in table or baseline not in table:
        return [f"- ordering check skipped: needs both {better!r} and {baseline!r} runs"]
    lines = []
    for norm in ("linf", "l2"):
        for eps in _pgd_budgets(keys, norm)[-n_largest:]:
            a, b = _strongest(table, better, keys, norm, eps), _strongest(table, baseline, keys, norm, eps)
            sa, sb = (_strongest_std(table, m, keys, norm, eps) for m in (better, baseline))
            verdict = "HOLDS" if a >= b else "DOES NOT HOLD"
            lines.append(f"- {norm} eps={eps:g}: {better} {a:.1f} ± {sa:.1f} vs "
                         f"{baseline} {b:.1f} ± {sb:.1f} "
                         f"(difference {a - b:+.1f}) -> {better} >= {baseline} {verdict}")
    a, b = table[better]["clean"][0], table[baseline]["clean"][0]
    verdict = "HOLDS" if abs(a - b) <= clean_tolerance else "DOES NOT HOLD"
    lines.append(f"- clean: {better} {a:.1f} vs {baseline} {b:.1f} -> "
                 f"within {clean_tolerance:g} points {verdict}")
    return lines


def sanity_check(runs: Sequence[dict]) -> list[str]:
    """Lines for the sanity floor: ERM loses >= 50 points at the largest PGD budget of each norm, and every
    other method recovers at least half of that loss (accuracy under the strongest PGD-family attack)."""
    methods, keys, table = summarise(runs)
    if "erm" not in table:
        return ["- sanity check skipped: no erm runs"]
    lines = []
    for norm in ("linf", "l2"):
        budgets = _pgd_budgets(keys, norm)
        if not budgets:
            continue
        eps = budgets[-1]
        clean, attacked = table["erm"]["clean"][0], _strongest(table, "erm", keys, norm, eps)
        drop = clean - attacked
        lines.append(f"- {norm} eps={eps:g}: ERM {clean:.1f} clean -> {attacked:.1f} "
                     f"(loses {drop:.1f} points; "
                     f">= 50: {'HOLDS' if drop >= 50 else 'DOES NOT HOLD'})")
        for m in methods:
            if m == "erm":
                continue
            acc = _strongest(table, m, keys, norm, eps)
            recovered = acc - attacked
            lines.append(f"  - {m}: {acc:.1f} (recovers {recovered:.1f} of {drop:.1f}; at least half: "
                         f"{'HOLDS' if recovered >= drop / 2 else 'DOES NOT HOLD'})")
    return lines


def _header(runs: Sequence[dict], command: str) -> list[str]:
    cfg = runs[0]["config"]
    seeds = sorted({r["seed"] for r in runs})
    train_min = sum(r["train_seconds"] for r in runs) / 60
    eval_min = sum(r["eval_seconds"] for r in runs) / 60
    note = PRESET_NOTES.get(cfg["name"])
    return ([note] if note else []) + [
        f"Made by: {command or runs[0].get('command', '(unknown)')}",
        f"Run records: {len(runs)} (seeds {seeds}); per-run commands: "
        f"{sorted({r.get('command', '') for r in runs})}",
        f"Dataset {cfg['dataset']} (train {runs[0]['n_train']}, test {runs[0]['n_test']} examples), "
        f"arch {cfg['arch']}, training {json.dumps(cfg['train'])}",
        f"Method config {json.dumps(cfg['method'])}; overrides {json.dumps(cfg['method_overrides'])}",
        f"Attacks: {len(cfg['attacks'])} columns, PGD with {cfg['attacks'][0]['steps']} steps and "
        f"{cfg['attacks'][0]['restarts']} random restarts (alpha = 2.5*eps/steps; restarts rerun on the "
        "examples not yet fooled), pgd-margin = the same PGD on the Carlini-Wagner margin loss, FGM, uniform "
        "noise; all clamped to [0, 1]",
        "Training: adversarial methods use the norm and budget eps of the method config; "
        "IFGM-AT/MMC-AT/ADT-EXP use `steps` inner steps; Entropic-AT = entropic risk (eta, rho) over uniform "
        "samples in a ball of the training norm, radius rho, centred at a `center_steps`-step PGD point "
        "(clean point if 0), clamped to "
        "[0, 1]; SAA m samples, SG/RT-MLMC level L; `groups` = sub-batches with independent estimator calls",
        f"Total wall-clock: train {train_min:.1f} min, eval {eval_min:.1f} min "
        f"(torch {runs[0]['torch_version']}, {runs[0]['threads']} thread(s))",
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


def plot_accuracy(runs: Sequence[dict], path: Path | str) -> Path:
    """Accuracy versus budget in the style of the paper's figure: one row per norm, one panel per attack,
    one line per method (mean +- std over seeds), budget 0 = clean accuracy."""
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone, renders with Agg

    methods, keys, table = summarise(runs)
    attack_order = {"pgd": 0, "pgd-margin": 1, "fgm": 2, "noise": 3}
    cols_of = {k: _split_key(k) for k in keys if k != "clean"}
    norms = [n for n in ("linf", "l2") if any(c[1] == n for c in cols_of.values())]
    attacks = sorted({c[0] for c in cols_of.values()}, key=lambda a: attack_order.get(a, 9))
    fig = Figure(figsize=(3.3 * len(attacks), 3.0 * len(norms)))
    axes = fig.subplots(len(norms), len(attacks), squeeze=False)
    for row, norm in enumerate(norms):
        for col, attack in enumerate(attacks):
            ax = axes[row][col]
            cols = sorted((k for k, c in cols_of.items() if c[:2] == (attack, norm)),
                          key=lambda k: cols_of[k][2])
            xs = [0.0] + [cols_of[k][2] for k in cols]
            for m in methods:
                ys = [table[m]["clean"][0]] + [table[m][k][0] for k in cols]
                es = [table[m]["clean"][1]] + [table[m][k][1] for k in cols]
                ax.errorbar(xs, ys, yerr=es, marker="o", ms=3, capsize=2, label=m)
            ax.set_title(f"{attack.upper()} ({'ℓ∞' if norm == 'linf' else 'ℓ2'})", fontsize=9)
            ax.set_xlabel("budget ε", fontsize=8)
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
        axes[row][0].set_ylabel("test accuracy (%)", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(methods), 9), fontsize=8)
    fig.tight_layout(rect=(0, 0.08 if len(norms) > 1 else 0.14, 1, 1))
    atomic_write_with(path, lambda f: fig.savefig(f, dpi=110, format="png"))
    return Path(path)


def preset(name: str, **overrides: object) -> BenchmarkConfig:
    """A copy of preset ``name`` with fields replaced by ``overrides`` (``None`` values ignored)."""
    check_choice(name, tuple(PRESETS), "preset")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}).validate()




def write_benchmark_tables(runs: Sequence[dict], out_dir: Path | str, command: str = "") -> dict[str, Path]:
    """:func:`make_table` with the target checks: the sanity floor (ERM drop and recovery) for every
    benchmark, and Entropic-AT versus IFGM-AT ordering for each entropic method present."""
    checks = ["Sanity floor (the digits target; largest PGD budget per norm; accuracy under the strongest "
              "PGD-family column there, i.e. the lower of pgd and pgd-margin when both exist):", ""]
    checks += sanity_check(runs)
    methods = {r["method"] for r in runs}
    for m in sorted(x for x in methods if x.startswith("entropic-")):
        if "ifgm-at" in methods:
            checks += ["", f"Ordering {m} vs ifgm-at (strongest PGD-family column at the two largest budgets "
                       "per norm; means over seeds):", ""]
            checks += ordering_check(runs, m, "ifgm-at")
    return make_table(runs, out_dir, command=command, checks=checks)
