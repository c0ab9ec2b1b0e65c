"""The README as a newcomer follows it: after ``make setup`` every command it shows runs as typed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

#: A command a reader types: ``python ...`` or ``robustrl ...`` at the start of a code line or of a code span.
COMMAND = re.compile(r"(?:^ {4}|^```\w*\n|`)(python3?|robustrl) ", re.MULTILINE)


def test_the_venv_is_activated_before_the_first_python_or_robustrl_command():
    """``make setup`` installs into .venv: a bare ``python`` or ``robustrl`` misses gymnasium and torch."""
    text = README.read_text()
    activate = text.find(". .venv/bin/activate")
    commands = list(COMMAND.finditer(text))
    assert commands and activate != -1
    assert activate < commands[0].start(), text[commands[0].start():commands[0].start() + 80]



def test_the_readmes_table_of_tasks_is_what_robustrl_tasks_prints():
    from robustrl.tasks import tasks_table

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text.split("<!-- robustrl tasks -->\n")[1].split("<!-- end robustrl tasks -->")[0]
    if "(install robustrl[" in tasks_table():
        pytest.skip("an extra (Box2D or MuJoCo) is not installed: the table lists fewer parameters here")
    assert block == tasks_table()
