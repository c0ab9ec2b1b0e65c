"""``robustrl`` command line: a thin layer over :mod:`robustrl.experiments`.

User mistakes (unknown names, bad values, missing files) end with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from robustrl.checks import int_option, load_yaml

__all__ = ["OUTPUTS", "RUNS", "Terminated", "build_parser", "main", "parse_overrides"]

#: Where a command writes its tables and plots unless told otherwise: runs/ is untracked, the scratch twin of
#: results/ (which only ``--out results`` writes into).
OUTPUTS = "runs"
#: The runs folder of ``train`` and of every command that reads runs, unless told otherwise (results/runs: the
#: committed ones).
RUNS = "runs/runs"


def _agents_help() -> str:
    """The ``--agent(s)`` help, naming the agents of the packaged config (read, not typed here)."""
    from importlib import resources

    config = load_yaml(resources.files("robustrl").joinpath("configs/dqn.yml").read_text(), "configs/dqn.yml")
    names = ", ".join(config["robustrl/CartPole-v1"]["agents"])
    return f"agent names from the config (default config: {names})"


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` items as YAML values; text that reads as a float (``1e-3``, ``inf``) is that float."""
    overrides = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        parsed = load_yaml(value, f"--set {item}")  # invalid YAML or a key given twice: an error naming it
        if isinstance(parsed, str):
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        overrides[key] = parsed
    return overrides


def _check_output_folder(path: str | Path) -> list[Path]:
    """Refuse an output folder that cannot be created or written into, before any work; leaves nothing.

    Returns the folders that do not exist yet (the deepest first): the command may make them, and
    :func:`_remove_empty_folders` takes them away again if it fails. Beside the permissions, a folder is
    made (and removed) in the deepest existing one, which some file systems refuse whatever they say
    (``/proc`` takes no new folder, even from root).
    """
    path = Path(path)
    existing, missing = path, []
    while not existing.is_dir():
        if existing.exists() or existing.is_symlink():
            where = "is a file" if existing == path else f"cannot be created: {existing} is a file"
            raise ValueError(f"output folder {path} {where}")
        missing.append(existing)
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {path} is not writable (permission denied on {existing})")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".robustrl-check-", dir=existing))
    except OSError as err:
        what = "cannot be created" if missing else "is not writable"
        raise ValueError(f"output folder {path} {what}: {err.strerror} (in {existing})") from None
    return missing


