"""Ctrl-C, SIGKILL, the run-folder lock and the training progress counter."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import yaml

from robustrl.cli import main
from robustrl.experiments.locks import LOCK_NAME, run_lock
from robustrl.experiments.training import is_complete

TINY = ["n_timesteps=300", "learning_starts=100", "eval_freq=150", "eval_episodes=2", "batch_size=16",
        "buffer_size=1000", "gradient_steps=4", "policy_kwargs={net_arch: [16, 16]}"]
LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _train(out: Path, *extra: str) -> int:
    return main(["train", "--agent", "regular", "--out", str(out), "--no-progress", "--set", *TINY, *extra])


def test_a_second_train_on_a_run_folder_refuses_naming_the_holder(tmp_path, capsys):
    run_dir = tmp_path / "CartPole-v1__regular__0"
    run_dir.mkdir()
    with run_lock(run_dir):  # another open of the lock file: as good as another process
        assert _train(tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("robustrl: error: ")
    assert f"run folder {run_dir} is in use by pid {os.getpid()}" in err
    assert sorted(p.name for p in run_dir.iterdir()) == [], "the refused train wrote into the folder"


def test_a_lock_file_left_by_a_killed_train_does_not_block_the_next(tmp_path):
    run_dir = tmp_path / "CartPole-v1__regular__0"
    run_dir.mkdir()
    (run_dir / LOCK_NAME).write_text("pid 999999999 on elsewhere (robustrl train, SIGKILLed)\n")
    assert _train(tmp_path) == 0
    assert is_complete(run_dir) and not (run_dir / LOCK_NAME).exists()


def test_progress_counter_ends_at_the_steps_trained_and_never_overshoots(tmp_path, capsys):
    # n_timesteps=300 with train_freq=256 trains two whole rollouts: 512 steps (SB3's bar read "512/300").
    assert main(["train", "--agent", "regular", "--out", str(tmp_path), "--set", *TINY]) == 0
    captured = capsys.readouterr()
    counts = [(int(a.replace(",", "")), int(b.replace(",", "")))
              for a, b in re.findall(r"(\d[\d,]*)/(\d[\d,]*)", captured.out + captured.err)]
    assert counts, "no progress was shown"
    assert all(done <= total for done, total in counts), counts
    assert counts[-1] == (512, 512)


def _workers(pid: int) -> list[int]:
    """Pids of the live multiprocessing workers whose parent is ``pid`` (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(parent) == pid and state != "Z" and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


@contextmanager
def _long_sweep(tmp_path: Path, seeds: int) -> Iterator[tuple[subprocess.Popen, Path, list[int], list[str]]]:
    """A ``robustrl sweep --jobs 2`` of runs far too long to finish, once both workers report training.

    Yields the process, its runs folder, its workers and the lines of its stderr so far (growing);
    whatever the test does, the sweep's process group is killed at the end.
    """
    spec = {"name": "long", "agents": ["regular"], "seeds": seeds, "grid": {"learning_rate": [0.001]},
            "overrides": {"n_timesteps": 10_000_000, "learning_starts": 100, "eval_freq": 10_000_000,
                          "eval_episodes": 2, "policy_kwargs": {"net_arch": [16, 16]}},
            "evaluation": {"ids": ["robustrl/CartPole-v1"], "episodes": 2}}
    (tmp_path / "long.yml").write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    argv = [sys.executable, "-m", "robustrl.cli", "sweep", str(tmp_path / "long.yml"), "--jobs", "2",
            "--runs", str(runs), "--out", str(tmp_path / "out")]
    # A command started in the background of a non-interactive shell (as a CI runner may start the tests)
    # inherits SIGINT ignored, and Python then leaves it ignored; a terminal's Ctrl-C reaches a command
    # that handles it, so the sweep starts with the default disposition, as from a terminal.
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: [lines.append(line) for line in proc.stderr], daemon=True)
    reader.start()
    try:
        deadline = time.time() + 120  # generous: a loaded machine starts spawn workers slowly
        while time.time() < deadline and proc.poll() is None:
            if len({m for line in lines for m in re.findall(r"(\S+__\d): 0/10,000,\d+ steps", line)}) == 2:
                break
            time.sleep(0.05)
        workers = _workers(proc.pid)
        if len(workers) != 2 or proc.poll() is not None:
            pytest.fail(f"the sweep never showed two runs training: {''.join(lines)[-2000:]}")
        yield proc, runs, workers, lines
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(5)


def _assert_nothing_half_written(tmp_path: Path) -> None:
    assert not list(tmp_path.rglob("meta.json")), "an interrupted run was marked complete"
    assert not list(tmp_path.rglob("*.tmp"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@LINUX
def test_ctrl_c_stops_a_parallel_sweep_within_seconds(tmp_path):
    # Each running run shows its progress (here as log lines: stderr is not a terminal).
    with _long_sweep(tmp_path, seeds=3) as (proc, runs, workers, lines):  # two runs train, one is queued
        start = time.time()
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C: the whole process group
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the sweep was still running 10 s after Ctrl-C; its stderr: {''.join(lines)[-1500:]}")
    err = "".join(lines)
    assert proc.returncode == 130, err
    assert time.time() - start < 10
    assert not _alive(workers), "pool workers outlived the interrupted sweep"
    assert "robustrl: interrupted. Rerun `robustrl sweep" in err and "again from step 0" in err
    assert "leaked" not in err and "Traceback" not in err, err
    started = {m for line in lines for m in re.findall(r"(\S+__\d): [\d,]+/", line)}
    assert len(started) == 2, f"the queued run was started: {sorted(started)}"
    # no interrupted run leaves an empty run folder (and an emptied runs folder the command made goes too)
    assert not runs.exists() or all(any(d.iterdir()) for d in runs.iterdir()), "an empty run folder is left"
    assert not list(runs.rglob(LOCK_NAME)), "the stopped runs kept their locks"
    _assert_nothing_half_written(tmp_path)


@LINUX
def test_killed_sweep_ends_its_workers_and_its_locks(tmp_path, capsys):
    with _long_sweep(tmp_path, seeds=2) as (proc, runs, workers, _):
        # A train into a folder a sweep worker trains into refuses, naming the worker.
        assert main(["train", "--agent", "regular", "--seed", "0", "--tag", "learning_rate0.001",
                     "--out", str(runs), "--set", *TINY]) == 2
        err = capsys.readouterr().err
        assert "CartPole-v1__regular-learning_rate0.001__0 is in use by pid " in err
        assert any(f"pid {w} " in err for w in workers), err
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 5  # the workers notice within half a second; unfixed, they train for hours
        while _alive(workers) and time.time() < deadline:
            time.sleep(0.05)
        assert not _alive(workers), "pool workers outlived the killed sweep"
    _assert_nothing_half_written(tmp_path)
    for run_dir in runs.iterdir():  # the killed workers' lock files are left, but not held
        assert (run_dir / LOCK_NAME).is_file()
        with run_lock(run_dir):
            pass


def test_each_call_of_a_process_pool_gets_a_fresh_worker():
    """Memory a call leaves with the C allocator must not pile up in a worker that serves run after run."""
    from robustrl.experiments.parallel import run_calls

    pids: list[int] = []
    run_calls(os.getpid, [(), (), ()], 2, done=pids.append)
    assert len(set(pids)) == 3 and os.getpid() not in pids
