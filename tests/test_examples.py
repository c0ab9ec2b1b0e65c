"""The scripts under examples/ run as they stand, at a tiny budget, so that they never rot.

Each runs in this process (``runpy``, with its command line patched): a subprocess per script would pay the
interpreter and torch start-up again. The quickstart and the Acrobot agent train just past ``learning_starts``
(1000 steps), so they make a round of gradient steps; the attacked agent trains 300 steps, only what the
attack needs. All of this file takes about 6 s on two busy cores.
"""

from __future__ import annotations

import ast
import importlib
import re
import runpy
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NUMBER = r"(-?\d+\.\d+)"  # a printed return or accuracy, e.g. -500.0 or 0.904
#: Each example's tiny budget: the one its --help suggests, and the one these tests run.
TINY = {
    "quickstart.py": ["1024"],
    "custom_env.py": ["--steps", "1010", "--episodes", "1"],
    "observation_attack.py": ["--steps", "300", "--episodes", "2"],
    "supervised_digits.py": ["--epochs", "1", "--train-size", "128", "--test-size", "30"],
}
#: Each example's default budget, as its --help shows it.
DEFAULT_BUDGET = {
    "quickstart.py": ["steps per agent (default: 50000)"],
    "custom_env.py": ["training steps (default: 50000)", "evaluation episodes per setting (default: 10)"],
    "observation_attack.py": ["training steps (default: 50000)", "greedy episodes per attack (default: 20)"],
    "supervised_digits.py": ["training epochs (default: 7)"],
}


@pytest.fixture
def run_example(monkeypatch, capsys, one_torch_thread):
    """``run(script, *args)`` -> (the lines it printed, its module globals)."""

    def run(script: str, *args: str) -> tuple[list[str], dict]:
        path = EXAMPLES / script
        monkeypatch.setattr(sys, "argv", [str(path), *args])
        namespace = runpy.run_path(str(path), run_name="__main__")
        return capsys.readouterr().out.splitlines(), namespace

    return run


def _values(lines: list[str], pattern: str) -> dict[str, float]:
    """``{label: number}`` from lines matching ``pattern`` (groups: label, number); every line must match."""
    found = [re.fullmatch(pattern, line) for line in lines]
    assert all(found), lines
    return {m[1]: float(m[2]) for m in found}


def test_quickstart_trains_both_agents_and_prints_heavy_pole_returns(run_example, monkeypatch, tmp_path):
    import json

    from robustrl.agents import RobustDQN

    monkeypatch.chdir(tmp_path)  # the runs go to ./runs/quickstart
    lines, namespace = run_example("quickstart.py", *TINY["quickstart.py"])
    returns = _values(lines, rf"(\w+): mean return {NUMBER} \+- [\d.]+ on the heavy pole")
    assert list(returns) == ["regular", "robust"]
    assert all(0 < r <= 500 for r in returns.values()), returns
    from robustrl.experiments import load_run_model

    model = load_run_model(namespace["run"])  # the last run: the robust agent's best checkpoint
    assert isinstance(model, RobustDQN)
    assert model.state_scale == [2.4, 3.0, 0.21, 3.0] and model.rho > 0
    meta = json.loads((namespace["run"] / "meta.json").read_text())
    assert meta["agent"] == "robust" and meta["config"]["n_timesteps"] == 1024
    assert meta["best_timesteps"] > model.learning_starts  # it made gradient steps, not only rollouts
    again, _ = run_example("quickstart.py", *TINY["quickstart.py"])  # a second call reuses the runs
    assert again == lines and json.loads((namespace["run"] / "meta.json").read_text()) == meta


