"""User mistakes on the command line: one line on stderr naming the value or path, exit 2, nothing written."""

import os
from pathlib import Path

import pytest

from robustrl.cli import main

#: A budget so small that a run the checks wrongly let through ends in a second (and the test fails fast).
TINY = ["n_timesteps=64", "eval_freq=64", "eval_episodes=1"]
SWEEP = str(Path(__file__).parents[1] / "robustrl" / "configs" / "sweeps" / "samples.yml")


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("robustrl: error: ") and len(err.splitlines()) == 1, captured.err
    assert "Traceback" not in captured.err
    return err


def files_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("setting, named", [
    ("learning_rate=abc", "learning_rate='abc'"),
    ("rho=abc", "rho='abc'"),
    ("gamma=-1", "gamma=-1"),
    ("gamma=true", "gamma=True"),
    ("batch_size=0", "batch_size=0"),
    ("buffer_size=8", "buffer_size=8"),
    ("exploration_fraction=2", "exploration_fraction=2"),
    ("train_freq=0", "train_freq=0"),
    ("gradient_steps=0", "gradient_steps=0"),
    ("target_update_interval=0", "target_update_interval=0"),
    ("eta=-1", "eta=-1"),
    ("n_samples=0", "n_samples=0"),
    ("norm=l3", "norm='l3'"),
    ("policy_kwargs=[1]", "policy_kwargs=[1]"),
    ("eta=[", "eta"),
])
def test_a_bad_set_value_is_one_line_naming_key_and_value_and_writes_nothing(tmp_path, capsys, setting, named):
    out = tmp_path / "runs"
    assert main(["train", "--agent", "robust", "--out", str(out), "--no-progress", "--set", setting, *TINY]) == 2
    assert named in one_line_error(capsys)
    assert not out.exists()  # not even an empty run folder


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(10**30)])
def test_a_bad_seed_is_refused_before_the_run_folder_exists(tmp_path, capsys, seed):
    out = tmp_path / "runs"
    assert main(["train", "--agent", "regular", "--seed", seed, "--out", str(out), "--no-progress",
                 "--set", *TINY]) == 2
    assert f"seed={seed}" in one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("tag", ["../escape", "a/b", ".hidden", "-x", "with space"])
def test_a_tag_that_is_no_plain_name_is_refused_before_anything_is_written(tmp_path, capsys, tag):
    out = tmp_path / "deep" / "runs"
    assert main(["train", "--agent", "regular", f"--tag={tag}", "--out", str(out), "--no-progress",
                 "--set", *TINY]) == 2
    assert f"tag={tag!r}" in one_line_error(capsys)
    assert not (tmp_path / "deep").exists()


def test_set_values_read_as_numbers_where_yaml_reads_text(tmp_path):
    """``1e-3`` and ``inf`` are text to YAML 1.1; ``--set`` reads them as the numbers a user means."""
    from robustrl.cli import parse_overrides

    assert parse_overrides(["learning_rate=1e-3", "eta=inf", "norm=l2", "n_samples=8"]) == {
        "learning_rate": 1e-3, "eta": float("inf"), "norm": "l2", "n_samples": 8}


def _commands(out: str, runs: str) -> dict[str, list[str]]:
    return {
        "train": ["train", "--agent", "regular", "--out", out, "--no-progress", "--set", *TINY],
        "table": ["table", "--runs", runs, "--out", out],
        "plot": ["plot", "--runs", runs, "--out", out],
        "stats": ["stats", "--runs", runs, "--out", out],
        "surfaces": ["surfaces", "--runs", runs, "--out", out],
        "reproduce": ["reproduce", "--quick", "--out", out],
        "sweep": ["sweep", SWEEP, "--runs", out, "--out", out],
        "report": ["report", "--results", runs, "--out", str(Path(out) / "REPORT.md")],
        "supervised train": ["supervised", "train", "--out", out, "--epochs", "1", "--no-progress"],
        "supervised table": ["supervised", "table", "--runs", runs, "--out", out],
        "supervised benchmark": ["supervised", "benchmark", "--out", out, "--no-progress"],
    }


