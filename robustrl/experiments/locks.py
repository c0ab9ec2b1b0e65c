"""One process at a time per run folder: a ``flock`` on a lock file that a killed process cannot leave held.

The kernel releases an ``flock`` when its process dies, however it dies, so a lock file left behind by a
SIGKILL is taken over by the next process; a clean release removes the file.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunInUseError", "run_lock"]

#: The lock file inside a run folder (ignored by git; not an output of the run).
LOCK_NAME = ".train.lock"


class RunInUseError(ValueError):
    """Another process holds the lock of a run folder."""


def _holder_line() -> str:
    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    return f"pid {os.getpid()} on {socket.gethostname()} ({command})"


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the lock of the existing folder ``run_dir`` while the block runs; yields the lock file.

    Raises :class:`RunInUseError` (a ``ValueError``) naming the folder and the process holding it if
    another process, or another ``run_lock`` of this one, holds it. Without ``fcntl`` (Windows) nothing
    is locked.
    """
    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME
    if fcntl is None:
        yield path
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunInUseError(f"run folder {run_dir} is in use by {holder}; wait for it to end or stop it, "
                                f"then rerun") from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed the file between our open and our lock: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (_holder_line() + "\n").encode("utf-8"))
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still locked, so no one can lock the removed file
        os.close(fd)
