"""The ``robustrl supervised`` command group: ``train``, ``evaluate``, ``table`` and ``benchmark``.

The top-level CLI calls :func:`add_subcommands` on its subparsers and then ``args.func(args)``; user
errors raise ``ValueError``. Building the parser needs no torch (the choices come from
:mod:`robustrl.supervised.names`); each command imports what it runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from robustrl.checks import int_option
from robustrl.experiments.io import atomic_write_json
from robustrl.supervised.names import ARCHS, ATTACKS, DATASETS, METHODS, NORMS, PRESET_NAMES

__all__ = ["METHOD_FLAGS", "add_subcommands", "cmd_benchmark", "cmd_evaluate", "cmd_table", "cmd_train",
           "preset_train_argv", "train_config"]


def _command() -> str:
    return shlex.join(["robustrl", *sys.argv[1:]])


def _attack_dicts(args: argparse.Namespace) -> list[dict]:
    return [dict(name=args.attack, norm=args.norm, eps=e, steps=args.steps, restarts=args.restarts)
            for e in (args.eps or [])]


def train_config(args: argparse.Namespace):
    """The one-row :class:`~robustrl.supervised.benchmark.BenchmarkConfig` that ``robustrl supervised train``
    trains for parsed ``args`` (``ValueError`` naming a bad value)."""
    from robustrl.supervised.benchmark import BenchmarkConfig
    from robustrl.supervised.methods import MethodConfig

    method_cfg = MethodConfig(eps=args.train_eps, norm=args.train_norm, steps=args.train_steps, rho=args.rho,
                              eta=args.eta, m=args.m, L=args.L, center_steps=args.center_steps,
                              groups=args.groups, adt_lambda=args.adt_lambda, adt_lr=args.adt_lr,
                              mmc_C=args.mmc_C, match_budget=args.match_budget)
    return BenchmarkConfig(
        name="cli", dataset=args.dataset, root=args.root,
        arch=args.arch or ("small-cnn" if args.dataset == "digits" else "paper-cnn"),
        methods=[args.method], seeds=[args.seed], n_train=args.n_train, n_test=args.n_test,
        train=dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr),
        method=method_cfg.to_dict(), attacks=[],
    ).validate()


#: ``MethodConfig`` field -> the ``robustrl supervised train`` flag that sets it.
METHOD_FLAGS = {"eps": "--train-eps", "norm": "--train-norm", "steps": "--train-steps", "rho": "--rho",
                "eta": "--eta", "m": "--m", "L": "--L", "center_steps": "--center-steps", "groups": "--groups",
                "adt_lambda": "--adt-lambda", "adt_lr": "--adt-lr", "mmc_C": "--mmc-C",
                "match_budget": "--match-budget"}


def preset_train_argv(preset_name: str, row: str, seed: int) -> list[str]:
    """The ``robustrl supervised train`` arguments that train row ``row`` of benchmark preset ``preset_name``
    with ``seed`` as the benchmark does (same data, model, optimisation and method settings)."""
    from robustrl.supervised.benchmark import PRESETS

    if preset_name not in PRESETS:
        raise ValueError(f"unknown preset {preset_name!r}; choose from {sorted(PRESETS)}")
    config = PRESETS[preset_name]
    if row not in config.methods:
        raise ValueError(f"preset {preset_name!r} has no row {row!r}; its rows are {config.methods}")
    argv = ["supervised", "train", "--dataset", config.dataset, "--arch", config.arch,
            "--method", config.base_method(row), "--seed", str(seed),
            "--epochs", str(config.train["epochs"]), "--batch-size", str(config.train["batch_size"]),
            "--lr", repr(config.train["lr"])]
    if config.root is not None:
        argv += ["--root", config.root]
    for name, value in (("--n-train", config.n_train), ("--n-test", config.n_test)):
        if value is not None:
            argv += [name, str(value)]
    for field_name, value in config.method_config(row).to_dict().items():
        if field_name == "match_budget":
            argv += ["--match-budget"] if value else []
        else:
            argv += [METHOD_FLAGS[field_name], repr(value) if isinstance(value, float) else str(value)]
    return argv


def cmd_train(args: argparse.Namespace) -> int:
    """Train one (method, seed) and save ``<out>/<run>.pt`` and ``<out>/<run>.json``."""
    import torch

    from robustrl.supervised.benchmark import run_one

    torch.set_num_threads(args.threads)
    config = train_config(args)
    out = Path(args.out)
    name = f"{args.dataset}__{args.method}__{args.seed}"
    record = run_one(config, args.method, args.seed, progress=not args.no_progress,
                     checkpoint=out / f"{name}.pt")
    record.update(command=_command(), checkpoint=f"{name}.pt")
    atomic_write_json(out / f"{name}.json", record)
    print(f"{name}: clean accuracy {100 * record['accuracy']['clean']:.2f}% -> {out / name}.json")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a trained run under attacks; the accuracies are added to its record."""
    import torch

    from robustrl.supervised.benchmark import read_record
    from robustrl.supervised.data import load_dataset, subset
    from robustrl.supervised.methods import MethodConfig, needs_mmc_head
    from robustrl.supervised.models import load_checkpoint, make_model
    from robustrl.supervised.training import AttackSpec, evaluate

    torch.set_num_threads(args.threads)
    path = Path(args.run)
    record = read_record(path)
    if not isinstance(record.get("checkpoint"), str):
        raise ValueError(f"{path} names no checkpoint (records of `robustrl supervised train` do)")
    cfg = record["config"]
    specs = [AttackSpec(**a) for a in _attack_dicts(args)]
    data = subset(load_dataset(cfg["dataset"], cfg["root"]), cfg["n_train"], cfg["n_test"], seed=0)
    model = make_model(cfg["arch"], data.num_classes,
                       head="mmc" if needs_mmc_head(record.get("base_method", record["method"])) else "softmax",
                       mmc_C=record["method_config"].get("mmc_C", MethodConfig.mmc_C))
    load_checkpoint(model, path.parent / record["checkpoint"])
    acc = evaluate(model, data.x_test, data.y_test, specs, seed=record["seed"], progress=not args.no_progress)
    record["accuracy"].update(acc)
    known = {AttackSpec(**a).key for a in cfg["attacks"]}
    cfg["attacks"] += [a for a, s in zip(_attack_dicts(args), specs) if s.key not in known]
    record.setdefault("evaluate_commands", []).append(_command())
    atomic_write_json(path, record)
    for key, value in acc.items():
        print(f"{key}: {100 * value:.2f}%")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    """Build table.csv / table.md / accuracy_vs_budget.png from the run records in ``--runs``."""
    from robustrl.supervised.benchmark import load_runs, write_benchmark_tables

    paths = write_benchmark_tables(load_runs(args.runs), args.out, _command())
    print("\n".join(str(p) for p in paths.values()))
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Run a benchmark preset (resuming from existing records) and build its tables."""
    import torch

    from robustrl.supervised.benchmark import RECORDS_DIR, preset, run_benchmark

    torch.set_num_threads(args.threads)
    config = preset(args.preset, seeds=args.seeds)
    run_benchmark(config, args.out, command=_command(), progress=not args.no_progress, jobs=args.jobs)
    status = cmd_table(argparse.Namespace(runs=f"{args.out}/{RECORDS_DIR}", out=args.out))
    if args.compare is None:
        return status
    from robustrl.supervised.benchmark import compare_records

    results = compare_records(Path(args.out) / RECORDS_DIR, Path(args.compare) / RECORDS_DIR)
    for name, differences in results.items():
        print(f"{name}: {'identical' if not differences else '; '.join(differences)}")
    same = sum(not d for d in results.values())
    print(f"compared {len(results)} run(s) with {args.compare}/{RECORDS_DIR}: {same} identical, "
          f"{len(results) - same} differ")
    return 0 if same == len(results) else 1


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int_option(1), default=1, help="torch threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _attack_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--attack", choices=ATTACKS, default="ensemble",
                   help="default ensemble: per point the worst of cross-entropy PGD, margin-loss PGD and "
                        "targeted APGD at every other class")
    p.add_argument("--norm", choices=NORMS, default="linf")
    p.add_argument("--eps", type=float, nargs="+", required=required, help="attack budgets")
    p.add_argument("--steps", type=int_option(1), default=50, help="PGD steps (default 50)")
    p.add_argument("--restarts", type=int_option(1), default=3,
                   help="PGD random restarts, per loss for the ensemble (default 3)")


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``supervised`` command (``train``, ``evaluate``, ``table``, ``benchmark``) to
    ``subparsers``; every leaf parser sets ``func``."""
    sup = subparsers.add_parser("supervised", help="adversarially robust classifiers (digits, Fashion-MNIST)")
    sub = sup.add_subparsers(dest="supervised_command", required=True)

    p = sub.add_parser("train", help="train one method with one seed")
    p.add_argument("--dataset", choices=DATASETS, default="digits")
    p.add_argument("--root", default=None, help="directory of IDX files (mnist, idx, other fashion-mnist)")
    p.add_argument("--arch", choices=ARCHS, default=None, help="default small-cnn for digits, else paper-cnn")
    p.add_argument("--method", choices=METHODS, default="erm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int_option(1), default=10)
    p.add_argument("--batch-size", type=int_option(1), default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-train", type=int_option(1), default=None, help="random training subset size")
    p.add_argument("--n-test", type=int_option(1), default=None, help="random test subset size")
    p.add_argument("--train-eps", type=float, default=0.1, help="training budget")
    p.add_argument("--train-norm", choices=NORMS, default="linf")
    p.add_argument("--train-steps", type=int_option(1), default=7, help="PGD steps in training")
    p.add_argument("--rho", type=float, default=0.1, help="entropic ball radius")
    p.add_argument("--eta", type=float, default=0.5, help="entropic temperature")
    p.add_argument("--m", type=int_option(1), default=8, help="SAA samples")
    p.add_argument("--L", type=int_option(0), default=3, help="SG / RT-MLMC level")
    p.add_argument("--center-steps", type=int_option(0), default=0,
                   help="PGD steps to the entropic ball centre")
    p.add_argument("--groups", type=int_option(1), default=1,
                   help="entropic sub-batches with independent estimator calls (RT-MLMC: one level each)")
    p.add_argument("--match-budget", action="store_true",
                   help="Entropic-AT's samples stay in the training ball B_eps(x): centre searched in "
                        "B_{eps-rho}(x) (the presets' budget-matched rows)")
    p.add_argument("--adt-lambda", type=float, default=0.01, help="ADT-EXP entropy bonus")
    p.add_argument("--adt-lr", type=float, default=0.3, help="ADT-EXP inner step size")
    p.add_argument("--mmc-C", type=float, default=10.0, help="MMC / MMC-AT centre norm")
    p.add_argument("--out", default="runs/supervised")
    _common(p)
    p.set_defaults(func=cmd_train, output_folders=("out",))

    p = sub.add_parser("evaluate", help="accuracy of a trained run under an attack")
    p.add_argument("--run", required=True, help="run record written by `train` (<out>/<run>.json)")
    _attack_args(p, required=True)
    _common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("table", help="CSV / Markdown / PNG from run records")
    p.add_argument("--runs", required=True, help="directory of run records")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_table, output_folders=("out",))

    p = sub.add_parser("benchmark", help="run a benchmark preset and build its tables")
    p.add_argument("--preset", choices=sorted(PRESET_NAMES), default="digits")
    p.add_argument("--out", default=None,
                   help="default runs/supervised/<preset> (committed tables: results/supervised/<preset>)")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--jobs", type=int_option(1), default=1,
                   help="worker processes, one torch thread each (default 1)")
    p.add_argument("--compare", default=None, metavar="DIR",
                   help="afterwards compare every record with DIR's (e.g. results/supervised/digits): training "
                        "loss, accuracies and per-point results bit for bit; exit code 1 if one differs")
    _common(p)
    p.set_defaults(func=cmd_benchmark, output_folders=("out",), resolve_defaults=_benchmark_defaults)


def _benchmark_defaults(args: argparse.Namespace) -> None:
    if args.out is None:
        args.out = f"runs/supervised/{args.preset}"
