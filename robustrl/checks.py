"""Argument checks shared by every part of robustrl.

This module imports nothing of torch, gymnasium or Stable-Baselines3, so that the envs, the estimators,
the agents and the experiments can all use the same checks without importing each other.
"""

from __future__ import annotations

import argparse
import functools
import math
import numbers
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "LINEAR_NORMS",
    "MAX_SEED",
    "NORMS",
    "check_choice",
    "check_eps",
    "check_int",
    "check_mapping",
    "check_name",
    "check_option",
    "check_probability",
    "check_seed",
    "file_error",
    "int_option",
    "is_int",
    "is_number",
    "is_of",
    "load_yaml",
    "read_yaml",
]

#: The norms of the perturbation balls, shared by the robust agents and the supervised attacks (here, free
#: of torch, so that the command line can offer them without importing torch).
NORMS: tuple[str, ...] = ("linf", "l2")
#: The norms of exact adversarial logistic regression (:mod:`robustrl.supervised.linear`): :data:`NORMS` and
#: ``"l1"``, whose worst case is closed-form for a linear model only.
LINEAR_NORMS: tuple[str, ...] = (*NORMS, "l1")
#: The largest seed NumPy's and Stable-Baselines3's seeding accept.
MAX_SEED = 2**32 - 1


def is_int(value: Any, minimum: int) -> bool:
    """Whether ``value`` is an integer (Python or NumPy, not a bool) that is ``>= minimum``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (Python or NumPy, int or float), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_of(value: Any, kind: type | tuple[type, ...]) -> bool:
    """``isinstance(value, kind)`` for a value read from a file, where a bool never counts (JSON ``true``
    is not a seed)."""
    return isinstance(value, kind) and not isinstance(value, bool)


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (bools rejected), else ``ValueError`` naming ``name`` and the value."""
    if not is_int(value, minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    return int(value)


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed: an integer in ``[0, 2**32 - 1]`` (what NumPy's and SB3's seeding accept), else ``ValueError``."""
    check_int(seed, name, 0)
    if seed > MAX_SEED:
        raise ValueError(f"{name} must be <= 2**32 - 1 = {MAX_SEED}, got {name}={seed!r}")
    return int(seed)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")


def check_name(value: Any, name: str) -> str:
    """A name that becomes part of a file name (a run's tag): letters, digits and ``._+=-``, not starting
    with a dot or a dash, so it can neither leave its folder (``/``, ``..``) nor hide (``.x``)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{name} must be letters, digits and . _ + = - (not first), got {name}={value!r}")
    return value


def check_eps(eps: Any, name: str = "eps") -> float:
    """A perturbation budget: a finite number ``>= 0``, else ``ValueError`` naming ``name`` and the value."""
    value = float(eps) if is_number(eps) else math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {name}={eps!r}")
    return value


def check_probability(p: Any, name: str = "p") -> float:
    """A probability: a number in ``[0, 1]`` (NaN refused), else ``ValueError`` naming ``name`` and the value."""
    value = float(p) if is_number(p) else math.nan
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {name}={p!r}")
    return value


def check_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of ``choices``, else ``ValueError`` naming it and listing the choices."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def check_option(value: Any, choices: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of ``choices``, else ``ValueError`` in the form of a hyperparameter's errors,
    e.g. ``norm must be one of ('linf', 'l2'), got norm='l1'`` (:func:`check_choice` words a command-line or
    task choice instead)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {name}={value!r}")
    return value


def int_option(minimum: int = 1) -> Callable[[str], int]:
    """An argparse ``type`` for a count (episodes, seeds, jobs, steps ...): the integer given if it is at
    least ``minimum``, else a usage error naming the option, e.g.
    ``argument --jobs: expected an integer >= 1, got '0'``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


def file_error(source: str, path: str, problem: str) -> ValueError:
    """The error of a bad value in a configuration file: ``source: key.path: problem`` (one line)."""
    return ValueError(f"{source}: {path}: {problem}")


def check_mapping(source: str, path: str, data: Any, valid: tuple[str, ...]) -> dict[str, Any]:
    """``data`` if it is a mapping whose keys are all in ``valid``, else :func:`file_error` naming the key path."""
    if not isinstance(data, dict):
        raise file_error(source, path or "(top level)", f"expected a mapping, got {data!r}")
    for key in data:
        if key not in valid:
            raise file_error(source, f"{path}.{key}" if path else str(key), f"unknown key (valid: {', '.join(valid)})")
    return data


@functools.cache
def _unique_key_loader() -> type:
    """:class:`yaml.SafeLoader` that refuses a key given twice in one mapping (made on first use: importing
    robustrl does not import yaml)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` whose mappings refuse a key given twice; YAML itself keeps the later value
        silently. Keys merged in by ``<<: *anchor`` may be overridden, as YAML intends."""

        source = "<yaml>"

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            if isinstance(node, yaml.MappingNode):
                lines: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    line = key_node.start_mark.line + 1
                    try:
                        if key in lines:
                            raise ValueError(f"{self.source}: line {line}: key {key!r} given twice (first on "
                                             f"line {lines[key]}); YAML would keep only the later value")
                        lines[key] = line
                    except TypeError:  # an unhashable key: SafeLoader refuses it below, naming it
                        continue
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML ``text`` read from ``source`` (a file name, for the messages) as ``yaml.safe_load`` does,
    except that a key given twice in one mapping is an error: YAML keeps the later value silently, so a file
    would not mean what it seems to say. Invalid YAML and a repeated key are a one-line ``ValueError``
    naming ``source`` (and the key and its lines)."""
    import yaml

    loader = _unique_key_loader()(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        problem = str(err).splitlines()[0]
        if isinstance(err, yaml.MarkedYAMLError) and err.problem and err.problem_mark:
            problem = f"{err.problem} (line {err.problem_mark.line + 1})"
        raise ValueError(f"{source}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path, source: str | None = None) -> Any:
    """:func:`load_yaml` of the file at ``path``, named ``source`` in messages (default: the path); text
    that is not UTF-8 is a ``ValueError`` naming it (``FileNotFoundError`` if there is no file)."""
    path = Path(path)
    source = str(path) if source is None else source
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        byte = f"0x{data[err.start]:02x}"
        raise ValueError(f"{source}: not UTF-8 text (byte {byte} at position {err.start})") from None
    return load_yaml(text, source)
