"""SA-DQN: kappa = 0 is DQN bit for bit, the hinge is the SA-DQN margin at the PGD point (or the entropic risk of
sampled hinges), eps ramps from 0; RobustSADQN: kappa = 0 is RobustDQN and rho = 0 is SADQN, bit for bit."""

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import DQN

import robustrl  # noqa: F401
from robustrl.agents import SADQN, AgentConfig, RobustDQN, RobustSADQN, load_config
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
    both = AgentConfig.resolve(load_config(), "robustrl/CartPole-v1", "sa-dqn", {"rho": 0.05, "eta": 0.01})
    assert both.algo == "RobustSADQN"
    for key, value, message in (("sa_loss", "fgsm", "sa_loss must be one of"), ("sa_eta", -1.0, "sa_eta must be"),
                                ("sa_eta", "hot", "sa_eta must be"), ("sa_samples", 0, "sa_samples")):
        with pytest.raises(ValueError, match=message):
            AgentConfig.resolve(load_config(), "robustrl/CartPole-v1", "sa-dqn", {key: value})
    with pytest.raises(ValueError, match="explicit state_scale"):
        RobustSADQN("MlpPolicy", env(), state_scale="auto", **TINY)


def test_the_hinge_floor_stops_the_gradient_of_states_already_robust_enough():
    model = SADQN("MlpPolicy", env(), kappa=1.0, sa_eps=0.01, hinge_c=0.0, state_scale=SCALE, seed=0, **TINY)
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, []))
    model._current_progress_remaining = 0.0
    data = batch()
    term = model._regularizer(data, model.q_net(data.observations))
    # with c = 0 a state contributes only while the attack flips its greedy action: tiny eps flips almost none
    assert float(term) >= 0.0


def test_robust_sa_dqn_with_kappa_zero_is_robust_dqn_and_with_rho_zero_is_sa_dqn():
    robust = dict(rho=0.05, eta=0.01, n_samples=4, state_scale=SCALE)
    both = RobustSADQN("MlpPolicy", env(), kappa=0.0, seed=3, **robust, **TINY).learn(400)
    alone = RobustDQN("MlpPolicy", env(), seed=3, **robust, **TINY).learn(400)
    for a, b in zip(weights(both), weights(alone)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    robust_only = weights(alone)
    sa = dict(kappa=0.5, sa_eps=0.1, sa_ramp=0.1, sa_steps=2, state_scale=SCALE)
    both = RobustSADQN("MlpPolicy", env(), rho=0.0, seed=3, **sa, **TINY).learn(400)
    alone = SADQN("MlpPolicy", env(), seed=3, **sa, **TINY).learn(400)
    for a, b in zip(weights(both), weights(alone)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with_hinge = RobustSADQN("MlpPolicy", env(), seed=3, **{**robust, **sa}, **TINY).learn(400)
    assert any(not torch.equal(a, b) for a, b in zip(weights(with_hinge), robust_only))


@pytest.mark.parametrize("sa_eta", [0.0, 0.5, float("inf")])
def test_the_sampled_hinge_is_the_entropic_risk_of_the_hinges_at_points_sampled_in_the_ball(sa_eta):
    from stable_baselines3.common.logger import configure

    from robustrl.attacks import margin
    from robustrl.estimators import perturb

    model = SADQN("MlpPolicy", env(), kappa=2.0, sa_eps=0.1, hinge_c=3.0, sa_loss="sampled", sa_eta=sa_eta,
                  sa_samples=8, state_scale=SCALE, seed=0, **TINY)
    model.set_logger(configure(None, []))
    model._current_progress_remaining = 0.0
    data = batch()
    q = model.q_net(data.observations)
    state = model._attack_generator.get_state()
    term = model._regularizer(data, q)
    model._attack_generator.set_state(state)
    points = perturb(data.observations, 0.1, 8, scale=torch.tensor(SCALE), generator=model._attack_generator)
    labels = q.argmax(1)
    with torch.no_grad():
        hinges = (-margin(model.q_net(points.reshape(-1, 4)), labels.repeat_interleave(8))).clamp(min=-3.0).view(8, 8)
    assert (points - data.observations[:, None]).abs().div(torch.tensor(SCALE)).max() <= 0.1 + 1e-6
    if sa_eta == 0.0:
        expected = hinges.max(1).values.mean()
    elif sa_eta == float("inf"):
        expected = hinges.mean(1).mean()
    else:
        expected = (sa_eta * (torch.logsumexp(hinges / sa_eta, 1) - torch.log(torch.tensor(8.0)))).mean()
    torch.testing.assert_close(term.detach(), 2.0 * expected, rtol=1e-5, atol=1e-6)
    term.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.q_net.parameters())