def _remove_empty_folders(folders: list[Path]) -> None:
    """Remove those of ``folders`` that are empty (the deepest first): what a failed command made and left."""
    for folder in sorted(set(folders), key=lambda f: len(f.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:  # not empty, gone, or not ours to remove: it stays
            pass


#: OS errors that come from what the user asked for (a path), reported in one line rather than a traceback.
_USER_OS_ERRORS = (PermissionError, FileExistsError, FileNotFoundError, NotADirectoryError, IsADirectoryError)
_USER_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG}


def _error_text(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        text = f"{err.strerror}: {err.filename}"
        return text + (f" -> {err.filename2}" if err.filename2 is not None else "")
    return " ".join(str(err).split("\n"))


def _env_ids() -> list[str]:
    from robustrl.envs import robustrl_ids

    return list(robustrl_ids())


def _task(args: argparse.Namespace, run_dirs: list[Path] | None = None) -> Any:
    """The task of ``--task`` (``ValueError`` naming the packaged ones for an unknown name); with ``run_dirs``,
    also a ``ValueError`` if those runs belong to another task."""
    from robustrl.tasks import get_task

    task = get_task(args.task)
    if run_dirs:
        from robustrl.experiments.run_files import runs_task

        found = runs_task(run_dirs)
        if found.name != task.name:
            raise ValueError(f"the runs are of task {found.name!r}, not {task.name!r}: pass --task {found.name}")
    return task


def _cmd_tasks(args: argparse.Namespace) -> int:
    from robustrl.tasks import tasks_table

    print(tasks_table(), end="")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from robustrl.agents import load_config
    from robustrl.experiments import RunSpec, train_run
    from robustrl.experiments.training import is_complete

    overrides = parse_overrides(args.set)
    if args.tensorboard is not None:  # the folder as typed: --set would read a name like 1e3 as a number
        overrides["tensorboard_log"] = args.tensorboard
    task = _task(args)
    env_id = args.env or task.nominal_id
    spec = RunSpec(args.agent, args.seed, env_id, overrides, args.tag)
    already = is_complete(Path(args.out) / spec.name)  # then train_run only checks its configuration
    run_dir = train_run(spec, args.out, load_config(args.config, task.hyperparameters),
                        progress_bar=not args.no_progress)
    print(f"already complete: {run_dir}" if already else f"trained {spec.name} -> {run_dir}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from robustrl.experiments import evaluate_runs
    from robustrl.experiments.records import complete_runs

    _task(args)
    run_dirs = [Path(p) for p in args.run] if args.run else complete_runs(args.runs)
    task = _task(args, run_dirs)
    if args.verify:
        return _verify_evaluations(run_dirs)
    env_ids = tuple(task.check_id(env_id) for env_id in args.env) if args.env else task.ids
    evaluate_runs(run_dirs, args.episodes, args.robustness_episodes if args.robustness else 0, env_ids,
                  jobs=args.jobs)
    print(f"evaluated {len(run_dirs)} run(s)")
    return 0


def _verify_evaluations(run_dirs: list[Path]) -> int:
    from tqdm.auto import tqdm

    from robustrl.experiments.training import verify_evaluation

    differ = 0
    for run_dir in tqdm(run_dirs, desc="verifying evaluations", unit="run", leave=False):
        differences = verify_evaluation(run_dir)
        differ += bool(differences)
        tqdm.write(f"{run_dir.name}: " + ("identical" if not differences else "; ".join(differences)))
    print(f"verified {len(run_dirs)} run(s): {len(run_dirs) - differ} identical, {differ} differ")
    return 1 if differ else 0


def _cmd_table(args: argparse.Namespace) -> int:
    from robustrl.experiments import write_reward_tables
    from robustrl.experiments.records import complete_runs

    _task(args)
    _task(args, complete_runs(args.runs) if Path(args.runs).is_dir() else None)
    paths = write_reward_tables(args.runs, args.out, "robustrl " + shlex.join(sys.argv[1:]),
                                baseline=args.baseline, allow_partial=args.allow_partial)
    print("\n".join(str(p) for p in paths))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from robustrl.experiments.curves import NOT_COMPUTED, read_views
    from robustrl.experiments.plots import plot_robustness_curves, plot_training_curves
    from robustrl.experiments.records import complete_runs

    out = Path(args.out)
    _task(args)
    _task(args, complete_runs(args.runs))
    views, left_out = read_views(complete_runs(args.runs), "robustness")
    # Robustness curves are drawn once any run has them; then every run must (the plot names the others).
    robustness = plot_robustness_curves(args.runs, out / "robustness_curves.png") if views or any(
        why != NOT_COMPUTED for why in left_out.values()) else None
    print(plot_training_curves(args.runs, out / "training_curves.png"))
    if robustness is not None:
        print(robustness)
    return 0


def _print_comparison(differences: dict[str, list[str]], reference: Path) -> int:
    for name, found in differences.items():
        print(f"{name}: " + ("; ".join(found) if found else "identical"))
    differ = sum(bool(found) for found in differences.values())
    print(f"compared {len(differences)} run(s) with {reference}: {len(differences) - differ} identical, {differ} differ")
    return 1 if differ else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from robustrl.experiments.compare import compare_runs

    return _print_comparison(compare_runs(args.runs, args.reference), Path(args.reference))


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from robustrl.experiments import QUICK, ReproduceConfig, reproduce

    preset: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in ("seeds", "episodes", "jobs"):
        if getattr(args, name) is not None:
            preset[name] = getattr(args, name)
    if args.agents:
        preset["agents"] = tuple(args.agents)
    preset["out"] = Path(args.out)
    preset["backend"], preset["address"] = args.backend, args.address
    overrides = {**preset.pop("overrides", {}), **parse_overrides(args.set)}
    cfg = ReproduceConfig(**preset, overrides=overrides, config_path=args.config, task=_task(args).name)
    for path in reproduce(cfg):
        print(path)
    if args.compare is None:
        return 0
    from robustrl.experiments.compare import compare_runs, preset_difference

    reference = Path(args.compare)
    if not (reference / "runs").is_dir():
        print(f"nothing to compare with: {reference / 'runs'} does not exist")
        return 0
    difference = preset_difference(cfg.out, reference)
    if difference:
        print(f"not compared with {reference}: it was made with other settings ({difference})")
        return 0
    return _print_comparison(compare_runs(cfg.out / "runs", reference / "runs"), reference / "runs")


def _reproduce_defaults(args: argparse.Namespace) -> None:
    from robustrl.experiments import QUICK, ReproduceConfig

    if args.out is None:
        args.out = QUICK["out"] if args.quick else ReproduceConfig.out


def _sweep_defaults(args: argparse.Namespace) -> None:
    from robustrl.experiments.sweep_spec import load_sweep_spec

    args.spec = load_sweep_spec(args.spec)  # the default folders are named after the sweep
    args.runs = args.runs or Path(OUTPUTS, "sweeps", args.spec.name)
    args.out = args.out or Path(OUTPUTS, "sweeps", args.spec.name)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from robustrl.experiments.sweep import run_sweep

    spec, runs, out = args.spec, Path(args.runs), Path(args.out)
    status = run_sweep(spec, runs, out, args.backend, args.jobs, args.address,
                       command="robustrl " + shlex.join(sys.argv[1:]))
    print(f"sweep {spec.name}: {status['runs']} runs, {status['ran']} run now, {len(status['failed'])} failed; "
          f"outputs in {out}")
    for run, error in status["failed"].items():
        print(f"  failed: {run}: {error} (traceback in {runs / run / 'failed.json'})")
    return 1 if status["failed"] else 0


def _cmd_surfaces(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from robustrl.experiments.records import complete_runs
    from robustrl.experiments.surfaces import (
        collect_surfaces,
        plot_surface_curves,
        plot_surface_pairs,
        surface_run,
    )

    _task(args)
    run_dirs = complete_runs(args.runs)
    task = _task(args, run_dirs)
    unknown = [p for p in args.parameters or [] if p not in task.surface_grid]
    if unknown:
        raise ValueError(f"--parameters: {', '.join(unknown)} not among the parameters of task {task.name!r} "
                         f"({', '.join(task.surface_grid)})")
    grid = {p: task.surface_grid[p] for p in args.parameters} if args.parameters else None
    pairs = [] if args.no_pairs else None
    for run_dir in tqdm(run_dirs, desc="robustness surfaces", unit="run"):
        surface_run(run_dir, grid, pairs, args.episodes, checkpoint=args.checkpoint)
    surfaces = collect_surfaces(run_dirs)
    out = Path(args.out)
    print(plot_surface_curves(surfaces, out / "surface_curves.png", task=task))
    if not args.no_pairs and next(iter(surfaces.values()))[0]["pairs"]:
        print(plot_surface_pairs(surfaces, out / "surface_pairs.png", task=task))
    return 0


def _cmd_robustness(args: argparse.Namespace) -> int:
    from robustrl.experiments.records import complete_runs
    from robustrl.experiments.suite import default_suite_name, load_suite, suite_runs
    from robustrl.experiments.suite_plots import plot_suite_curves, plot_suite_sets
    from robustrl.experiments.suite_table import collect_suite, write_suite_tables

    task = _task(args)
    suite = None if args.suite is None else load_suite(args.suite, task)  # a bad file is named before the runs
    run_dirs = complete_runs(args.runs)
    _task(args, run_dirs)
    if not run_dirs:
        raise ValueError(f"no complete runs under {args.runs} (run `robustrl train` or `robustrl reproduce` first)")
    suite = suite or load_suite(default_suite_name(run_dirs, task), task)
    grouped = collect_suite(suite_runs(run_dirs, suite, args.jobs))
    if args.baseline != "regular" and args.baseline not in grouped:
        raise ValueError(f"baseline {args.baseline!r} is not an agent under {args.runs}; choose from {sorted(grouped)}")
    out = Path(args.out)
    command = "robustrl " + shlex.join(sys.argv[1:])
    paths = write_suite_tables(grouped, suite, out, command, args.baseline)
    pairs = {"robust": args.baseline, **task.decision_pairs}
    pairs = {robust: baseline for robust, baseline in pairs.items() if robust in grouped}
    if pairs:
        from robustrl.experiments.decision import conditions, decision_rows, write_decision_table
        from robustrl.experiments.tables import collect_evaluations

        by_condition = conditions(grouped, collect_evaluations(args.runs, allow_partial=True)[0])
        for robust, baseline in pairs.items():
            rows = decision_rows(by_condition, robust=robust, baseline=baseline)
            name = "decision_table.md" if robust == "robust" else f"decision_table_{robust}.md"
            paths.append(write_decision_table(rows, out / name, command, robust=robust, baseline=baseline))
    if suite.channels:
        paths.append(plot_suite_curves(grouped, suite, out / "robustness_suite.png", task=task))
    if suite.sets:
        paths.append(plot_suite_sets(grouped, suite, out / "robustness_sets.png", task=task))
    print("\n".join(str(p) for p in paths))
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from robustrl.experiments.records import complete_runs
    from robustrl.experiments.report import write_statistics

    _task(args)
    task = _task(args, complete_runs(args.runs))
    _, written = write_statistics(args.out, args.resamples, runs_dir=args.runs,
                                  allow_partial=args.allow_partial, task=task)
    if not written:
        raise ValueError(f"no evaluated runs under {args.runs} (run `robustrl evaluate` first)")
    print("\n".join(str(p) for p in written))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from robustrl.experiments.records import complete_runs
    from robustrl.experiments.report import write_report

    out = Path(args.out) if args.out is not None else Path(args.results) / "REPORT.md"
    if out.is_dir():
        raise ValueError(f"report file {out} is a folder")
    _check_output_folder(out.parent)
    runs = Path(args.results) / "runs"
    task = _task(args, complete_runs(runs) if runs.is_dir() else None)
    print(write_report(args.results, args.out, command="robustrl " + shlex.join(sys.argv[1:]), task=task))
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser (and its subcommands') whose usage errors are one line, like every other error of
    the command line, pointing to the command's ``--help``."""

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        """As argparse's, but a subcommand refuses what it does not know itself, so the message points to
        its own ``--help`` (argparse leaves that to the top-level parser, whose help does not list them)."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self.prog != "robustrl":
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("robustrl").strip()
        self.exit(2, f"robustrl: error: {command + ': ' if command else ''}{message} "
                     f"(`{self.prog} --help` lists the options)\n")


def _plain_text(text: str) -> str:
    """``text`` (a docstring) without its reST markup, for a terminal: ``literal`` and :mod:`robustrl.x` read
    as literal and robustrl.x."""
    return re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text).replace("``", "")


def build_parser() -> argparse.ArgumentParser:
    """The ``robustrl`` argument parser (subcommands train, evaluate, table, plot, reproduce, ...)."""
    parser = _Parser(prog="robustrl", description=_plain_text(__doc__.splitlines()[0]))
    sub = parser.add_subparsers(dest="command", required=True)
    env_ids = _env_ids()
    agents_help = _agents_help()

    tasks = sub.add_parser("tasks", help="the environment families, their parameters and the packaged tasks")
    tasks.set_defaults(func=_cmd_tasks)

    train = sub.add_parser("train", help="train one agent with nominal-env model selection")
    train.add_argument("--agent", required=True, help=agents_help)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--env", default=None, choices=env_ids, metavar="ID",
                       help="a registered robustrl id (`robustrl tasks` lists them; default: the task's nominal id)")
    _task_option(train)
    train.add_argument("--out", default=RUNS,
                       help="folder of run folders (default: %(default)s; the committed runs: results/runs)")
    train.add_argument("--config", default=None, help="YAML hyperparameters (default: packaged configs/dqn.yml)")
    train.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                       help="override hyperparameters, e.g. eta=0.5 (repeat --set or list several)")
    train.add_argument("--tag", default="", help="suffix for the agent in the run name")
    train.add_argument("--no-progress", action="store_true")
    train.add_argument("--tensorboard", default=None, metavar="DIR",
                       help="also write TensorBoard event files under DIR, in a subfolder named after the "
                            "run (the same run as without it; pip install 'robustrl[tensorboard]')")
    train.set_defaults(func=_cmd_train, output_folders=("out", "tensorboard"))

    evaluate = sub.add_parser("evaluate", help="greedy evaluation of trained runs on every id")
    evaluate.add_argument("--runs", default=RUNS, help="folder of run folders (default: %(default)s)")
    evaluate.add_argument("--run", nargs="+", help="specific run folders (default: all complete runs)")
    evaluate.add_argument("--episodes", type=int_option(1), default=100)
    evaluate.add_argument("--env", nargs="+", default=None, choices=env_ids, metavar="ID",
                          help="registered robustrl ids (`robustrl tasks` lists them; default: every id of the task)")
    evaluate.add_argument("--robustness", action="store_true",
                          help="also sweep each parameter of the task's robustness curves")
    _task_option(evaluate)
    evaluate.add_argument("--robustness-episodes", type=int_option(1), default=20)
    evaluate.add_argument("--jobs", type=int_option(1), default=1, help="parallel evaluation processes")
    evaluate.add_argument("--verify", action="store_true",
                          help="write nothing: evaluate every run again as its eval.json says and print per run "
                               "'identical' or what differs (exit code 1 if any differs)")
    evaluate.set_defaults(func=_cmd_evaluate)

    table = sub.add_parser("table", help="reward table (CSV, Markdown, LaTeX) from evaluated runs")
    table.add_argument("--runs", default=RUNS, help="folder of evaluated run folders (default: %(default)s)")
    table.add_argument("--out", default=OUTPUTS,
                       help="folder for reward_table.csv/.md/.tex (default: %(default)s)")
    table.add_argument("--baseline", default=None,
                       help="agent label the differences are taken to (default regular; a sweep run's label "
                            "includes its tag, e.g. regular-n_timesteps100000)")
    _allow_partial_option(table)
    _task_option(table)
    table.set_defaults(func=_cmd_table, output_folders=("out",))

    plot = sub.add_parser("plot", help="training and robustness curves from saved runs")
    plot.add_argument("--runs", default=RUNS, help="folder of evaluated run folders (default: %(default)s)")
    plot.add_argument("--out", default=OUTPUTS,
                      help="folder for training_curves.png and robustness_curves.png (default: %(default)s)")
    _task_option(plot)
    plot.set_defaults(func=_cmd_plot, output_folders=("out",))

    rep = sub.add_parser("reproduce", help="the main job: train, evaluate, tabulate and plot, for N seeds")
    rep.add_argument("--seeds", type=int_option(1), default=None,
                     help="seeds per agent (default 10; quick: 2)")
    rep.add_argument("--quick", action="store_true", help="few-minute preset into runs/quick")
    rep.add_argument("--agents", nargs="+", help=agents_help)
    rep.add_argument("--episodes", type=int_option(1), default=None,
                     help="evaluation episodes per seed and id")
    rep.add_argument("--jobs", type=int_option(1), default=None,
                     help="parallel training processes (default: cores)")
    rep.add_argument("--out", default=None, help="output folder (default runs/reproduce, quick: runs/quick; "
                                                 "name results to regenerate the committed results)")
    rep.add_argument("--compare", default=None, metavar="RESULTS",
                     help="finally compare every run with its namesake in RESULTS/runs (e.g. results), "
                          "printing 'identical' or what differs; exit code 1 if any differs")
    rep.add_argument("--config", default=None)
    rep.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                     help="override hyperparameters of every run (repeat --set or list several)")
    rep.add_argument("--backend", default="local", choices=["local", "ray"],
                     help="train and evaluate on a local process pool or as Ray tasks (pip install 'robustrl[ray]')")
    rep.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    _task_option(rep)
    rep.set_defaults(func=_cmd_reproduce, output_folders=("out",), resolve_defaults=_reproduce_defaults)

    compare = sub.add_parser("compare", help="compare runs with reference runs: identical, or what differs")
    compare.add_argument("runs", help="folder of run folders, e.g. runs/reproduce/runs")
    compare.add_argument("reference", help="folder of the reference run folders, e.g. results/runs")
    compare.set_defaults(func=_cmd_compare)

    sweep = sub.add_parser("sweep", help="seed and hyperparameter sweep from a YAML spec (local or Ray)")
    sweep.add_argument("spec", help="sweep file (see robustrl/configs/sweeps/)")
    sweep.add_argument("--backend", default="local", choices=["local", "ray"])
    sweep.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    sweep.add_argument("--jobs", type=int_option(1), default=None, help="parallel runs (default: cores)")
    sweep.add_argument("--runs", default=None, help="folder of run folders (default runs/sweeps/NAME)")
    sweep.add_argument("--out", default=None, help="tables and plots (default runs/sweeps/NAME)")
    sweep.set_defaults(func=_cmd_sweep, output_folders=("runs", "out"), resolve_defaults=_sweep_defaults)

    surf = sub.add_parser("surfaces", help="return over dense grids of every physical parameter and of pairs")
    surf.add_argument("--runs", default=RUNS, help="folder of trained run folders (default: %(default)s)")
    surf.add_argument("--out", default=OUTPUTS,
                      help="folder for surface_curves.png and surface_pairs.png (default: %(default)s)")
    surf.add_argument("--episodes", type=int_option(1), default=10, help="episodes per grid point")
    surf.add_argument("--checkpoint", default="best", choices=["best", "final"])
    surf.add_argument("--parameters", nargs="+", metavar="PARAMETER",
                      help="parameters of the task's surface grid (default: all of them)")
    _task_option(surf)
    surf.add_argument("--no-pairs", action="store_true", help="skip the pair surfaces")
    surf.set_defaults(func=_cmd_surfaces, output_folders=("out",))

    robust = sub.add_parser("robustness", help="robustness suite of every run: observation attacks, noise, "
                                               "random actions, uncertainty sets (cached per run)")
    robust.add_argument("--runs", default=RUNS, help="folder of trained run folders (default: %(default)s)")
    robust.add_argument("--suite", default=None,
                        help="suite YAML file or packaged suite name (default: robustrl/configs/suites/default.yml "
                             "for DQN agents, actor-critic.yml for SAC and TD3 agents)")
    robust.add_argument("--jobs", type=int_option(1), default=1,
                        help="runs evaluated in parallel (one process each)")
    robust.add_argument("--out", default=OUTPUTS,
                        help="folder for robustness_table.csv/.md/.tex, robustness_suite.png, robustness_sets.png "
                             "and decision_table.md (per condition: who wins, and the robust agent against "
                             "it; default: %(default)s)")
    robust.add_argument("--baseline", default="regular", help="agent label the differences are taken to")
    _task_option(robust)
    robust.set_defaults(func=_cmd_robustness, output_folders=("out",))

    stats = sub.add_parser("stats", help="IQM, median, mean, optimality gap, P(improvement), profiles of runs")
    stats.add_argument("--runs", default=RUNS,
                       help="any folder of evaluated run folders (default: %(default)s)")
    stats.add_argument("--out", default=OUTPUTS,
                       help="folder for statistics.csv/.md and profile plots (default: %(default)s)")
    stats.add_argument("--resamples", type=int_option(1), default=2000, help="bootstrap resamples")
    _allow_partial_option(stats)
    _task_option(stats)
    stats.set_defaults(func=_cmd_stats, output_folders=("out",))

    report = sub.add_parser("report", help="gather tables, statistics and plots into one REPORT.md")
    report.add_argument("--results", default=OUTPUTS,
                        help="folder the other commands wrote into, with the runs in RESULTS/runs "
                             "(default: %(default)s; results for the committed report)")
    report.add_argument("--out", default=None, help="report file (default RESULTS/REPORT.md)")
    _task_option(report)
    report.set_defaults(func=_cmd_report)

    _add_optional_subcommands(sub)
    return parser


def _allow_partial_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--allow-partial", action="store_true",
                         help="leave out runs not trained or not evaluated on every id (listed in the header) "
                              "instead of refusing")


def _task_option(command: argparse.ArgumentParser) -> None:
    from robustrl.tasks import DEFAULT_TASK

    command.add_argument("--task", default=DEFAULT_TASK,
                         help="a packaged task (robustrl/configs/tasks/NAME.yml) or a task file "
                              "(default: %(default)s)")


def _add_optional_subcommands(sub: Any) -> None:
    from robustrl.supervised.cli import add_subcommands as add_supervised

    add_supervised(sub)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like a Ctrl-C so that the same cleanup runs."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


#: What a rerun of an interrupted command does, by command (the commands that train, those that only evaluate
#: trained runs into caches in their folders, the supervised benchmark); the others simply start again.
_TRAINS = ("complete runs and evaluations are kept and skipped, runs that were interrupted are trained again "
           "from step 0")
_RERUN = {"train": _TRAINS, "reproduce": _TRAINS, "sweep": _TRAINS,
          "evaluate": "runs whose evaluation is cached (eval.json, robustness.json) are skipped, a run whose "
                      "evaluation was interrupted is evaluated again; nothing is trained",
          "surfaces": "runs whose surfaces are cached (robustness.json) are skipped, a run that was "
                      "interrupted is computed again; nothing is trained",
          "robustness": "what each run has cached is kept and reused (suite.json: a checkpoint's channels, "
                        "uncertainty.json: each set), the part that was interrupted is computed again; "
                        "nothing is trained",
          "supervised benchmark": "run records already written are kept and reused, runs that were "
                                  "interrupted are trained again from the first epoch"}


def _interrupted_message(err: KeyboardInterrupt, argv: list[str]) -> str:
    what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
    command = " ".join(argv[:2]) if argv[:1] == ["supervised"] else " ".join(argv[:1])
    rerun = _RERUN.get(command, "it starts again (every file is written whole, so none is half-written)")
    return f"robustrl: {what}. Rerun `robustrl {shlex.join(argv)}` to go on: {rerun}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``robustrl`` console script; returns the exit code.

    Ctrl-C (SIGINT) exits with 130 and SIGTERM with 143, once the runs in flight are stopped and the
    queued ones cancelled; the message says what a rerun does.
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    made: list[Path] = []  # output folders that did not exist: removed if a failed command leaves them empty
    try:
        if hasattr(args, "resolve_defaults"):  # output folders whose default depends on other arguments
            args.resolve_defaults(args)
        for name in getattr(args, "output_folders", ()):
            if getattr(args, name) is not None:
                made += _check_output_folder(getattr(args, name))
        return int(args.func(args) or 0)
    except (ValueError, OSError) as err:
        _remove_empty_folders(made)
        if isinstance(err, OSError) and not (isinstance(err, _USER_OS_ERRORS) or err.errno in _USER_ERRNOS):
            raise
        print(f"robustrl: error: {_error_text(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        _remove_empty_folders(made)
        print(_interrupted_message(err, argv), file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
