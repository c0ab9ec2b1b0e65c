"""Process pools whose workers never outlive the command that started them, and stop with it on Ctrl-C.

A plain ``ProcessPoolExecutor`` lets a Ctrl-C through to every worker: each worker hands the
``KeyboardInterrupt`` of its run back as a result and takes the next queued run, while the parent's
``shutdown`` waits for the whole queue; a killed parent leaves its workers training. Here the workers
ignore SIGINT and the parent decides: on any exception in the ``with`` block (Ctrl-C, SIGTERM turned into
an exception by the CLI, a failed run) it cancels the queued calls and terminates the workers, and a
worker whose parent is gone (SIGKILL) ends itself within ``interval`` seconds. Runs trained in a worker
report their progress to the parent, which draws a bar per running run
(:mod:`robustrl.experiments.progress`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from robustrl.experiments.progress import RunBars, reporting_to, set_reporter

__all__ = ["ProcessPool", "run_calls"]

_SPAWN = get_context("spawn")


def _exit_with_parent(parent: int, interval: float) -> None:
    """A daemon thread that ends this worker once ``parent`` is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class _Terminate(BaseException):
    """SIGTERM in a worker busy with a call: unwinds the call (its cleanup runs), then the worker exits."""


_in_call = False


def _on_sigterm(signum: int, frame: Any) -> None:
    """Worker SIGTERM handler: unwind the running call (see :func:`_call`), or exit at once when idle."""
    if _in_call:
        raise _Terminate()
    os._exit(128 + signum)


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` in a worker; on SIGTERM, let its ``finally`` blocks run (a run's lock is released, a
    half-written temporary file removed), then exit the worker instead of taking the next call."""
    global _in_call
    try:
        _in_call = True
        try:
            return fn(*args, **kwargs)
        finally:
            _in_call = False
    except _Terminate:
        os._exit(128 + signal.SIGTERM)


def _init_worker(parent: int, interval: float, progress: Connection) -> None:
    """Worker initializer: leave Ctrl-C to the parent, exit with it, send training progress to it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _exit_with_parent(parent, interval)

    def send(run: str, done: int, total: int) -> None:
        try:  # one small message is one atomic write to the pipe, so workers need no lock to share it
            progress.send((run, done, total))
        except OSError:  # the parent stopped listening: train on without reports
            set_reporter(None)

    set_reporter(send)


@contextmanager
def _signals_ignored(*signums: int) -> Iterator[None]:
    """Ignore ``signums`` in this process while the block runs (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: a handler installed outside Python, which cannot be restored
                signal.signal(signum, handler)


class ProcessPool:
    """A ``spawn`` process pool of ``jobs`` workers for robustrl's runs; use it as a context manager.

    Leaving the ``with`` block normally waits for every submitted call; leaving it with an exception
    (``KeyboardInterrupt`` included) cancels the calls not started and terminates the workers at once
    (:meth:`terminate`). The workers ignore SIGINT: a terminal's Ctrl-C reaches the whole process
    group, and only the parent must act on it.
    """

    def __init__(self, jobs: int, interval: float = 0.5) -> None:
        self._reader, writer = _SPAWN.Pipe(duplex=False)
        # One call per worker process: the memory a run's rollouts leave with the C allocator (hundreds of Box2D
        # LunarLanders side by side leave ~1 GB freed but not returned) goes back to the system when the run is
        # done, instead of piling up in a worker that serves run after run (one reached 13 GB).
        self._executor = ProcessPoolExecutor(max_workers=jobs, mp_context=_SPAWN, initializer=_init_worker,
                                             initargs=(os.getpid(), interval, writer), max_tasks_per_child=1)
        self._writer = writer
        self._bars = RunBars()
        self._listening = True
        self._listener = threading.Thread(target=self._listen, name="run-progress", daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        while self._listening:
            try:
                if self._reader.poll(0.1):
                    self._bars.update(*self._reader.recv())
            except (EOFError, OSError):
                return

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)`` in a worker.

        A worker started here inherits SIGINT ignored, so a Ctrl-C while it starts up cannot interrupt it
        half-way (its initializer then keeps it ignored).
        """
        with _signals_ignored(signal.SIGINT):
            return self._executor.submit(_call, fn, *args, **kwargs)

    def shutdown(self) -> None:
        """Wait for every submitted call, then stop the workers."""
        self._executor.shutdown(wait=True)
        self._stop_listening()

    def terminate(self, timeout: float = 5.0) -> None:
        """Cancel the calls not started, terminate the workers, wait up to ``timeout`` s for them (then kill).

        A worker ends its call on SIGTERM as on an exception, so the run it trains releases its lock and
        leaves no temporary file, and exits. Signals that would interrupt this cleanup half-way (a second
        Ctrl-C) are ignored meanwhile.
        """
        with _signals_ignored(signal.SIGINT, signal.SIGTERM):
            # The executor keeps its workers in ``_processes`` (Python 3.14 adds terminate_workers for this).
            processes = list((getattr(self._executor, "_processes", None) or {}).values())
            self._executor.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
            deadline = time.monotonic() + timeout
            for process in processes:
                process.join(max(deadline - time.monotonic(), 0.0))
                if process.is_alive():
                    process.kill()
                    process.join(1.0)
            self._stop_listening()

    def _stop_listening(self) -> None:
        self._listening = False
        self._listener.join(1.0)
        self._bars.close()
        self._reader.close()
        self._writer.close()

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.shutdown()
        else:
            self.terminate()


def run_calls(fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], jobs: int,
              done: Callable[[Any], None] | None = None) -> None:
    """Run ``fn(*args)`` for every ``args`` of ``calls`` in ``jobs`` processes; ``done(result)`` as each ends.

    With ``jobs == 1`` (or a single call) the calls run here, in order. Either way the training runs
    among them show a progress bar each. An exception, from a call, from ``done`` or a Ctrl-C, cancels the
    calls not started, ends the workers and propagates.
    """
    done = done or (lambda result: None)
    if jobs == 1 or len(calls) <= 1:
        with RunBars() as bars, reporting_to(bars.update):
            for args in calls:
                done(fn(*args))
        return
    with ProcessPool(jobs) as pool:
        for future in as_completed([pool.submit(fn, *args) for args in calls]):
            done(future.result())
