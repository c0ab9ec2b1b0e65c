"""Atomic file output: every file is written to a temporary name, then renamed into place.

A writer holds an ``flock`` on its temporary file until the file has its final name, so that
:func:`remove_temporaries` can tell the leftovers of killed writers (no lock: the system releases it when
a process dies, however it dies) from the files of writers still at work (locked), whichever process runs it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustrl.checks import load_yaml, read_yaml

try:
    import fcntl
except ImportError:  # Windows: no flock; temporaries are told apart by their age there
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ABANDONED_AFTER",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_png",
    "atomic_write_text",
    "atomic_write_with",
    "file_sha256",
    "json_text",
    "model_bytes",
    "packaged_names",
    "read_json",
    "read_table_rows",
    "read_packaged_yaml",
    "remove_temporaries",
]

TEMPORARY_PATTERN = ".*.tmp"
#: Without ``flock`` (Windows), a temporary file is taken for a killed writer's only after this many seconds
#: (an atomic write has its bytes in memory before it creates the file, so it lasts well under a second).
ABANDONED_AFTER = 3600.0


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create ``.NAME.XXXXXXXX.tmp`` beside ``path`` with mode 0666 minus the umask (like ``open``), locked."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a cleaner checks it (and removes it: then retry)
        if _same_file(fd, tmp):
            return fd, tmp
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``).

    The file gets the permissions of any new file (0666 minus the umask, so 0644 usually). A process
    killed mid-write leaves ``.NAME.XXXXXXXX.tmp``, which :func:`remove_temporaries` deletes; the
    temporary file stays locked until it is renamed, so no cleaner removes it while it is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if fcntl is not None:  # renamed while still locked (Windows cannot rename an open file)
                os.replace(tmp, path)
        if fcntl is None:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_text(data: Any) -> str:
    """``data`` as the JSON text robustrl writes (with a final newline): keys sorted, objects and lists of lists
    indented by two spaces, a list of plain values (numbers, strings, booleans, null) on one line, so an episode's
    returns or a parameter grid take one line each; ``inf`` is written as ``Infinity``, as :func:`json.dumps` does.
    """
    flat: list[str] = []
    tag = secrets.token_hex(8)  # marks the one-line lists; a string of the data cannot hold it by chance

    def mark(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: mark(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            if all(not isinstance(item, (dict, list, tuple)) for item in value):
                flat.append(json.dumps(list(value)))
                return f"{tag}:{len(flat) - 1}"
            return [mark(item) for item in value]
        return value

    text = json.dumps(mark(data), indent=2, sort_keys=True)
    return re.sub(f'"{tag}:(\\d+)"', lambda m: flat[int(m.group(1))], text) + "\n"


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` to ``path`` atomically as :func:`json_text` formats it."""
    return atomic_write_text(path, json_text(data))


def atomic_write_with(path: str | Path, writer: Callable[[io.BytesIO], Any]) -> Path:
    """Call ``writer(buffer)`` on an in-memory binary buffer, then write its bytes to ``path`` atomically.

    For writers that want a file object, e.g. ``lambda f: torch.save(state, f)`` or
    ``lambda f: fig.savefig(f, format="png")``.
    """
    buffer = io.BytesIO()
    writer(buffer)
    return atomic_write_bytes(path, buffer.getvalue())


#: Colours of a PNG written by :func:`atomic_write_png`.
PNG_COLOURS = 256


def atomic_write_png(path: str | Path, fig: Any, dpi: int, *, tight: bool = True) -> Path:
    """Write the matplotlib figure ``fig`` to ``path`` atomically as an 8-bit palette PNG at ``dpi``.

    matplotlib renders an RGBA image; on the figures' opaque background the alpha channel is constant, and their
    lines, markers, text and translucent bands use few colours, so the image is reduced to :data:`PNG_COLOURS`
    colours (Pillow's median cut, deterministic) and saved with Pillow's ``optimize``: about a third of matplotlib's
    file, the same picture to the eye. ``tight`` crops to the drawn area (``bbox_inches="tight"``).
    """
    from PIL import Image

    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    rendered.seek(0)
    with Image.open(rendered) as image:
        palette = image.convert("RGB").quantize(PNG_COLOURS, method=Image.Quantize.MEDIANCUT)
    return atomic_write_with(path, lambda f: palette.save(f, format="PNG", optimize=True))


def model_bytes(model: Any) -> bytes:
    """``model.save`` (Stable-Baselines3) into memory: the bytes of its ``.zip``."""
    buffer = io.BytesIO()
    model.save(buffer)
    return buffer.getvalue()


def _remove_if_abandoned(tmp: Path) -> bool:
    """Remove ``tmp`` if no writer holds it (its writer was killed); whether it was removed."""
    if fcntl is None:
        try:
            if time.time() - tmp.stat().st_mtime < ABANDONED_AFTER:
                return False
        except FileNotFoundError:
            return False
        tmp.unlink(missing_ok=True)
        return True
    try:
        fd = os.open(tmp, os.O_RDONLY)
    except (FileNotFoundError, IsADirectoryError):
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a writer is at work on it
            return False
        if not _same_file(fd, tmp):  # renamed into place (or replaced) since we opened it
            return False
        tmp.unlink()  # while locked: a writer that created it and waits for the lock then takes another name
        return True
    finally:
        os.close(fd)


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that killed atomic writes left under ``folder``; returns what was removed.

    Safe while other processes write into ``folder``: a writer holds an ``flock`` on its temporary file
    from its creation until it is renamed into place, so a locked one is being written and stays, and an
    unlocked one belongs to a writer that is gone (the system drops a dead process's locks), so it goes.
    A lock tells this at once, however recent the file; a threshold of age could not (a rerun right after
    a kill would keep the leftover, a stalled writer would lose its file). Without ``flock`` (Windows)
    only temporaries older than :data:`ABANDONED_AFTER` seconds are removed.
    """
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for tmp in folder.rglob(TEMPORARY_PATTERN):
            if tmp.is_file() and _remove_if_abandoned(tmp):
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


def read_table_rows(path: str | Path, missing: str) -> list[dict[str, str]]:
    """The rows of a generated table's CSV (``reward_table.csv``, ``robustness_table.csv``), its ``#`` comment lines
    skipped; ``ValueError`` ``"{path} not found: {missing}"`` if the file does not exist."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} not found: {missing}")
    return list(csv.DictReader(line for line in path.read_text(encoding="utf-8").splitlines()
                               if not line.startswith("#")))


def packaged_names(folder: str) -> list[str]:
    """The names of the YAML files shipped in the package folder ``folder`` (e.g. ``"configs/suites"``)."""
    from importlib import resources

    entries = resources.files("robustrl").joinpath(folder).iterdir()
    return sorted(entry.name[: -len(".yml")] for entry in entries if entry.name.endswith(".yml"))


def read_packaged_yaml(name_or_path: str | Path, folder: str, what: str) -> tuple[Any, str]:
    """The parsed YAML of a packaged file by name (``folder/NAME.yml``) or of a user's file by path, and where
    it was read from. ``FileNotFoundError`` names ``what`` and the packaged names; invalid YAML, a key given
    twice and text that is not UTF-8 are a ``ValueError`` naming the file
    (:func:`robustrl.checks.read_yaml`)."""
    from importlib import resources

    text = str(name_or_path)
    names = packaged_names(folder)
    if isinstance(name_or_path, str) and text in names:
        source = f"{folder}/{text}.yml"
        return load_yaml(resources.files("robustrl").joinpath(source).read_text(), source), source
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {text!r} is neither a file nor a packaged {what} "
                                f"({', '.join(names)})")
    return read_yaml(path), str(path)
