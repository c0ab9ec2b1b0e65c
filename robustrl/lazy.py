"""Public names loaded on first access (PEP 562), so that importing a package stays cheap.

A package whose modules import torch or Stable-Baselines3 lists, per module, the public names that module
provides; the module is imported when one of them is first used (``robustrl.RobustDQN``,
``from robustrl import entropic_risk``), never by ``import robustrl`` alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(namespace: dict[str, Any], origins: Mapping[str, Iterable[str]]
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of the package whose ``globals()`` is ``namespace``.

    ``origins`` maps a module's full name to the names it provides; a name equal to the module's last
    component stands for the module itself (``{"robustrl.estimators": ["estimators", "SAA"]}``). A loaded
    name is stored in ``namespace``, so later accesses are ordinary attribute lookups.
    """
    package = namespace["__name__"]
    where = {name: module for module, names in origins.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        imported = importlib.import_module(module)
        value = imported if module == f"{package}.{name}" else getattr(imported, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
