"""Pinned CPU kernels: the same training bits on every x86-64 CPU with AVX2.

The math libraries under PyTorch and NumPy pick their kernels by CPU, and kernels for different instruction sets
sum in different orders, so a training run that is bit-identical twice on one machine parts from itself on
another (a sampled robust target amplifies the last bit within a few thousand steps). Four libraries choose:

- oneMKL (PyTorch's BLAS on x86-64: every linear layer) takes its code branch from ``MKL_CBWR`` (conditional
  numerical reproducibility); ``AVX2`` pins the AVX2 branch on every CPU that has AVX2, Intel or AMD, whatever
  ``MKL_ENABLE_INSTRUCTIONS`` says;
- ATen (PyTorch's own vectorised kernels: reductions, ``exp``, ``log1p`` ...) takes its width from
  ``ATEN_CPU_CAPABILITY``; ``avx2`` uses the 256-bit kernels on AVX2 and AVX-512 machines alike;
- oneDNN (PyTorch's convolutions, the supervised half's CNNs) takes its widest instruction set from
  ``ONEDNN_MAX_CPU_ISA``; ``AVX2`` keeps AVX-512 machines on the AVX2 kernels;
- NumPy (the environments' physics) dispatches some ufuncs to AVX-512 code; ``NPY_DISABLE_CPU_FEATURES`` turns
  those targets off, so AVX2 and AVX-512 machines run the same loops (the target names are NumPy 2.4's; an older
  NumPy, whose AVX-512 targets have other names, keeps its AVX-512 loops).

Each variable acts only when set before the library is first imported. ``import robustrl`` calls
:func:`pin_kernels` first thing, and sets them in ``os.environ``, so every process robustrl starts (process pools,
Ray workers) inherits them. A user's own value of one of these variables is overridden while the mode is
``pinned`` (the default), because the point of the mode is that the bits do not depend on the machine or the
shell; ``ROBUSTRL_KERNELS=native`` leaves the environment alone (the machine's fastest kernels; runs then replay
only on the same CPU). Every run records the mode it trained in (:func:`kernel_report`).

What does not hold: a CPU without AVX2 (MKL falls back to another branch) and non-x86 machines (ARM: no MKL, other
kernels) train to other bits; the evaluation of a committed model (float64 greedy rollouts) still replays there.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from types import MappingProxyType
from typing import Any

__all__ = ["ISA_FLAGS", "KERNELS_VARIABLE", "KERNEL_MODES", "PINNED_VARIABLES", "UNSET_WHEN_PINNED",
           "cpu_features", "cpu_name", "kernel_environment", "kernel_mode", "kernel_report", "pin_kernels"]

#: The environment variable that chooses the mode: ``pinned`` (default) or ``native``.
KERNELS_VARIABLE = "ROBUSTRL_KERNELS"
#: The modes: ``pinned`` sets :data:`PINNED_VARIABLES`; ``native`` leaves the machine's kernels.
KERNEL_MODES = ("pinned", "native")
#: What the pinned mode sets, before torch and numpy are imported.
PINNED_VARIABLES = MappingProxyType({
    "MKL_CBWR": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
})
#: What the pinned mode removes: it would otherwise narrow MKL below the pinned branch on some CPUs.
UNSET_WHEN_PINNED = ("MKL_ENABLE_INSTRUCTIONS",)

#: Libraries that read the variables at import: the mode is ``late`` for the ones imported before the pin.
_READERS = {"torch": ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"),
            "numpy": ("NPY_DISABLE_CPU_FEATURES",)}
_state: dict[str, Any] = {}


def kernel_mode(environ: Any = None) -> str:
    """The mode asked for by ``ROBUSTRL_KERNELS`` (default ``pinned``, also when empty); ``ValueError`` naming the
    variable for another value."""
    environ = os.environ if environ is None else environ
    mode = environ.get(KERNELS_VARIABLE, "pinned").strip().lower() or "pinned"
    if mode not in KERNEL_MODES:
        raise ValueError(f"{KERNELS_VARIABLE} must be one of {KERNEL_MODES}, got {KERNELS_VARIABLE}="
                         f"{environ.get(KERNELS_VARIABLE)!r}")
    return mode


def pin_kernels() -> str:
    """Set the pinned kernels' variables in ``os.environ`` (unless ``ROBUSTRL_KERNELS=native``); returns the mode.

    Idempotent. Libraries already imported keep the kernels they chose: :func:`kernel_report` then says
    ``late`` and names them, and a run trained so does not promise to replay on another CPU. An unknown
    ``ROBUSTRL_KERNELS`` warns, naming it, and pins (this runs at ``import robustrl``, where an exception would
    leave no package to report it with), as PyTorch ignores an unknown ``ATEN_CPU_CAPABILITY`` with a warning.
    """
    if _state:
        return _state["mode"]
    try:
        mode = kernel_mode()
    except ValueError as err:
        warnings.warn(f"{err}; using 'pinned'", RuntimeWarning, stacklevel=2)
        mode = "pinned"
    late = sorted(name for name in _READERS if name in sys.modules)
    if mode == "pinned":
        for name, value in PINNED_VARIABLES.items():
            if name in _READERS["torch"] and "torch" in late:
                continue  # too late to act; leave the environment saying what the process really runs
            if name == "NPY_DISABLE_CPU_FEATURES" and "numpy" in late:
                continue
            os.environ[name] = value
        for name in UNSET_WHEN_PINNED:
            os.environ.pop(name, None)
    _state.update(mode=mode, late=late)
    return mode


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one), for the records of kernel measurements."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


#: The vector-instruction flags of /proc/cpuinfo that decide which kernels a CPU can run (x86-64, then ARM).
ISA_FLAGS = ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
             "asimd", "sve", "sve2", "bf16", "i8mm")


def cpu_features(cpuinfo: str | None = None) -> list[str]:
    """The CPU's vector-instruction flags among :data:`ISA_FLAGS`, in that order, read from ``cpuinfo`` (the text
    of /proc/cpuinfo; default: this machine's) for the records of runs; ``[]`` where there is no such file.

    Two machines whose model names agree ("AMD EPYC") can differ here (AVX-512 or not), and a run that replays
    across them is the check that the pinned kernels hold."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as info:
                cpuinfo = info.read()
        except OSError:
            return []
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            present = set(value.split())
            return [flag for flag in ISA_FLAGS if flag in present]
    return []