@pytest.mark.parametrize("command", list(_commands("", "")))
@pytest.mark.parametrize("where", ["under a file", "is a file"])
def test_an_output_folder_that_cannot_be_made_is_one_line_naming_it(tmp_path, capsys, command, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    out = blocker / "out" if where == "under a file" else blocker
    runs = tmp_path / "runs"
    runs.mkdir()
    assert main(_commands(str(out), str(runs))[command]) == 2
    err = one_line_error(capsys)
    assert str(blocker) in err
    assert blocker.read_text() == "a file, not a folder\n"
    assert files_under(tmp_path) == [blocker, runs]


def test_a_read_only_output_folder_is_one_line(tmp_path, capsys, monkeypatch):
    """Refused before anything runs (tested by a folder that os.access calls read-only, so that the test
    also runs as root, who may write into any folder)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != locked and real_access(path, mode, **kw))
    assert main(["train", "--agent", "regular", "--out", str(locked / "runs"), "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert "not writable" in err and str(locked) in err
    assert files_under(tmp_path) == [locked]


@pytest.mark.parametrize("command, default", [
    (["reproduce", "--quick", "--seeds", "1", "--agents", "regular"], "runs/quick"),
    (["reproduce", "--seeds", "1", "--agents", "regular"], "runs/reproduce"),
    (["sweep", SWEEP], "runs/sweeps/samples"),
    (["supervised", "benchmark", "--no-progress"], "runs/supervised/digits"),
])
def test_the_default_output_folder_is_the_one_checked(tmp_path, capsys, monkeypatch, command, default):
    monkeypatch.chdir(tmp_path)
    blocker = Path(default.split("/")[0])
    blocker.write_text("a file, not a folder\n")
    assert main([*command, "--set", *TINY] if command[0] == "reproduce" else command) == 2
    assert f"output folder {default} cannot be created: {blocker} is a file" in one_line_error(capsys)
    assert files_under(tmp_path) == [tmp_path / blocker]


def test_the_quick_preset_of_the_api_writes_where_the_command_line_does():
    from robustrl.experiments import QUICK, ReproduceConfig

    assert ReproduceConfig(**QUICK).out == Path("runs/quick") and ReproduceConfig().out == Path("runs/reproduce")


@pytest.mark.parametrize("error", [
    PermissionError(13, "Permission denied", "/data/results/reward_table.csv"),
    FileExistsError(17, "File exists", "/data/results/reward_table.csv"),
    NotADirectoryError(20, "Not a directory", "/data/results/reward_table.csv"),
    IsADirectoryError(21, "Is a directory", "/data/results/reward_table.csv"),
    OSError(30, "Read-only file system", "/data/results/reward_table.csv"),
])
def test_an_os_error_on_a_path_while_writing_is_one_line_naming_the_path(tmp_path, capsys, monkeypatch, error):
    """Up-front checks cannot see everything (permissions as root, a full disk): the error itself is reported."""
    import robustrl.experiments

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(robustrl.experiments, "evaluate_runs", refuse)
    run = tmp_path / "run"
    run.mkdir()
    assert main(["evaluate", "--run", str(run)]) == 2
    err = one_line_error(capsys)
    assert "/data/results/reward_table.csv" in err and error.strerror in err


def test_an_os_error_that_is_no_user_mistake_keeps_its_traceback(tmp_path, monkeypatch):
    import robustrl.experiments

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error", "/dev/sda")

    monkeypatch.setattr(robustrl.experiments, "evaluate_runs", broken)
    with pytest.raises(OSError, match="Input/output"):
        main(["evaluate", "--run", str(tmp_path)])


DUPLICATE = {  # a user's YAML file naming a key twice, for each command that reads one
    "sweep": "name: twice\nagents: [robust]\nseeds: 1\ngrid:\n  rho: [0.05]\n  rho: [0.1]\n"
             "overrides: {n_timesteps: 64, eval_freq: 64, eval_episodes: 1}\n"
             "evaluation: {ids: [robustrl/CartPole-v1], episodes: 1}\n",
    "train --config": "robustrl/CartPole-v1:\n  n_timesteps: 64\n  learning_starts: 32\n  n_timesteps: 128\n"
                      "  model_selection: {eval_freq: 64, eval_episodes: 1}\n  agents: {regular: {}}\n",
    "robustness --suite": "name: twice\nepisodes: 2\nchannels:\n  pgd-linf: [0.1]\n  pgd-linf: [0.2]\n",
    "robustness --suite (set)": "name: twice\nparameters:\n  masspole: {range: [0.1, 1], values: [0.1]}\n"
                                "  masspole: {range: [0.1, 2], values: [2]}\n",
}


def _reading(command: str, path: Path, tmp_path: Path) -> list[str]:
    if command == "robustness --suite (set)":  # the uncertainty set is named by a suite
        suite = tmp_path / "suite.yml"
        suite.write_text(f"name: s\nepisodes: 2\nsets: {{names: [{path}], episodes: 1}}\n")
        path = suite
    return {"sweep": ["sweep", str(path), "--runs", str(tmp_path / "out"), "--out", str(tmp_path / "out")],
            "train --config": ["train", "--agent", "regular", "--config", str(path),
                               "--out", str(tmp_path / "out"), "--no-progress"],
            }.get(command, ["robustness", "--suite", str(path), "--runs", str(tmp_path / "out"),
                            "--out", str(tmp_path / "out")])


@pytest.mark.parametrize("command", list(DUPLICATE))
def test_a_yaml_file_naming_a_key_twice_is_one_line_naming_the_key_and_the_file(tmp_path, capsys, command):
    """YAML alone keeps the later value silently: a sweep would run other settings than the file says."""
    path = tmp_path / "twice.yml"
    path.write_text(DUPLICATE[command])
    assert main(_reading(command, path, tmp_path)) == 2
    err = one_line_error(capsys)
    keys = {"sweep": "rho", "train --config": "n_timesteps", "robustness --suite": "pgd-linf"}
    key = keys.get(command, "masspole")
    assert f"{path}: line " in err and f"key {key!r} given twice" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [c for c in DUPLICATE if c != "robustness --suite (set)"])
def test_a_yaml_file_that_is_not_utf8_is_one_line_naming_it(tmp_path, capsys, command):
    path = tmp_path / "latin1.yml"
    text = DUPLICATE[command].replace("name: twice", "name: caf\xe9")
    path.write_bytes(text.encode("latin-1") + b"# \xe9\n")
    assert main(_reading(command, path, tmp_path)) == 2
    assert f"{path}: not UTF-8 text" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def usage_error(capsys, argv: list[str]) -> str:
    """The one-line error of a command line that does not parse (argparse exits with 2)."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    return one_line_error(capsys)


@pytest.mark.parametrize("argv, flag, minimum", [
    (["evaluate", "--jobs", "0"], "--jobs", 1),
    (["evaluate", "--episodes", "0"], "--episodes", 1),
    (["evaluate", "--robustness", "--robustness-episodes", "-1"], "--robustness-episodes", 1),
    (["surfaces", "--episodes", "-3"], "--episodes", 1),
    (["robustness", "--jobs", "0"], "--jobs", 1),
    (["sweep", SWEEP, "--jobs", "0"], "--jobs", 1),
    (["reproduce", "--seeds", "0"], "--seeds", 1),
    (["reproduce", "--episodes", "-2"], "--episodes", 1),
    (["reproduce", "--jobs", "0"], "--jobs", 1),
    (["stats", "--resamples", "0"], "--resamples", 1),
    (["supervised", "train", "--epochs", "0"], "--epochs", 1),
    (["supervised", "train", "--threads", "0"], "--threads", 1),
    (["supervised", "train", "--batch-size", "0"], "--batch-size", 1),
    (["supervised", "train", "--n-train", "0"], "--n-train", 1),
    (["supervised", "train", "--center-steps", "-1"], "--center-steps", 0),
    (["supervised", "train", "--L", "-1"], "--L", 0),
    (["supervised", "evaluate", "--run", "r.json", "--eps", "0.1", "--steps", "0"], "--steps", 1),
    (["supervised", "evaluate", "--run", "r.json", "--eps", "0.1", "--restarts", "0"], "--restarts", 1),
    (["supervised", "benchmark", "--jobs", "0"], "--jobs", 1),
    (["evaluate", "--jobs", "two"], "--jobs", 1),
])
def test_a_count_below_its_minimum_is_refused_at_parsing_naming_the_flag(tmp_path, capsys, monkeypatch, argv,
                                                                         flag, minimum):
    """Not `negative dimensions are not allowed` from deep inside, nor an exit 0 having done nothing."""
    monkeypatch.chdir(tmp_path)
    err = usage_error(capsys, argv)
    assert f"argument {flag}: expected an integer >= {minimum}, got {argv[-1]!r}" in err
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("argv", [["evaluate", "--env"], ["evaluate", "--run"], ["reproduce", "--agents"],
                                  ["surfaces", "--parameters"], ["train", "--agent", "nobody", "--set"]])
def test_a_list_flag_given_without_a_value_is_refused(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    assert f"argument {argv[-1]}: expected at least one argument" in usage_error(capsys, argv)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("argv, command", [(["table", "--results", "r"], "table"),
                                           (["supervised", "train", "--preset", "p"], "supervised train"),
                                           (["robustness", "--task", "acrobot", "--bogus"], "robustness")])
def test_an_option_a_subcommand_does_not_take_points_to_that_subcommands_help(tmp_path, capsys, monkeypatch, argv,
                                                                            command):
    """argparse leaves unknown options to the top-level parser, whose help does not list the subcommand's."""
    monkeypatch.chdir(tmp_path)
    err = usage_error(capsys, argv)
    assert f"error: {command}: unrecognized arguments: " in err
    assert f"(`robustrl {command} --help` lists the options)" in err
    assert files_under(tmp_path) == []


def test_no_count_flag_takes_any_integer():
    """Every integer option of every command is checked at parsing (seeds: by the seed check, naming them)."""
    import argparse

    from robustrl.cli import build_parser

    def leaves(parser, words=()):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield " ".join(words), parser
        for action in subs:
            for name, sub in action.choices.items():
                yield from leaves(sub, (*words, name))

    unchecked = [f"{command} {action.option_strings[0]}" for command, parser in leaves(build_parser())
                 for action in parser._actions if action.type is int and action.dest not in ("seed", "seeds")]
    assert unchecked == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, which takes no new folder")
def test_a_tensorboard_folder_that_cannot_be_made_is_refused_before_the_run_folder_exists(tmp_path, capsys):
    """/proc passes a permission check (root may write anywhere) but takes no new folder."""
    out = tmp_path / "runs"
    assert main(["train", "--agent", "regular", "--tensorboard", "/proc/x", "--out", str(out),
                 "--no-progress", "--set", *TINY]) == 2
    assert "output folder /proc/x cannot be created" in one_line_error(capsys)
    assert files_under(tmp_path) == []


def test_a_command_that_fails_removes_the_empty_folders_it_made(tmp_path, capsys, monkeypatch):
    """Errors the up-front checks cannot foresee leave no empty output folder behind (a folder that was
    there before, or holds anything, stays)."""
    import robustrl.experiments

    def refuse(*args, **kwargs):
        Path(args[1], "run").mkdir(parents=True)  # as train_run makes its run folder, then fails
        Path(args[1], "run").rmdir()
        raise ValueError("something the checks could not see")

    monkeypatch.setattr(robustrl.experiments, "train_run", refuse)
    out = tmp_path / "new" / "runs"
    assert main(["train", "--agent", "regular", "--out", str(out), "--no-progress", "--set", *TINY]) == 2
    assert "something the checks could not see" in one_line_error(capsys)
    assert files_under(tmp_path) == []
    (tmp_path / "kept").mkdir()
    assert main(["train", "--agent", "regular", "--out", str(tmp_path / "kept"), "--no-progress"]) == 2
    assert files_under(tmp_path) == [tmp_path / "kept"]


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("command, patch", [
    ("robustness", "robustrl.experiments.suite.suite_runs"),
    ("evaluate", "robustrl.experiments.evaluate_runs"),
    ("surfaces", "robustrl.experiments.surfaces.surface_run"),
])
def test_ctrl_c_of_an_evaluation_says_the_caches_are_kept_and_nothing_is_trained(
        tmp_path, capsys, monkeypatch, command, patch):
    """These commands train nothing: a rerun reuses what each run cached and computes the rest again."""
    from .experiments.test_records import fake_run

    runs = tmp_path / "runs"
    fake_run(runs, "regular", 0)
    monkeypatch.setattr(patch, _interrupt)
    out = [] if command == "evaluate" else ["--out", str(tmp_path / "out")]
    argv = [command, "--runs", str(runs), *out]
    assert main(argv) == 130
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()  # a progress bar may come first
    err = lines[-1]
    assert err.startswith(f"robustrl: interrupted. Rerun `robustrl {command} --runs")
    assert "Traceback" not in "".join(lines)
    assert "trained again" not in err and "nothing is trained" in err
    assert "cached" in err and "again" in err


def test_ctrl_c_of_a_training_says_interrupted_runs_are_trained_again(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("robustrl.experiments.train_run", _interrupt)
    assert main(["train", "--agent", "regular", "--out", str(tmp_path / "runs"), "--no-progress"]) == 130
    assert "interrupted are trained again from step 0" in capsys.readouterr().err


def test_repeated_set_flags_add_up_instead_of_replacing_each_other():
    from robustrl.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "--agent", "robust", "--set", "eta=0.5", "rho=0.1", "--set", "n_timesteps=300"])
    assert args.set == ["eta=0.5", "rho=0.1", "n_timesteps=300"]
    args = parser.parse_args(["reproduce", "--set", "eta=0.5", "--set", "n_timesteps=300"])
    assert args.set == ["eta=0.5", "n_timesteps=300"]
