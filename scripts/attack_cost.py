"""Where the supervised benchmarks' evaluation time goes: the cost of one gradient pass per test point.

The attack ensemble spends a fixed number of forward-backward passes on every point it cannot break (the
records' ``eval_costs``), so a benchmark's evaluation time is its number of point-passes times the cost of one.
This script measures that cost for each preset's network, interleaved in rounds (the machine is shared):

1. a bare pass (forward, cross-entropy, gradient with respect to the input; parameters frozen, as in the
   attacks) at several batch sizes, one torch thread: does batching more points per call make a pass cheaper?
2. the ensemble itself (the preset's model trained for its first row with robust training, seed 0, at the
   preset's first ensemble column) against a bare pass of the same model and points: how much does the attack's
   own bookkeeping add?

Both are ratios within one round, so they hold on a loaded machine. With the second, the committed run records
give a floor for each benchmark: their recorded evaluation and convergence-check seconds divided by that ratio
are what the same passes would cost with no attack overhead at all, plus the recorded training, on two cores.

    python scripts/attack_cost.py [--rounds 5] [--results results] [--records results/supervised]

Writes the ``attack_cost`` section of results/benchmarks.md (results/benchmarks/attack_cost.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from robustrl.checks import int_option
from robustrl.experiments.report import write_benchmark_section
from robustrl.supervised import PRESETS, attack_ensemble, make_model
from robustrl.supervised.benchmark import load_data, train_row
from robustrl.supervised.training import EVAL_BATCH_SIZE, GradientCounter

BATCHES = (25, 100, EVAL_BATCH_SIZE, 1000)
TARGETS_MIN = {"digits": 12, "fashion-mnist": 60}  # the wall-clock targets on 2 cores
ROW = "ifgm-at"  # the adversarially trained row both presets have: its points survive, so they cost every pass


def bare_pass_us(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, passes: int) -> float:
    """Microseconds per point of one forward-backward pass to the input, averaged over ``passes`` calls."""
    start = time.perf_counter()
    for _ in range(passes):
        inputs = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(inputs), y), inputs)
    return (time.perf_counter() - start) / passes / len(x) * 1e6


def ensemble_pass_us(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str) -> float:
    """Microseconds per point-pass of the evaluation's attack ensemble on ``(x, y)``."""
    attack = attack_ensemble(model, eps, norm, generator=torch.Generator().manual_seed(0))
    with GradientCounter(model) as counter:
        start = time.perf_counter()
        attack(x, y)
        seconds = time.perf_counter() - start
    return seconds / counter.rows * 1e6


def record_totals(records: Path) -> dict[str, float]:
    """Sums over the run records in ``records``: evaluation point-passes and the training, evaluation and
    convergence-check seconds (each run on one core), and the number of runs."""
    totals = dict(passes=0.0, train=0.0, eval=0.0, convergence=0.0, runs=0)
    for path in sorted(records.glob("*.json")):
        record = json.loads(path.read_text())
        totals["passes"] += sum(c["passes_per_point"] for c in record["eval_costs"].values()) * record["n_test"]
        totals["train"] += record["train_seconds"]
        totals["eval"] += record["eval_seconds"]
        totals["convergence"] += record.get("convergence_seconds", 0.0)
        totals["runs"] += 1
    if not totals["runs"]:
        raise ValueError(f"no run records in {records}")
    return totals


