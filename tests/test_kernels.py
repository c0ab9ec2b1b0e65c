"""Pinned CPU kernels: training gives the same bytes under emulated CPUs, and a user's variables mean what we say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robustrl.kernels import KERNELS_VARIABLE, PINNED_VARIABLES, kernel_mode

#: Two emulated CPUs: an AVX2 machine, and a machine whose MKL, ATen and NumPy use pre-AVX2 kernels.
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
OLDER = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "NPY_DISABLE_CPU_FEATURES": "X86_V3",
         "ONEDNN_MAX_CPU_ISA": "SSE41"}

TINY_RUN = """
import hashlib, sys
import robustrl
from robustrl.experiments import RunSpec, train_run
overrides = {"n_timesteps": 400, "learning_starts": 200, "train_freq": 50, "gradient_steps": 8, "eval_freq": 200,
             "eval_episodes": 2, "policy_kwargs": {"net_arch": [32, 32]}}
run = train_run(RunSpec("robust", 0, overrides=overrides), sys.argv[1])
print(hashlib.sha256((run / "best.pt").read_bytes() + (run / "curve.csv").read_bytes()).hexdigest())
"""

REPORT = """
import json, os
import robustrl, torch
from robustrl.kernels import kernel_report
print(json.dumps({"report": kernel_report(), "environ": {k: os.environ.get(k) for k in
      ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "NPY_DISABLE_CPU_FEATURES",
       "MKL_ENABLE_INSTRUCTIONS")}}))
"""


def _environ(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*PINNED_VARIABLES, KERNELS_VARIABLE,
                                                             "MKL_ENABLE_INSTRUCTIONS")}
    return {**env, **changes}


def _python(code: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _output(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out.strip().splitlines()[-1]


def test_tiny_training_gives_the_same_bytes_under_two_emulated_cpus(tmp_path: Path) -> None:
    runs = {name: _python(TINY_RUN, _environ(**cpu, **mode), str(tmp_path / name))
            for name, cpu, mode in (("pinned-avx2", AVX2, {}), ("pinned-older", OLDER, {}),
                                    ("native-avx2", AVX2, {KERNELS_VARIABLE: "native"}),
                                    ("native-older", OLDER, {KERNELS_VARIABLE: "native"}))}
    digests = {name: _output(process) for name, process in runs.items()}
    assert digests["pinned-avx2"] == digests["pinned-older"]
    # the emulation bites: left to the machine's kernels, the two "CPUs" train to other bytes
    assert digests["native-avx2"] != digests["native-older"]
    meta = json.loads(next((tmp_path / "pinned-older").glob("*/meta.json")).read_text())
    assert meta["kernels"]["mode"] == "pinned" and meta["kernels"]["aten_capability"] != "DEFAULT"


@pytest.mark.slow  # two CNN trainings: the RL test above already shows the mechanism in the default suite
def test_tiny_supervised_training_gives_the_same_bytes_under_two_emulated_cpus(tmp_path: Path) -> None:
    robustrl = str(Path(sys.executable).parent / "robustrl")
    runs = {name: subprocess.Popen(
        [robustrl, "supervised", "train", "--dataset", "digits", "--method", "ifgm-at", "--epochs", "1",
         "--n-train", "200", "--n-test", "20", "--threads", "1", "--no-progress", "--out", str(tmp_path / name)],
        env=_environ(**cpu), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for name, cpu in (("avx2", AVX2), ("older", OLDER))}
    for process in runs.values():
        assert process.wait(timeout=300) == 0, process.stderr.read() if process.stderr else ""
    weights = [(tmp_path / name / "digits__ifgm-at__0.pt").read_bytes() for name in runs]
    assert weights[0] == weights[1]


#: What a fresh interpreter sees after ``import robustrl``, per environment (all started at once: one import each).
SETTINGS = {  # an unknown mode pins, so one interpreter checks both
    "pinned": (REPORT, {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AVX512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
                        "ROBUSTRL_KERNELS": "fast"}),
    "native": (REPORT, {"ROBUSTRL_KERNELS": "native", "ATEN_CPU_CAPABILITY": "default"}),
    "late": ("import torch\n" + REPORT, {}),
}


@pytest.fixture(scope="module")
def seen() -> dict[str, tuple[dict, str]]:
    """``{setting: (the printed report, stderr)}`` of one interpreter per :data:`SETTINGS` entry."""
    processes = {name: _python(code, _environ(**env)) for name, (code, env) in SETTINGS.items()}
    results = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results[name] = (json.loads(out.strip().splitlines()[-1]), err)
    return results


def test_pinned_mode_overrides_the_users_kernel_variables(seen) -> None:
    report = seen["pinned"][0]
    assert report["environ"] == {**PINNED_VARIABLES, "MKL_ENABLE_INSTRUCTIONS": None}
    assert report["report"]["mode"] == "pinned"


def test_native_mode_leaves_the_users_kernel_variables(seen) -> None:
    report = seen["native"][0]
    assert report["environ"]["ATEN_CPU_CAPABILITY"] == "default" and report["environ"]["MKL_CBWR"] is None
    assert report["report"]["mode"] == "native" and report["report"]["aten_capability"] == "DEFAULT"


def test_torch_imported_first_is_reported_late(seen) -> None:
    report = seen["late"][0]
    assert report["report"]["mode"] == "late" and "torch" in report["report"]["imported_before"]
    assert report["environ"]["MKL_CBWR"] is None  # not set: the process does not run the pinned kernels


def test_unknown_mode_is_an_error_naming_the_variable_and_import_warns(seen) -> None:
    with pytest.raises(ValueError, match="ROBUSTRL_KERNELS.*'fast'"):
        kernel_mode({KERNELS_VARIABLE: "fast"})
    assert kernel_mode({KERNELS_VARIABLE: ""}) == "pinned"
    report, err = seen["pinned"]
    assert "ROBUSTRL_KERNELS" in err and "'fast'" in err
    assert report["report"]["mode"] == "pinned"


ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512_bf16 avx512_vnni
"""
GRAVITON = """processor\t: 0
Features\t: fp asimd evtstrm aes sha2 crc32 atomics sve i8mm bf16 sve2
"""


def test_cpu_features_reads_the_vector_flags_that_decide_the_kernels() -> None:
    from robustrl.kernels import cpu_features

    assert cpu_features(ZEN4) == ["sse4_2", "avx", "fma", "avx2", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert cpu_features(GRAVITON) == ["asimd", "sve", "sve2", "bf16", "i8mm"]
    assert cpu_features(ZEN4.replace(" avx512f avx512dq avx512_bf16 avx512_vnni", "")) == [
        "sse4_2", "avx", "fma", "avx2"]
    assert cpu_features("model name\t: unknown\n") == []


def test_a_run_records_its_cpu(seen) -> None:
    report = seen["pinned"][0]["report"]
    assert set(report["cpu"]) == {"name", "features"} and isinstance(report["cpu"]["features"], list)
