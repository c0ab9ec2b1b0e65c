"""Which ``robustrl reproduce`` outputs can be compared run by run (``--compare``)."""

import json

import pytest

from robustrl.experiments.compare import preset_difference

AGENTS = {"regular": "DQN(n_timesteps=50000)", "robust": "RobustDQN(n_timesteps=50000, rho=0.05)"}
REFERENCE = {"agents": AGENTS, "episodes": 100, "evaluation_seed": 7, "seeds": 10}


def _write(folder, **changes):
    folder.mkdir()
    (folder / "reproduce.json").write_text(json.dumps({**REFERENCE, **changes}))
    return folder


def test_fewer_seeds_or_some_agents_are_compared(tmp_path):
    reference = _write(tmp_path / "reference")
    assert preset_difference(_write(tmp_path / "same"), reference) is None
    assert preset_difference(_write(tmp_path / "subset", seeds=1, agents={"robust": AGENTS["robust"]}),
                             reference) is None


@pytest.mark.parametrize("changes, named", [
    ({"seeds": 11}, "seeds: 11 vs 10"),
    ({"episodes": 20}, "episodes: 20 vs 100"),
    ({"evaluation_seed": 8}, "evaluation_seed"),
    ({"agents": {"sa-dqn": "SADQN()"}}, "agent 'sa-dqn' is not in"),
    ({"agents": {"robust": "RobustDQN(n_timesteps=50000, rho=0.1)"}}, "agent 'robust': "),
])
def test_other_settings_are_named(tmp_path, changes, named):
    reference = _write(tmp_path / "reference")
    assert named in preset_difference(_write(tmp_path / "other", **changes), reference)


def test_a_missing_record_is_named(tmp_path):
    reference = _write(tmp_path / "reference")
    (tmp_path / "empty").mkdir()
    assert preset_difference(tmp_path / "empty", reference) == f"{tmp_path / 'empty' / 'reproduce.json'} does not exist"
