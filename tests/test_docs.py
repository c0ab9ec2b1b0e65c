"""The API reference (docs/, built by ``make docs``) has an entry for every public name.

Fast and without Sphinx: the ``__all__`` lists are read from the source with ``ast`` (nothing is imported)
and the entries from the autodoc directives of docs/**/*.rst. The Sphinx build itself (warnings as errors)
runs in CI after the tests.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "robustrl"
DOCS = ROOT / "docs"

#: ``.. automodule:: X``, ``.. currentmodule:: X``, ``.. autoclass:: Y`` ... at the start of a line.
DIRECTIVE = re.compile(r"^\s*\.\. (?:py:)?(auto\w+|currentmodule|module)::\s*(\S+)\s*$", re.MULTILINE)
ENTRY_KINDS = {"autoclass", "autoexception", "autofunction", "autodata", "autoattribute", "autodecorator"}


def public_modules() -> list[str]:
    """``robustrl`` and each of its public top-level modules and subpackages."""
    names = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    names += [p.parent.name for p in PACKAGE.glob("*/__init__.py")]
    return ["robustrl", *sorted(f"robustrl.{n}" for n in names if not n.startswith("_"))]


@functools.cache
def module_all(module: str) -> tuple[str, ...]:
    """The literal ``__all__`` of a robustrl module, read from its source."""
    relative = Path(*module.split("."))
    path = ROOT / relative.with_suffix(".py")
    if not path.exists():
        path = ROOT / relative / "__init__.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError(f"{module} has no literal __all__")


def parse(text: str) -> tuple[list[str], list[str]]:
    """(modules with an ``automodule`` entry, full names with an autodoc entry) of one page; a relative
    name is taken in the current module, as autodoc does."""
    modules: list[str] = []
    entries: list[str] = []
    current = None
    for kind, target in DIRECTIVE.findall(text):
        if kind in ("automodule", "module", "currentmodule"):
            current = target
            if kind != "currentmodule":
                modules.append(target)
        elif kind in ENTRY_KINDS:
            entries.append(target if target.startswith("robustrl.") or current is None else f"{current}.{target}")
    return modules, entries


def documented() -> tuple[set[str], set[str], dict[str, str]]:
    """(modules with an ``automodule`` entry, full names with an autodoc entry, full name -> its page)."""
    modules: set[str] = set()
    entries: set[str] = set()
    pages: dict[str, str] = {}
    for page in sorted(DOCS.rglob("*.rst")):
        page_modules, page_entries = parse(page.read_text())
        modules.update(page_modules)
        entries.update(page_entries)
        for full in page_entries:
            pages.setdefault(full, str(page.relative_to(ROOT)))
    return modules, entries, pages


def test_the_docs_exist():
    assert (DOCS / "conf.py").is_file() and (DOCS / "index.rst").is_file() and (DOCS / "theory.rst").is_file()


def test_every_public_module_has_a_page():
    modules, _, _ = documented()
    missing = [m for m in public_modules() if m not in modules]
    assert not missing, f"no '.. automodule::' entry in docs/ for: {', '.join(missing)}"


def test_every_public_name_has_an_entry():
    modules, entries, _ = documented()
    missing = [f"{m}.{name}" for m in public_modules() for name in module_all(m)
               if f"{m}.{name}" not in entries and f"{m}.{name}" not in modules]
    assert not missing, ("names in an __all__ without an autodoc entry in docs/ "
                         f"(add '.. autoclass::' / '.. autofunction::' / '.. autodata::'): {', '.join(missing)}")


def test_no_entry_names_a_name_outside_its_modules_all():
    public = set(public_modules())
    _, entries, pages = documented()
    stale = [f"{full} ({pages[full]})" for full in sorted(entries)
             if (module := full.rpartition(".")[0]) in public and full.rpartition(".")[2] not in module_all(module)]
    assert not stale, f"docs entries for names not in their module's __all__: {', '.join(stale)}"


def test_the_parser_resolves_names_as_autodoc_does():
    text = (".. automodule:: robustrl.agents\n\n``robustrl.agents.base``\n------------------------\n\n"
            ".. automodule:: robustrl.agents.base\n\n.. currentmodule:: robustrl.agents\n\n"
            ".. autoclass:: HookedDQN\n   :members:\n\n.. autodata:: robustrl.envs.ENV_IDS\n   :no-index:\n\n"
            "   ``.. autodata:: NOT_AN_ENTRY`` (inline literal, not a directive)\n")
    assert parse(text) == (["robustrl.agents", "robustrl.agents.base"],
                           ["robustrl.agents.HookedDQN", "robustrl.envs.ENV_IDS"])
