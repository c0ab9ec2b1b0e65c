"""Progress of training runs: one bar per running run, whether it trains in this process or in a worker.

A run reports ``(run, steps done, steps planned)`` through
:class:`~robustrl.experiments.training.TrainingProgress`, an SB3 callback, to the reporter of its process
(:func:`reporting_to`). The process that owns the terminal draws the reports
with :class:`RunBars`: one tqdm bar per running run below the overall bar of the command, or, when
stderr is not a terminal, a log line per tenth of each run. Pool workers send their reports to the parent
through a pipe (:mod:`robustrl.experiments.parallel`). This module does not import Stable-Baselines3 (nor
torch), so a pool worker starts without them and loads them only for a call that trains.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

__all__ = ["Reporter", "RunBars", "reporting_to", "set_reporter", "training_reports"]

#: ``reporter(run, done, total)``: ``done`` of ``total`` environment steps of ``run`` are trained.
Reporter = Callable[[str, int, int], None]

_reporter: Reporter | None = None


def set_reporter(report: Reporter | None) -> None:
    """Send the progress of the runs trained in this process to ``report`` from now on."""
    global _reporter
    _reporter = report


@contextmanager
def reporting_to(report: Reporter | None) -> Iterator[None]:
    """Send the progress of the runs trained in this process to ``report`` while the block runs."""
    previous = _reporter
    set_reporter(report)
    try:
        yield
    finally:
        set_reporter(previous)


class RunBars:
    """Draws the progress reports of runs: a tqdm bar per running run, or log lines off a terminal.

    Thread-safe (a pool's reports arrive on a reader thread). A run's bar closes when it reports
    ``done >= total``; :meth:`close` closes the bars of runs that never finished.
    """

    def __init__(self, tty: bool | None = None, file: Any = None) -> None:
        self.file = file if file is not None else sys.stderr
        self.tty = tty if tty is not None else bool(getattr(self.file, "isatty", lambda: False)())
        self._bars: dict[str, Any] = {}
        self._logged: dict[str, int] = {}
        self._lock = threading.Lock()

    def update(self, run: str, done: int, total: int) -> None:
        """Show that ``done`` of ``total`` steps of ``run`` are trained."""
        with self._lock:
            if self.tty:
                self._update_bar(run, done, total)
            else:
                self._log(run, done, total)

    def _update_bar(self, run: str, done: int, total: int) -> None:
        bar = self._bars.get(run)
        if bar is None:
            bar = self._bars[run] = tqdm(total=total, desc=run, unit="step", leave=False,
                                         file=self.file, dynamic_ncols=True)
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            self._bars.pop(run).close()

    def _log(self, run: str, done: int, total: int) -> None:
        tenth = 10 if done >= total else (10 * done) // max(total, 1)
        if self._logged.get(run, -1) < tenth:
            self._logged[run] = tenth
            tqdm.write(f"{run}: {done:,}/{total:,} steps", file=self.file)
        if done >= total:
            self._logged.pop(run, None)

    def close(self) -> None:
        """Close the bars of runs still open (interrupted or failed runs)."""
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
            self._logged.clear()

    def __enter__(self) -> RunBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def training_reports(show: bool) -> Iterator[Reporter | None]:
    """The reporter a run trained now should use: this process's, else (if ``show``) bars of its own."""
    if _reporter is not None or not show:
        yield _reporter
        return
    with RunBars() as bars:
        yield bars.update