def kernel_environment() -> dict[str, str]:
    """The variables a worker process started elsewhere (a Ray worker on another node, which does not inherit this
    process's environment) needs to run this process's kernels: the pinned ones and the mode, or only
    ``ROBUSTRL_KERNELS=native``. ``MKL_ENABLE_INSTRUCTIONS`` cannot be unset that way; it is set to the pinned
    branch, which it then cannot narrow."""
    if pin_kernels() == "native":
        return {KERNELS_VARIABLE: "native"}
    return {KERNELS_VARIABLE: "pinned", **PINNED_VARIABLES, "MKL_ENABLE_INSTRUCTIONS": PINNED_VARIABLES["MKL_CBWR"]}


def kernel_report() -> dict[str, Any]:
    """What a run records about its kernels: ``{"mode": "pinned" | "native" | "late", ...}``.

    ``late`` means the pinned mode was asked for but torch or numpy had been imported before robustrl (the
    libraries named under ``"imported_before"``); the variables as the process sees them, the capability
    ATen really uses and the CPU (``"cpu": {"name", "features"}``: :func:`cpu_name`, :func:`cpu_features`) are
    recorded too.
    """
    mode = pin_kernels()
    late = [name for name in _state["late"] if mode == "pinned"]
    report: dict[str, Any] = {"mode": "late" if late else mode}
    if late:
        report["imported_before"] = late
    for name in (*PINNED_VARIABLES, *UNSET_WHEN_PINNED):
        if name in os.environ:
            report[name] = os.environ[name]
    if "torch" in sys.modules:
        report["aten_capability"] = sys.modules["torch"].backends.cpu.get_cpu_capability()
    report["cpu"] = {"name": cpu_name(), "features": cpu_features()}
    return report
