"""Sphinx configuration of the robustrl API reference (``make docs``).

The build needs no network: no intersphinx, MathJax only referenced from the HTML.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docstrings import prepare_docstring

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's package, also when it is not installed in editable mode

import robustrl

project = "robustrl"
author = "robustrl developers"
copyright = "robustrl developers"
version = release = robustrl.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.mathjax"]

exclude_patterns = ["_build"]
root_doc = "index"
html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"robustrl {release}"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_class_signature = "mixed"
add_module_names = False


# --- Docstring rendering -------------------------------------------------------------------------------------
# Three small hooks, so that the docstrings stay as they are in the source (plain reST with :param: fields):
#
# 1. The Gymnasium-style headings of the environment and wrapper docstrings (``## Description``, the
#    convention of Gymnasium's own environments) become reST rubrics.
# 2. A constant re-exported by a package (``robustrl.agents.AGENT_CLASSES``, defined in
#    ``robustrl.agents.factory``) gets the ``#:`` comment of the module that defines it, where autodoc alone
#    would show the docstring of its type (``dict``'s).
# 3. A cross-reference to an object by the path of its defining module (``robustrl.agents.base.HookedDQN``)
#    or by a relative name links to the entry that documents that same object (``robustrl.agents.HookedDQN``).

_HEADING = re.compile(r"^(\s*)## (\S.*)$")


def _gymnasium_headings(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    converted: list[str] = []
    for line in lines:
        match = _HEADING.match(line)
        converted += ["", f"{match[1]}.. rubric:: {match[2]}", ""] if match else [line]
    lines[:] = converted


def _defining_comment(name: str, obj: Any) -> list[str] | None:
    """The ``#:`` comment above the assignment of ``obj`` in the robustrl module that defines it."""
    attr = name.rpartition(".")[2]
    for modname, module in sorted(sys.modules.items()):
        if not modname.startswith("robustrl") or vars(module).get(attr, None) is not obj:
            continue
        try:
            comment = ModuleAnalyzer.for_module(modname).find_attr_docs().get(("", attr))
        except PycodeError:  # a module without source (never the case in robustrl, but harmless)
            continue
        if comment:
            return list(comment)
    return None


def _constant_comments(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    if what not in ("data", "attribute"):
        return
    type_doc = getattr(type(obj), "__doc__", None)
    if isinstance(type_doc, str) and lines and lines == prepare_docstring(type_doc):
        lines[:] = _defining_comment(name, obj) or []


def _resolve(path: str) -> Any:
    """The object at a dotted path (a module, then attributes), or None."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return obj
    return None


_PRIMITIVES = (str, bytes, int, float, bool, type(None))


_documented: dict[int, str] = {}  # built once per build, after reading (ids are not kept across processes)


def _documented_names(env: Any) -> dict[int, str]:
    """``id(object) -> the name of the entry that documents it`` over every indexed robustrl entry."""
    if not _documented:
        for fullname in sorted(env.get_domain("py").objects):
            if fullname.startswith("robustrl"):
                obj = _resolve(fullname)
                if obj is not None and not isinstance(obj, _PRIMITIVES):
                    _documented.setdefault(id(obj), fullname)
    return _documented


def _link_aliases(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [f"{module}.{cls}.{target}" if module and cls else None,
                  f"{module}.{target}" if module else None, target]
    documented = _documented_names(env)
    for candidate in filter(None, candidates):
        if not candidate.startswith("robustrl"):
            continue
        obj = _resolve(candidate)
        if obj is None or isinstance(obj, _PRIMITIVES) or id(obj) not in documented:
            continue
        found = documented[id(obj)]
        if found == candidate:
            return None  # documented under this very name: not an alias, nothing to add
        return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"], found,
                                                 node, contnode)
    return None


def _forget_documented(app: Any, env: Any, *args: Any) -> None:
    _documented.clear()


def setup(app: Any) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", _gymnasium_headings)
    app.connect("autodoc-process-docstring", _constant_comments)
    app.connect("missing-reference", _link_aliases)
    app.connect("env-updated", _forget_documented)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
