"""The command line as a newcomer types it: defaults under runs/, never into the committed results/."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from robustrl.cli import build_parser, main

#: A budget so small that a training takes about a second.
TINY = ["n_timesteps=64", "eval_freq=64", "eval_episodes=1"]
SWEEP = str(Path(__file__).parents[1] / "robustrl" / "configs" / "sweeps" / "samples.yml")


def leaf_parsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """``(command words, parser)`` of every command that runs something (``train``, ``supervised train``)."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield prefix, parser
    for action in actions:
        for name, sub in action.choices.items():
            yield from leaf_parsers(sub, (*prefix, name))


def path_defaults(parser: argparse.ArgumentParser) -> dict[str, str]:
    return {a.dest: str(a.default) for a in parser._actions
            if a.dest in ("out", "runs", "results", "root", "tensorboard") and a.default is not None}


def test_no_default_path_of_any_command_is_under_results():
    """A command typed without paths reads and writes under runs/; results/ only when named."""
    found = {" ".join(words): path_defaults(p) for words, p in leaf_parsers(build_parser())}
    assert found["train"] == {"out": "runs/runs"}
    assert found["table"] == {"runs": "runs/runs", "out": "runs"}
    leaked = {command: paths for command, paths in found.items()
              if any(not path.startswith("runs") for path in paths.values())}
    assert leaked == {}


@pytest.mark.parametrize("argv, out", [
    (["sweep", SWEEP], {"runs": Path("runs/sweeps/samples"), "out": Path("runs/sweeps/samples")}),
    (["supervised", "benchmark"], {"out": "runs/supervised/digits"}),
    (["reproduce"], {"out": Path("runs/reproduce")}),
    (["reproduce", "--quick"], {"out": Path("runs/quick")}),
])
def test_defaults_resolved_from_other_arguments_are_under_runs(argv, out):
    args = build_parser().parse_args(argv)
    args.resolve_defaults(args)
    assert {name: getattr(args, name) for name in out} == out


def _evaluated_run(runs: Path, agent: str, seed: int) -> None:
    """A fake evaluated run whose meta.json holds the configuration a real one saves."""
    from robustrl.agents import AgentConfig, load_config
    from robustrl.envs import ENV_IDS, NOMINAL_ID
    from robustrl.experiments.training import jsonable

    from .experiments.test_records import fake_run

    config = jsonable(AgentConfig.resolve(load_config(), NOMINAL_ID, agent).to_dict())
    run = fake_run(runs, agent, seed, value=100.0 * (1 + (agent == "robust")), meta={
        "agent": agent, "tag": "", "seed": seed, "algo": config["algo"], "config": config,
        "checkpoints": {"best": "best.pt", "final": "best.pt"}})
    assert json.loads((run / "eval.json").read_text())["returns"].keys() == set(ENV_IDS)


def test_a_plain_table_writes_under_runs_with_each_agents_config_and_leaves_results_alone(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    committed = Path("results/reward_table.md")
    committed.parent.mkdir()
    committed.write_text("the committed table\n")
    for seed in (0, 1):
        for agent in ("regular", "robust"):
            _evaluated_run(Path("runs/runs"), agent, seed)
    assert main(["table"]) == 0
    assert committed.read_text() == "the committed table\n"
    assert capsys.readouterr().out.split() == [f"runs/reward_table.{s}" for s in ("csv", "md", "tex")]
    table = Path("runs/reward_table.md").read_text().splitlines()
    configs = [line for line in table if line.startswith("<!-- Config ")]
    assert [line.split(":")[0] for line in configs] == ["<!-- Config regular", "<!-- Config robust"]
    assert configs[0] == ("<!-- Config regular: DQN(n_timesteps=50000; selection: every 2500 steps, "
                          "20 nominal episodes, ties=margin) -->")
    assert "RobustDQN(n_timesteps=50000, " in configs[1] and "eta=0.01" in configs[1]


def test_train_writes_under_runs_and_says_when_a_run_was_already_complete(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--agent", "regular", "--no-progress", "--set", *TINY]
    assert main(argv) == 0
    run = Path("runs/runs/CartPole-v1__regular__0")
    assert capsys.readouterr().out == f"trained CartPole-v1__regular__0 -> {run}\n"
    stamp = (run / "meta.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert capsys.readouterr().out == f"already complete: {run}\n"
    assert (run / "meta.json").stat().st_mtime_ns == stamp


#: Sphinx markup that reads as noise in a terminal: ``literal``, :mod:`x`, :func:`~x.y` ...
SPHINX = r"``|:[a-z]+:`"


def test_every_help_text_is_plain_text():
    """Docstrings reused as help lose their reST markup."""
    import re

    parsers = [(("robustrl",), build_parser())]
    marked = []
    while parsers:
        words, parser = parsers.pop()
        if re.search(SPHINX, parser.format_help()):
            marked.append(" ".join(words))
        parsers += [((*words, name), sub) for action in parser._actions
                    if isinstance(action, argparse._SubParsersAction) for name, sub in action.choices.items()]
    assert marked == []


def test_train_help_shows_where_the_run_goes(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    assert stop.value.code == 0
    assert "(default: runs/runs;" in " ".join(capsys.readouterr().out.split())