def test_readme_quickstart_is_the_example_file():
    source = (EXAMPLES / "quickstart.py").read_text()
    code = source.split('"""', 2)[2].lstrip("\n")
    readme = (EXAMPLES.parent / "README.md").read_text()
    block = readme.split("## Quickstart", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert block == code


def test_quickstart_stays_short():
    """The README shows the file whole: at most 12 lines of code besides the docstring and comments (three
    of them the argparse lines that give it a --help)."""
    source = (EXAMPLES / "quickstart.py").read_text()
    lines = source.splitlines()
    code = {i for node in ast.parse(source).body[1:] for i in range(node.lineno - 1, node.end_lineno)}
    assert len([i for i in code if lines[i].strip() and not lines[i].lstrip().startswith("#")]) <= 12


def test_custom_env_scales_the_ball_to_acrobot_and_tests_a_heavier_link(run_example):
    lines, namespace = run_example("custom_env.py", *TINY["custom_env.py"])
    returns = _values(lines, rf"link 2 mass ([\d.]+): mean return {NUMBER} \+- [\d.]+")
    assert list(returns) == ["1.0", "2.0"]
    assert all(-500 <= r <= 0 for r in returns.values()), returns  # Acrobot: -1 per step, 500 steps at most
    model = namespace["model"]
    np.testing.assert_allclose(model.state_scale, [1, 1, 1, 1, 4 * np.pi, 9 * np.pi], rtol=1e-6)
    assert model.num_timesteps > model.learning_starts


def test_observation_attack_prints_clean_and_attacked_returns(run_example):
    lines, _ = run_example("observation_attack.py", *TINY["observation_attack.py"])
    returns = _values(lines, rf"(.+): mean greedy return {NUMBER}")
    assert list(returns) == ["no attack", "FGSM, eps 0.05", "PGD, eps 0.05"]
    assert all(0 < r <= 500 for r in returns.values()), returns


def test_sweep_spec_validates_and_its_command_parses():
    from robustrl.cli import build_parser
    from robustrl.experiments import load_sweep_spec

    path = EXAMPLES / "sweep.yml"
    spec = load_sweep_spec(path)
    assert spec.agents == ["robust"] and spec.seeds == [0, 1]
    assert spec.settings() == [{"rho": r, "eta": e} for r in (0.02, 0.05) for e in (0.01, float("inf"))]
    assert len(spec.tasks("runs")) == 8 and spec.overrides["n_timesteps"] == 20_000
    commands = [line.lstrip("# ").split("#")[0].strip() for line in path.read_text().splitlines()
                if line.startswith("#") and "robustrl sweep" in line]  # the command its header shows
    assert commands == ["robustrl sweep examples/sweep.yml --jobs 2"]
    args = build_parser().parse_args(shlex.split(commands[0])[1:])
    assert args.spec == "examples/sweep.yml" and args.jobs == 2


def test_supervised_digits_prints_clean_and_attacked_accuracy(run_example):
    lines, _ = run_example("supervised_digits.py", *TINY["supervised_digits.py"])
    pattern = rf"(\S+): clean accuracy {NUMBER}, under the ensemble at eps 0\.1 {NUMBER}"
    found = [re.fullmatch(pattern, line) for line in lines]
    assert all(found) and [m[1] for m in found] == ["erm", "entropic-saa"], lines
    assert all(0 <= float(m[k]) <= 1 for m in found for k in (2, 3)), lines


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_examples_use_only_public_names(script):
    """Every name an example imports from robustrl is in its module's ``__all__``."""
    tree = ast.parse((EXAMPLES / script).read_text())
    private = [f"{node.module}.{alias.name}" for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("robustrl")
               for alias in node.names if alias.name not in importlib.import_module(node.module).__all__]
    assert not private


def test_every_example_has_a_tiny_budget_here():
    assert sorted(TINY) == sorted(DEFAULT_BUDGET) == sorted(p.name for p in EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("script", sorted(TINY))
def test_help_shows_the_default_budget_and_suggests_the_tiny_one(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / script), "--help"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert stop.value.code == 0
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    assert all(default in flat for default in DEFAULT_BUDGET[script]), text
    assert f"python examples/{script} {' '.join(TINY[script])}" in text


def test_quickstart_shows_the_progress_of_its_training(one_torch_thread, monkeypatch, tmp_path, capsys):
    """A bar of the steps trained (on stderr), as ``robustrl train`` shows."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / "quickstart.py"), "200"])
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    err = capsys.readouterr().err
    assert "CartPole-v1__regular-200__0" in err and "CartPole-v1__robust-200__0" in err and "/256" in err, err
