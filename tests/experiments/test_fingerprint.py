"""The fingerprint of training's arithmetic: references that match the packaged settings, and a comparison that
tells a changed configuration from a machine that computes differently."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from robustrl.experiments.fingerprint import (FINGERPRINT_STAGES, compare_fingerprints, fingerprint_config,
                                              update_fingerprint)

REFERENCES = sorted((Path(__file__).resolve().parents[2] / "results" / "fingerprint").glob("*.json"))


def _has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def test_the_committed_references_cover_the_table_agents() -> None:
    names = {path.stem for path in REFERENCES}
    assert {"regular", "robust", "robust-mean", "robust-hard", "robust-pgd", "sa-dqn", "robust-sa",
            "domain-randomization"} <= names


@pytest.mark.parametrize("path", REFERENCES, ids=lambda path: path.stem)
def test_each_reference_was_made_with_the_packaged_configuration(path: Path) -> None:
    # A reference older than its agent's settings would report a "difference" on every machine.
    reference = json.loads(path.read_text())
    cfg = fingerprint_config(reference["agent"], env_id=reference["env_id"])
    assert reference["config"] == json.loads(json.dumps(cfg.to_dict()))


def test_the_fingerprint_takes_a_ramped_radius_at_full_value() -> None:
    assert fingerprint_config("robust").robust_kwargs["rho_ramp"] == 0.0
    assert "rho_ramp" not in fingerprint_config("regular").robust_kwargs


def _fingerprint() -> dict:
    step = {stage: f"{stage}-hash" for stage in FINGERPRINT_STAGES}
    return {"agent": "sa-dqn", "seed": 0, "env_id": "robustrl/CartPole-v1", "config": {"kappa": 0.05, "sa_eps": 0.1},
            "transitions": "t", "steps": [dict(step), dict(step)], "evaluation": "e"}


def test_compare_names_the_first_stage_that_differs() -> None:
    reference = _fingerprint()
    assert compare_fingerprints(copy.deepcopy(reference), reference) is None
    new = copy.deepcopy(reference)
    new["steps"][1]["gradients"] = "other"
    new["steps"][1]["parameters"] = "other"
    assert compare_fingerprints(new, reference) == "step 2, gradients differs (earlier stages agree)"
    new = copy.deepcopy(reference)
    new["evaluation"] = "other"
    assert compare_fingerprints(new, reference).startswith("evaluation differs")


def test_compare_tells_a_changed_configuration_from_a_machine_that_differs() -> None:
    reference = _fingerprint()
    new = copy.deepcopy(reference)
    new["config"]["kappa"] = 0.01
    new["steps"][0]["q_values"] = "other"
    verdict = compare_fingerprints(new, reference)
    assert verdict.startswith("not comparable") and "kappa" in verdict and "sa_eps" not in verdict


@pytest.mark.skipif(not _has_avx2(), reason="the pinned kernels are AVX2's: a CPU without AVX2 cannot replay them")
@pytest.mark.parametrize("agent", ["regular", "sa-dqn"])
def test_this_machine_replays_the_reference(agent: str) -> None:
    # sa-dqn also takes the input gradients of the PGD attack inside its loss
    reference = json.loads((REFERENCES[0].parent / f"{agent}.json").read_text())
    assert compare_fingerprints(update_fingerprint(agent), reference) is None
