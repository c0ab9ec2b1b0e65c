"""A cheap start: registering the ids and printing help import neither torch nor Stable-Baselines3, the
public names are still there (loaded on first access), and importing robustrl leaves matplotlib alone."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "stable_baselines3")
LAZY_PACKAGES = ("robustrl", "robustrl.agents", "robustrl.experiments", "robustrl.supervised")

HELP_COMMANDS = [
    [], ["train"], ["evaluate"], ["table"], ["plot"], ["reproduce"], ["compare"], ["sweep"], ["surfaces"], ["stats"],
    ["report"], ["supervised"], ["supervised", "train"], ["supervised", "evaluate"], ["supervised", "table"],
    ["supervised", "benchmark"],
]


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (this checkout first on the path); it prints one JSON line last."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "MPLBACKEND": ""}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_registering_and_making_every_id_imports_neither_torch_nor_sb3():
    seen = run_python(
        "import json, sys\n"
        "import robustrl, robustrl.envs\n"
        "import gymnasium as gym\n"
        "for env_id in robustrl.ENV_IDS:\n"
        "    gym.make(env_id).reset(seed=0)\n"
        "robustrl.make_vector_env(robustrl.ENV_IDS[1], 2).reset(seed=0)\n"
        f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    )
    assert seen == {"torch": False, "stable_baselines3": False}


def test_a_pool_worker_starts_without_torch_or_sb3():
    """A spawned worker imports what unpickling its initializer needs: the pool and progress modules. A call
    that trains loads torch and SB3 itself; the pool does not load them for every worker it starts (one per
    call, and a replacement after each)."""
    seen = run_python(
        "import json, sys\n"
        "import robustrl.experiments.parallel, robustrl.experiments.progress\n"
        f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    )
    assert seen == {"torch": False, "stable_baselines3": False}


def test_help_of_every_command_imports_neither_torch_nor_sb3():
    seen = run_python(
        "import contextlib, io, json, sys\n"
        "from robustrl.cli import main\n"
        "codes, outputs = [], []\n"
        f"for command in {HELP_COMMANDS!r}:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n"
        "            main([*command, '--help'])\n"
        "        except SystemExit as stop:\n"
        "            codes.append(stop.code)\n"
        "    outputs.append(out.getvalue())\n"
        f"print(json.dumps(dict(codes=codes, outputs=outputs, heavy=[m for m in {HEAVY!r} if m in sys.modules])))\n"
    )
    assert seen["codes"] == [0] * len(HELP_COMMANDS)
    for command, output in zip(HELP_COMMANDS, seen["outputs"]):
        assert output.startswith(f"usage: robustrl {' '.join(command)}".rstrip()), (command, output[:200])
    assert "--preset {digits" in seen["outputs"][-1]  # choices are still listed
    assert "--norm {linf,l2}" in seen["outputs"][-3]
    assert seen["heavy"] == []


def test_public_names_load_on_first_access_and_matplotlib_backend_is_left_alone():
    seen = run_python(
        "import json, sys\n"
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import robustrl\n"
        "before = [m for m in ('torch', 'stable_baselines3') if m in sys.modules]\n"
        "dqn = robustrl.RobustDQN\n"
        "from robustrl.agents.robust_dqn import RobustDQN\n"
        "from robustrl import entropic_risk, estimators\n"
        "import robustrl.experiments.plots, robustrl.experiments.surfaces, robustrl.experiments.sweep_report\n"
        "import robustrl.supervised.benchmark, robustrl.supervised.worst_case, robustrl.supervised.cli\n"
        "print(json.dumps(dict(before=before, same=dqn is RobustDQN, risk=entropic_risk is estimators.entropic_risk,\n"
        "                      after='stable_baselines3' in sys.modules, backend=matplotlib.get_backend())))\n"
    )
    assert seen == dict(before=[], same=True, risk=True, after=True, backend="svg")


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_public_name_resolves_and_is_listed_by_dir(package):
    module = importlib.import_module(package)
    assert set(module.__all__) <= set(dir(module))
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match=f"{package}.*no_such_name"):
        module.no_such_name  # noqa: B018


def test_supervised_command_line_names_match_the_library():
    from robustrl.supervised import ATTACKS, DATASETS, METHODS, PRESETS, names
    from robustrl.supervised.attacks import NORMS
    from robustrl.supervised.models import ARCHS

    assert (names.ATTACKS, names.DATASETS, names.METHODS, names.NORMS, names.ARCHS) == (
        ATTACKS, DATASETS, METHODS, NORMS, ARCHS)
    assert names.PRESET_NAMES == tuple(PRESETS)


@pytest.fixture
def svg_backend():
    previous = matplotlib.get_backend()
    matplotlib.use("svg")
    yield
    matplotlib.use(previous)


def test_plotting_functions_leave_the_users_backend_alone(tmp_path, svg_backend):
    from robustrl.experiments.plots import plot_training_curves
    from robustrl.supervised.worst_case import plot_worst_case_1d

    run = tmp_path / "runs" / "robustrl-CartPole-v1__regular__0"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"weights")  # a complete run names model files that exist
    (run / "meta.json").write_text(json.dumps({"agent": "regular", "tag": "", "seed": 0,
                                               "checkpoints": {"best": "best.pt", "final": "best.pt"}}))
    np.savetxt(run / "curve.csv", [[0, 10.0], [100, 20.0]], delimiter=",", header="step,return", comments="")
    assert plot_training_curves(tmp_path / "runs", tmp_path / "curves.png").stat().st_size > 0
    assert matplotlib.get_backend() == "svg"
    plot_worst_case_1d(tmp_path / "worst.png", etas=(1.0,), n_samples=100)
    assert matplotlib.get_backend() == "svg"
