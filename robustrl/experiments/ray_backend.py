"""Ray as a backend for robustrl's parallel work (sweeps and ``robustrl reproduce``): the same calls as the local
process pool, submitted as Ray tasks of one CPU each (``pip install 'robustrl[ray]'``).

Without an address a local Ray instance is started with as many CPUs as jobs, and shut down afterwards; with one
(``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``) the calls go to that cluster, whose nodes must all see the runs
folder. Every call seeds itself and uses one torch thread, and its worker gets this process's CPU kernels
(:func:`robustrl.kernels.kernel_environment`), so the numbers do not depend on the backend.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from robustrl.checks import check_option
from robustrl.kernels import kernel_environment

__all__ = ["BACKENDS", "check_backend", "check_ray_address", "require_ray", "run_calls_on_ray"]

#: Where parallel work runs: the local process pool or Ray.
BACKENDS = ("local", "ray")


def check_backend(backend: str, address: str | None) -> None:
    """``ValueError`` for an unknown backend, an address without Ray, Ray not installed, or nothing at the address."""
    check_option(backend, BACKENDS, "backend")
    if address and backend != "ray":
        raise ValueError("--address is only used by the ray backend")
    if backend == "ray":
        require_ray()
        if address:
            check_ray_address(address)


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast (``ValueError``) if nothing listens at a ``HOST:PORT`` or ``ray://HOST:PORT`` address."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"Ray address must look like HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ValueError(f"cannot reach a Ray cluster at {address!r}: {err}") from None


def require_ray() -> Any:
    """The ``ray`` module, or a ``ValueError`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError("the ray backend needs Ray: pip install 'robustrl[ray]'") from None
    return ray


def run_calls_on_ray(fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], jobs: int, address: str | None,
                     done: Callable[[Any], None]) -> None:
    """Run ``fn(*args)`` for every ``args`` of ``calls`` as Ray tasks; ``done(result)`` as each ends.

    An exception (from a call, from ``done``, or a Ctrl-C) cancels the tasks not finished and propagates.
    """
    ray = require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=jobs, **kwargs)
    try:
        # a cluster's workers do not inherit this process's environment: hand them the pinned CPU kernels
        remote = ray.remote(num_cpus=1, max_retries=0, runtime_env={"env_vars": kernel_environment()})(fn)
        pending = [remote.remote(*args) for args in calls]
        try:
            while pending:
                finished, pending = ray.wait(pending, num_returns=1)
                done(ray.get(finished[0]))
        except BaseException:  # Ctrl-C included: a cluster would otherwise train the queued runs on
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started_here:
            ray.shutdown()