def measure(preset: str, rounds: int) -> dict:
    """Both measurements for one preset (medians over ``rounds`` interleaved rounds)."""
    config = PRESETS[preset]
    data = load_data(config)
    trained, *_ = train_row(config, ROW, 0, data, progress=False)
    trained.eval().requires_grad_(False)
    column = next(a for a in config.attack_specs() if a.name == "ensemble")
    x, y = data.x_test[:EVAL_BATCH_SIZE], data.y_test[:EVAL_BATCH_SIZE]
    with torch.no_grad():
        right = trained(x).argmax(1) == y
    classes = int(data.y_train.max()) + 1
    model = make_model(config.arch, classes, seed=0).eval().requires_grad_(False)
    big_x = data.x_test[: max(BATCHES)].repeat(-(-max(BATCHES) // len(data.x_test)), 1, 1, 1)[: max(BATCHES)]
    big_y = torch.randint(0, classes, (len(big_x),), generator=torch.Generator().manual_seed(0))
    batch_us: dict[int, list[float]] = {b: [] for b in BATCHES}
    bare_at_eval, ensemble = [], []
    for _ in range(rounds):
        for b in BATCHES:
            batch_us[b].append(bare_pass_us(model, big_x[:b], big_y[:b], max(4, 2000 // b)))
        bare_at_eval.append(bare_pass_us(trained, x[right], y[right], 8))
        ensemble.append(ensemble_pass_us(trained, x[right], y[right], column.eps, column.norm))
    med = statistics.median
    return dict(preset=preset, arch=config.arch, column=column.key,
                batch_us={b: med(v) for b, v in batch_us.items()}, bare_at_eval_us=med(bare_at_eval),
                ensemble_us=med(ensemble), ratio=med(e / b for e, b in zip(ensemble, bare_at_eval)),
                points=int(right.sum()))


def section(results: list[dict], totals: dict[str, dict[str, float]], rounds: int) -> str:
    """The Markdown section, from the measurements and each preset's :func:`record_totals`."""
    lines = [
        "## Attack cost per test point (supervised benchmarks)",
        "",
        f"Made by `python scripts/attack_cost.py --rounds {rounds}`: medians over {rounds} interleaved rounds, "
        f"torch {torch.__version__}, one thread. A *pass* is one forward-backward pass of one test point to the "
        "input (parameters frozen), the unit in which the records count the ensemble's work.",
        "",
        "| preset | network | " + " | ".join(f"µs/pass at batch {b}" for b in BATCHES)
        + " | ensemble against a bare pass |",
        "|---|---|" + "---|" * (len(BATCHES) + 1),
    ]
    for r in results:
        one = r["batch_us"][EVAL_BATCH_SIZE]
        cells = [f"{r['batch_us'][b]:.1f} ({r['batch_us'][b] / one:.2f}x)" for b in BATCHES]
        lines.append(f"| {r['preset']} | {r['arch']} | " + " | ".join(cells) + f" | {r['ratio']:.2f}x |")
    lines += [
        "",
        f"In brackets: against the evaluation's batch of {EVAL_BATCH_SIZE}. Last column: the ensemble's time per "
        "pass over a bare pass's, same model and points ("
        + "; ".join(f"{r['preset']}: {ROW} at {r['column']}, the {r['points']} of the first "
                    f"{EVAL_BATCH_SIZE} test points it classifies correctly" for r in results)
        + ", seed 0). Absolute microseconds depend on the machine's load; the ratios are within one round.",
        "",
        "| preset | runs | evaluation point-passes | training min | evaluation min | convergence check min | "
        "floor on 2 cores (min) | recorded on 2 cores (min) | target (min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = totals[r["preset"]]
        recorded = (t["train"] + t["eval"] + t["convergence"]) / 60 / 2
        floor = (t["train"] + (t["eval"] + t["convergence"]) / max(r["ratio"], 1.0)) / 60 / 2
        lines.append(f"| {r['preset']} | {t['runs']} | {t['passes']:,.0f} | {t['train'] / 60:.1f} | "
                     f"{t['eval'] / 60:.1f} | {t['convergence'] / 60:.1f} | {floor:.1f} | {recorded:.1f} | "
                     f"{TARGETS_MIN[r['preset']]} |")
    lines += [
        "",
        "Minutes of the records are summed over runs, each on one core. *floor*: the records' training plus their "
        "evaluation and convergence-check time divided by the ensemble's overhead ratio (by 1 where the measured "
        "ratio is below 1, as load noise can make it), i.e. the same passes with no overhead at all, shared by two "
        "cores. When the cost per pass is flat in the batch size and the overhead ratio is near 1, the time is the "
        "passes themselves: only fewer passes (fewer steps, restarts or target classes, i.e. a weaker attack) or a "
        "cheaper network make it shorter.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the section; exit 2 on bad input (before any measurement)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int_option(1), default=5)
    parser.add_argument("--presets", nargs="+", default=list(TARGETS_MIN), choices=list(TARGETS_MIN))
    parser.add_argument("--results", default="results", help="where results/benchmarks.md is written")
    parser.add_argument("--records", default="results/supervised",
                        help="the folder holding <preset>/records of the committed benchmarks")
    args = parser.parse_args(argv)
    try:  # before the minutes of measuring
        totals = {p: record_totals(Path(args.records) / p / "records") for p in args.presets}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    results = [measure(p, args.rounds) for p in args.presets]
    text = section(results, totals, args.rounds)
    print(text)
    write_benchmark_section(args.results, "attack_cost", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
