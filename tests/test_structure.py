"""Each thing in one place: no private name crosses a module, one NORMS, one agent label."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest

import robustrl

ROOT = Path(robustrl.__file__).parent.parent


def _python_files() -> list[Path]:
    return [p for folder in ("robustrl", "scripts", "tests") for p in (ROOT / folder).rglob("*.py")]


def test_no_private_name_is_imported_from_another_module():
    crossing = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("robustrl", "scripts", "tests")):
                crossing += [f"{path.relative_to(ROOT)}: {node.module}.{alias.name}" for alias in node.names
                             if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not crossing


def test_norms_are_defined_once():
    from robustrl import estimators
    from robustrl.supervised import attacks, names

    assert attacks.NORMS is estimators.NORMS is names.NORMS
    defined = [str(p.relative_to(ROOT)) for p in (ROOT / "robustrl").rglob("*.py")
               if any(isinstance(n, (ast.Assign, ast.AnnAssign)) and "NORMS" in ast.unparse(n).split("=")[0]
                      for n in ast.parse(p.read_text()).body)]
    assert defined == ["robustrl/checks.py"]  # torch-free, so that the command line can list them


def _mentions(node: ast.AST, word: str) -> bool:
    """Whether ``node`` reads ``word`` as a name (``agent``), an attribute (``spec.agent``) or a key
    (``meta["agent"]``)."""
    return any((isinstance(n, ast.Name) and n.id == word) or (isinstance(n, ast.Attribute) and n.attr == word)
               or (isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) and n.slice.value == word)
               for n in ast.walk(node))


def _labels_by_hand(tree: ast.AST) -> list[int]:
    """Lines of f-strings (or ``+`` chains) that combine an agent and a tag themselves, outside agent_label."""
    inside_agent_label = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "agent_label"
                          for n in ast.walk(f)}
    lines = []
    for node in ast.walk(tree):
        if id(node) in inside_agent_label:
            continue
        if isinstance(node, ast.JoinedStr):
            parts = [v.value for v in node.values if isinstance(v, ast.FormattedValue)
                     and not (isinstance(v.value, ast.Call) and getattr(v.value.func, "id", "") == "agent_label")]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            parts = [node.left, node.right]
        else:
            continue
        if any(_mentions(p, "agent") for p in parts) and any(_mentions(p, "tag") for p in parts):
            lines.append(node.lineno)
    return lines


def test_agent_label_is_built_in_one_place():
    from robustrl.experiments.tables import agent_label
    from robustrl.experiments.training import RunSpec

    assert agent_label("robust", "rho0.1") == "robust-rho0.1" and agent_label("robust", None) == "robust"
    assert RunSpec("robust", 3, tag="rho0.1").name == "CartPole-v1__robust-rho0.1__3"
    for by_hand in ('f"{agent}-{tag}"', 'f"{meta[\'agent\']}-{meta[\'tag\']}" if x else y',
                    'self.agent + "-" + self.tag'):
        assert _labels_by_hand(ast.parse(by_hand)) == [1], by_hand  # the check finds a label built by hand
    assert not _labels_by_hand(ast.parse('f"{env}__{agent_label(spec.agent, spec.tag)}__{seed}"'))
    found = {str(p.relative_to(ROOT)): lines for p in (ROOT / "robustrl").rglob("*.py")
             if (lines := _labels_by_hand(ast.parse(p.read_text())))}
    assert not found


def test_no_pointer_to_documents_outside_the_repository():
    design, section = "DES" + "IGN", "\u00a7"  # spelled apart so that this file does not match itself
    pointers = [f"{p.relative_to(ROOT)}:{i}" for p in [*_python_files(), ROOT / "README.md"]
                for i, line in enumerate(p.read_text().splitlines(), 1) if design in line or section in line]
    assert not pointers


def test_stable_baselines3_pin_has_the_discounts_the_robust_target_reads():
    """RobustDQN.train reads ReplayBufferSamples.discounts, which Stable-Baselines3 added in 2.7.0."""
    import re

    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    assert "discounts" in ReplayBufferSamples._fields
    pin = re.search(r'"stable-baselines3>=(\d+)\.(\d+)', (ROOT / "pyproject.toml").read_text())
    assert pin and (int(pin[1]), int(pin[2])) >= (2, 7)


def test_tests_and_package_do_not_load_scripts():
    """Library logic lives in the package; scripts/ only parse arguments and call it."""
    loading = [str(p.relative_to(ROOT)) for folder in ("robustrl", "tests") for p in (ROOT / folder).rglob("*.py")
               if p.name != "test_structure.py" and ("spec_from_file_location" in p.read_text()
                                                     or "from scripts" in p.read_text())]
    assert not loading


def test_no_experiment_or_agent_module_names_cartpole_or_one_of_its_parameters():
    """The experiments and agents read a task (robustrl.tasks): CartPole is data, not code."""
    import re

    pattern = re.compile(r"cartpole|masspole|masscart|force_mag|polemass|x_threshold|theta_threshold", re.I)
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for folder in ("experiments", "agents") for path in sorted((ROOT / "robustrl" / folder).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "\n".join(found)


def test_committed_json_is_in_the_layout_robustrl_writes():
    """Files copied in from an older robustrl are rewritten by scripts/format_json.py before they are committed."""
    from robustrl.experiments.io import json_text

    listed = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True)
    files = [ROOT / f for f in listed.stdout.split() if f.endswith(".json")] if listed.returncode == 0 else []
    if not files:
        pytest.skip("not a git checkout with committed results")
    other = [str(f.relative_to(ROOT)) for f in files if f.is_file()
             and (text := f.read_text(encoding="utf-8")) != json_text(json.loads(text))]
    assert not other, f"{len(other)} files, e.g. {other[:3]}: python scripts/format_json.py results"
