"""SA-DQN: kappa = 0 is DQN bit for bit, the hinge is the SA-DQN margin at the PGD point, eps ramps from 0."""

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import DQN

import robustrl  # noqa: F401
from robustrl.agents import SADQN, AgentConfig, load_config
from tests.agents.test_robust_dqn import SCALE, TINY, batch, weights


def env():
    return gym.make("robustrl/CartPole-v1")


def test_kappa_zero_learns_exactly_like_dqn():
    sa = SADQN("MlpPolicy", env(), kappa=0.0, state_scale=SCALE, seed=1, **TINY).learn(400)
    regular = DQN("MlpPolicy", env(), seed=1, **TINY).learn(400)
    for a, b in zip(weights(sa), weights(regular)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_regularizer_is_kappa_times_the_hinge_of_the_margin_at_the_attacked_states():
    model = SADQN("MlpPolicy", env(), kappa=0.5, sa_eps=0.2, sa_ramp=0.5, hinge_c=10.0, state_scale=SCALE, seed=0,
                  **TINY)
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, []))
    data = batch()
    q = model.q_net(data.observations)
    model._current_progress_remaining = 1.0
    assert model.current_eps() == 0.0 and model._regularizer(data, q) is None  # eps starts at 0
    model._current_progress_remaining = 0.75  # a quarter done: half of the ramp
    assert model.current_eps() == pytest.approx(0.1)
    model._current_progress_remaining = 0.2
    assert model.current_eps() == pytest.approx(0.2)
    term = model._regularizer(data, q)
    labels = q.argmax(1)
    from robustrl.attacks import margin

    with torch.no_grad():
        clean = (-margin(model.q_net(data.observations), labels)).clamp(min=-10.0).mean()
    assert term.requires_grad and float(term) >= 0.5 * float(clean) - 1e-6  # the attack raises the hinge
    assert float(term) >= -0.5 * 10.0 - 1e-6  # floored at -c
    term.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.q_net.parameters())


def test_sa_dqn_config_and_bad_values():
    cfg = AgentConfig.resolve(load_config(), "robustrl/CartPole-v1", "sa-dqn")
    assert cfg.algo == "SADQN" and cfg.robust_kwargs["kappa"] > 0
    with pytest.raises(ValueError, match="sa_ramp must be in"):
        SADQN("MlpPolicy", env(), sa_ramp=0.0, **TINY)
    with pytest.raises(ValueError, match="kappa must be finite and >= 0"):
        AgentConfig.resolve(load_config(), "robustrl/CartPole-v1", "sa-dqn", {"kappa": -1})
    with pytest.raises(ValueError, match="mixes SA-DQN keys"):
        AgentConfig.resolve(load_config(), "robustrl/CartPole-v1", "sa-dqn", {"eta": 1.0})


def test_the_hinge_floor_stops_the_gradient_of_states_already_robust_enough():
    model = SADQN("MlpPolicy", env(), kappa=1.0, sa_eps=0.01, hinge_c=0.0, state_scale=SCALE, seed=0, **TINY)
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, []))
    model._current_progress_remaining = 0.0
    data = batch()
    term = model._regularizer(data, model.q_net(data.observations))
    # with c = 0 a state contributes only while the attack flips its greedy action: tiny eps flips almost none
    assert float(term) >= 0.0
