"""The exact adversarial logistic regression table (driver logic for scripts/supervised_logistic.py).

For each data set and each attack norm (ℓ∞, ℓ2, ℓ1, with budgets in [0, 1]-pixel units from
:data:`EPSILONS`): a standard model (eps = 0) and, per budget, a model trained on that norm's closed-form
worst-case loss (:func:`~robustrl.supervised.linear.adversarial_logistic_loss`), evaluated under the exact
attacks of :func:`~robustrl.supervised.linear.worst_case`. Besides the per-norm table, a cross-norm table
gives every model's error under every norm's exact [0, 1]-clipped attack at every budget.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from robustrl.experiments.io import atomic_write_json, atomic_write_text
from robustrl.supervised.data import load_dataset
from robustrl.supervised.linear import (
    LINEAR_NORMS,
    adversarial_logistic_loss,
    binary_subset,
    error_rate,
    train_logistic,
)
from robustrl.supervised.models import BinaryLogistic

__all__ = ["EPSILONS", "logistic_report"]

#: Attack budgets per data set and norm, in [0, 1]-pixel units. The ℓ∞ budgets are those of the
#: Kolter-Madry tutorial's table; the ℓ2 and ℓ1 ones span "no effect" to "breaks the standard model"
#: (digits: d = 64, Fashion-MNIST: d = 784).
EPSILONS: dict[str, dict[str, tuple[float, ...]]] = {
    "digits": {"linf": (0.1, 0.2, 0.3), "l2": (0.5, 1.0, 1.5), "l1": (1.0, 2.0, 4.0)},
    "fashion-mnist": {"linf": (0.1, 0.2), "l2": (0.5, 1.0, 2.0), "l1": (5.0, 10.0, 20.0)},
}
TRAIN = dict(epochs=10, lr=1.0, batch_size=100)
DUAL = {"linf": "||theta||_1", "l2": "||theta||_2", "l1": "||theta||_inf"}
COLS = ["standard_clean", "standard_exact_attack", "standard_exact_attack_clipped01",
        "robust_clean", "robust_exact_attack", "robust_exact_attack_clipped01",
        "standard_train_worst_loss", "robust_train_worst_loss"]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _rows(dataset: str, seeds: list[int]) -> tuple[list[dict], dict]:
    """(per-norm rows, cross-norm record) of one data set."""
    data = binary_subset(load_dataset(dataset), 0, 1)
    budgets = EPSILONS[dataset]
    attacks = [(norm, eps) for norm in LINEAR_NORMS for eps in budgets[norm]]
    models = ["standard"] + [f"robust {norm} eps={eps}" for norm, eps in attacks]
    per_row: dict[tuple[str, float], dict[str, list[float]]] = {a: {} for a in attacks}
    cross: dict[str, dict[str, list[float]]] = {m: {} for m in models}
    for seed in seeds:
        trained: dict[str, BinaryLogistic] = {
            "standard": train_logistic(data.x_train, data.y_train, 0.0, seed=seed, **TRAIN)}
        for norm, eps in attacks:
            trained[f"robust {norm} eps={eps}"] = train_logistic(data.x_train, data.y_train, eps, norm=norm,
                                                                 seed=seed, **TRAIN)
        clipped = {(name, norm, eps): error_rate(model, data.x_test, data.y_test, eps, True, norm=norm)
                   for name, model in trained.items() for norm, eps in attacks}
        clean = {name: error_rate(model, data.x_test, data.y_test) for name, model in trained.items()}
        for name in models:
            cross[name].setdefault("clean", []).append(clean[name])
            for norm, eps in attacks:
                cross[name].setdefault(f"{norm} {eps}", []).append(clipped[(name, norm, eps)])
        for norm, eps in attacks:
            errs = per_row[(norm, eps)]
            for kind, name in (("standard", "standard"), ("robust", f"robust {norm} eps={eps}")):
                model = trained[name]
                with torch.no_grad():
                    loss = adversarial_logistic_loss(model, data.x_train, data.y_train, eps, norm).mean()
                for col, value in (("clean", clean[name]),
                                   ("exact_attack", error_rate(model, data.x_test, data.y_test, eps, norm=norm)),
                                   ("exact_attack_clipped01", clipped[(name, norm, eps)]),
                                   ("train_worst_loss", float(loss))):
                    errs.setdefault(f"{kind}_{col}", []).append(value)
    rows = [dict(dataset=f"{dataset} 0-vs-1", norm=norm, eps=eps, n_train=len(data.y_train),
                 n_test=len(data.y_test), **{k: _mean_std(v) for k, v in per_row[(norm, eps)].items()})
            for norm, eps in attacks]
    record = dict(dataset=f"{dataset} 0-vs-1", columns=["clean"] + [f"{n} {e}" for n, e in attacks],
                  models={m: {k: _mean_std(v) for k, v in cols.items()} for m, cols in cross.items()})
    return rows, record


def logistic_report(out_dir: Path | str, seeds: list[int], command: str) -> str:
    """Compute every row, write ``runs.json``, ``table.csv``, ``cross_norm.csv`` and ``table.md`` in
    ``out_dir``; return the Markdown."""
    rows: list[dict] = []
    crosses: list[dict] = []
    for dataset in EPSILONS:
        try:
            new_rows, record = _rows(dataset, seeds)
        except ValueError as exc:  # a missing optional data set is reported, not fatal
            rows.append(dict(dataset=dataset, skipped=str(exc)))
            continue
        rows += new_rows
        crosses.append(record)
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "runs.json", dict(command=command, seeds=seeds, train=TRAIN,
                                                  epsilons=EPSILONS, rows=rows, cross_norm=crosses))
    header = [f"Made by: {command}", f"Seeds {seeds} (mean and std over seeds; the seed only "
              f"changes the SGD batch order); SGD {TRAIN} for every norm, zero init",
              "standard = trained with eps=0; robust = trained on the exact worst-case loss "
              "log(1+exp(-y(theta^T x+b)+eps*||theta||_q)) of the row's norm and eps, q the dual norm: "
              + ", ".join(f"{n} -> {d}" for n, d in DUAL.items()),
              "exact_attack = the exact worst case in the norm ball, not clamped: linf x-eps*y*sign(theta); "
              "l2 x-eps*y*theta/||theta||_2; l1 x-eps*y*sign(theta_j)e_j with j=argmax|theta_j|",
              "_clipped01 = the exact worst case within the ball and the image box [0,1]^d: linf the same "
              "point clamped; l1 a fractional knapsack (pixels moved fully in decreasing |theta_j| order "
              "until eps is spent); l2 delta_j=clamp(lam*(-y*theta_j),-x_j,1-x_j) with ||delta||_2=eps (KKT)",
              "train_worst_loss = mean closed-form worst-case training loss at the row's norm and eps "
              "(the robust model's objective; a robust value above the standard one means that SGD budget "
              "has not minimised it)",
              "Cross-norm table: mean test error (std in cross_norm.csv) of each model (rows) under the exact "
              "clipped attack of each norm and budget (columns)",
              "Reference (Kolter-Madry tutorial, MNIST 0-vs-1, eps=0.2): "
              "standard 0.0004 -> 0.845 under attack; "
              "robust 0.025 under attack"]
    buf = io.StringIO()
    buf.writelines(f"# {h}\n" for h in header)
    w = csv.writer(buf)
    w.writerow(["dataset", "norm", "eps", "n_train", "n_test"] + [f"{c}_{s}" for c in COLS for s in ("mean", "std")])
    md = [f"<!-- {h} -->" for h in header] + ["", "| data | norm | eps | n test | " + " | ".join(COLS) + " |",
                                               "|---|---|---|---|" + "---|" * len(COLS)]
    for r in rows:
        if "skipped" in r:
            md.append(f"| {r['dataset']} | skipped: {r['skipped']} |")
            continue
        values = [f"{v:.4f}" for c in COLS for v in r[c]]
        w.writerow([r["dataset"], r["norm"], r["eps"], r["n_train"], r["n_test"]] + values)
        md.append(f"| {r['dataset']} | {r['norm']} | {r['eps']} | {r['n_test']} | "
                  + " | ".join(f"{r[c][0]:.4f} ± {r[c][1]:.4f}" for c in COLS) + " |")
    cross_buf = io.StringIO()
    cw = csv.writer(cross_buf)
    cw.writerow(["dataset", "model", "attack", "test_error_mean", "test_error_std"])
    for record in crosses:
        columns = record["columns"]
        md += ["", f"Cross-norm, {record['dataset']} (test error under the exact clipped attack):", "",
               "| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for model, cols in record["models"].items():
            md.append(f"| {model} | " + " | ".join(f"{cols[c][0]:.3f}" for c in columns) + " |")
            for c in columns:
                cw.writerow([record["dataset"], model, c, f"{cols[c][0]:.4f}", f"{cols[c][1]:.4f}"])
    md += ["", "How this was made:", ""] + [f"- {h}" for h in header]
    atomic_write_text(out_dir / "table.csv", buf.getvalue())
    atomic_write_text(out_dir / "cross_norm.csv", cross_buf.getvalue())
    text = "\n".join(md) + "\n"
    atomic_write_text(out_dir / "table.md", text)
    return text
