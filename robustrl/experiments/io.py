"""Atomic file output: every file is written to a temporary name, then renamed into place."""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_save_model",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_write_with",
    "file_sha256",
    "model_bytes",
    "read_cached",
    "read_json",
    "remove_temporaries",
]

TEMPORARY_PATTERN = ".*.tmp"


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create ``.NAME.XXXXXXXX.tmp`` beside ``path`` with mode 0666 minus the umask (like ``open``)."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``).

    The file gets the permissions of any new file (0666 minus the umask, so 0644 usually). A process
    killed mid-write leaves ``.NAME.XXXXXXXX.tmp``, which :func:`remove_temporaries` deletes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically (``inf`` is written as ``Infinity``)."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_write_with(path: str | Path, writer: Callable[[io.BytesIO], Any]) -> Path:
    """Call ``writer(buffer)`` on an in-memory binary buffer, then write its bytes to ``path`` atomically.

    For writers that want a file object, e.g. ``lambda f: torch.save(state, f)`` or
    ``lambda f: fig.savefig(f, format="png")``.
    """
    buffer = io.BytesIO()
    writer(buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def model_bytes(model: Any) -> bytes:
    """``model.save`` (Stable-Baselines3) into memory: the bytes of its ``.zip``."""
    buffer = io.BytesIO()
    model.save(buffer)
    return buffer.getvalue()


def atomic_save_model(model: Any, path: str | Path) -> Path:
    """``model.save`` (Stable-Baselines3) into memory, then an atomic write to ``path``."""
    return atomic_write_bytes(path, model_bytes(model))


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes under ``folder``; returns what was removed.

    Call it only where no other process is writing (e.g. at the start of a run that owns the folder).
    """
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for tmp in folder.rglob(TEMPORARY_PATTERN):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the file at ``path``."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_json(path: str | Path) -> Any:
    """Read a JSON file, with an error naming the file if it is missing or corrupted."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is corrupted: {err}") from None


def read_cached(path: str | Path, request: Any) -> Any | None:
    """The JSON result cached at ``path`` if it was computed for ``request`` (its ``"request"`` key), else None."""
    path = Path(path)
    if not path.is_file():
        return None
    saved = read_json(path)
    return saved if saved.get("request") == request else None
