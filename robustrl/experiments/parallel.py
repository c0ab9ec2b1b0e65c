"""Process pools whose workers do not outlive the process that started them."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

__all__ = ["process_pool"]


def _exit_with_parent(parent: int, interval: float) -> None:
    """Worker initializer: a daemon thread that ends the worker once ``parent`` is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def process_pool(jobs: int, interval: float = 0.5) -> ProcessPoolExecutor:
    """A ``spawn`` process pool of ``jobs`` workers that exit within ``interval`` seconds of their parent.

    A plain ``ProcessPoolExecutor`` worker keeps running its task when the parent is killed (SIGTERM or
    SIGKILL), so a killed ``robustrl sweep`` or ``reproduce`` would leave runs training, and writing into
    the runs folder, beside the next invocation.
    """
    return ProcessPoolExecutor(
        max_workers=jobs, mp_context=get_context("spawn"), initializer=_exit_with_parent,
        initargs=(os.getpid(), interval),
    )
