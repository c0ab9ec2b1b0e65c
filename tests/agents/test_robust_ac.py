"""RobustSAC and RobustTD3: SB3's agents at rho = 0, the eta limits of their target, the shared mechanism."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC, TD3

import robustrl  # noqa: F401  (registers the ids)
from robustrl.agents.robust_ac import RobustSAC, RobustTD3
from robustrl.estimators import perturb

def tiny() -> dict:
    """Tiny training settings, a fresh dict each time (SB3 adds keys to the policy_kwargs it is given)."""
    return {"learning_starts": 40, "batch_size": 16, "buffer_size": 1000, "policy_kwargs": {"net_arch": [16, 16]},
            "device": "cpu", "seed": 3}


def _weights(model) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in model.policy.parameters()]


@pytest.mark.parametrize(("robust", "plain"), [(RobustSAC, SAC), (RobustTD3, TD3)])
def test_rho_zero_is_sb3s_agent_update_for_update(robust, plain):
    th.manual_seed(0)
    ours = robust("MlpPolicy", gym.make("Pendulum-v1"), rho=0.0, **tiny()).learn(80)
    th.manual_seed(0)
    theirs = plain("MlpPolicy", gym.make("Pendulum-v1"), **tiny()).learn(80)
    assert all(np.array_equal(a, b) for a, b in zip(_weights(ours), _weights(theirs)))
    assert ours.target_history == []  # no perturbation at rho = 0


@pytest.mark.parametrize("robust", [RobustSAC, RobustTD3])
def test_a_positive_radius_changes_training_and_logs_the_targets_statistics(robust):
    th.manual_seed(0)
    model = robust("MlpPolicy", gym.make("Pendulum-v1"), rho=0.2, eta=0.5, n_samples=4,
                   state_scale=[1.0, 1.0, 8.0], **tiny()).learn(80)
    th.manual_seed(0)
    plain = robust("MlpPolicy", gym.make("Pendulum-v1"), rho=0.0, **tiny()).learn(80)
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(model), _weights(plain)))
    row = model.target_history[-1]
    assert row["q_spread"] > 0 and np.isfinite(row["target_gap"])


@pytest.mark.parametrize("robust", [RobustSAC, RobustTD3])
@pytest.mark.parametrize(("eta", "reduce"), [(float("inf"), "mean"), (0.0, "min")])
def test_the_eta_limits_are_the_mean_and_the_worst_sampled_value(robust, eta, reduce):
    model = robust("MlpPolicy", gym.make("Pendulum-v1"), rho=0.3, eta=eta, n_samples=8, **tiny())
    next_obs = th.as_tensor(np.random.default_rng(0).normal(size=(5, 3)), dtype=th.float32)
    weights = th.tensor([[1.0], [-2.0], [0.5]])

    def value(states: th.Tensor) -> th.Tensor:  # deterministic, so the samples alone decide
        return states @ weights

    state = model._perturbation_generator.get_state()
    got = model._robust_value(next_obs, value, 0.3)
    model._perturbation_generator.set_state(state)
    z = perturb(next_obs, 0.3, 8, norm="linf", generator=model._perturbation_generator)
    values = value(z.flatten(0, 1)).view(5, 8, 1)
    expected = values.mean(dim=1) if reduce == "mean" else values.amin(dim=1)
    th.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("robust", [RobustSAC, RobustTD3])
@pytest.mark.parametrize("eta_scale", ["absolute", "spread"])
def test_the_linear_estimator_is_the_closed_form_of_a_linear_value_and_its_gap_is_the_bonus(robust, eta_scale):
    from robustrl.estimators import Linearized

    model = robust("MlpPolicy", gym.make("Pendulum-v1"), rho=0.3, eta=0.5, estimator="linear", eta_scale=eta_scale,
                   state_scale=[1.0, 2.0, 8.0], **tiny())
    next_obs = th.as_tensor(np.random.default_rng(0).normal(size=(5, 3)), dtype=th.float32)
    weights = th.tensor([[1.0], [-2.0], [0.5]])
    scale = th.tensor([1.0, 2.0, 8.0])
    with th.no_grad():
        got = model._robust_value(next_obs, lambda states: states @ weights, 0.3)
        plain = model._plain_value(next_obs, lambda states: states * th.nan)  # the estimator's own evaluation
        expected = -Linearized(relative=eta_scale == "spread").estimate(
            lambda z: -(z @ weights), next_obs, rho=0.3, eta=0.5, scale=scale)
        scaled = model._robust_value(next_obs, lambda states: 10 * (states @ weights), 0.3)
    th.testing.assert_close(got, expected)
    bonus = next_obs @ weights - got
    assert (bonus > 0).all()
    if eta_scale == "spread":  # a temperature relative to the spread: rescaling the value rescales the target
        th.testing.assert_close(scaled, 10 * got)
    else:
        assert not th.allclose(scaled, 10 * got)
    th.testing.assert_close(plain, next_obs @ weights)


@pytest.mark.parametrize("robust", [RobustSAC, RobustTD3])
def test_the_linear_estimator_trains_and_records_a_nonnegative_gap(robust):
    model = robust("MlpPolicy", gym.make("Pendulum-v1"), rho=0.2, eta=0.5, estimator="linear", eta_scale="spread",
                   state_scale=[1.0, 1.0, 8.0], **tiny()).learn(90)
    row = model.target_history[-1]
    assert row["target_gap"] > 0 and "q_spread" not in row  # the gap at the same sampled action: the bonus
    assert all(np.isfinite(w).all() for w in _weights(model))


@pytest.mark.parametrize("robust", [RobustSAC, RobustTD3])
@pytest.mark.parametrize(("key", "value", "message"), [
    ("rho", -0.1, "rho"), ("eta", -1.0, "eta"), ("n_samples", 0, "n_samples"), ("norm", "l3", "norm"),
    ("estimator", "best", "estimator"), ("rho_ramp", 2.0, "rho_ramp"), ("eta_scale", "big", "eta_scale"),
    ("state_scale", [1.0, 2.0], "state_scale must have 3 entries"),
])
def test_bad_robust_hyperparameters_are_refused_naming_the_value(robust, key, value, message):
    with pytest.raises(ValueError, match=message):
        robust("MlpPolicy", gym.make("Pendulum-v1"), **{key: value}, **tiny())


def test_one_sampling_and_soft_min_implementation_serves_every_robust_agent():
    from robustrl.agents import RobustDQN
    from robustrl.agents.robust_target import RobustTargetMixin

    for agent in (RobustDQN, RobustSAC, RobustTD3):
        assert issubclass(agent, RobustTargetMixin)
        assert "_robust_value" not in vars(agent)  # none overrides the shared soft-min


@pytest.mark.parametrize("robust", [RobustSAC, RobustTD3])
def test_an_auto_state_scale_is_estimated_from_the_replay_buffer_then_frozen(robust):
    from robustrl.agents.robust_target import estimate_state_scale

    model = robust("MlpPolicy", gym.make("Pendulum-v1"), rho=0.1, state_scale="auto", state_scale_steps=50,
                   **tiny())
    assert model.current_rho() == 0.0  # the plain target until the scale exists
    model.learn(120)
    frozen = model.state_scale_frozen_at
    assert 50 <= frozen < 120 and model.current_rho() == 0.1
    expected = estimate_state_scale(model.replay_buffer.observations[:frozen, 0])
    assert model.state_scale_estimate == expected and len(expected) == 3 and min(expected) > 0
    assert model.target_history and model.target_history[0]["timesteps"] >= frozen  # no robust target before


def test_the_state_scale_estimator_is_half_the_central_98_percent_range_and_refuses_constant_data():
    from robustrl.agents.robust_target import estimate_state_scale

    data = np.stack([np.linspace(-1, 1, 1001), np.linspace(0, 10, 1001), np.zeros(1001)], axis=1)
    np.testing.assert_allclose(estimate_state_scale(data), [0.98, 4.9, 4.9e-3])
    with pytest.raises(ValueError, match="do not vary"):
        estimate_state_scale(np.zeros((10, 2)))


def test_sa_dqn_refuses_an_auto_state_scale_at_config_time():
    from robustrl.agents import AgentConfig, load_config

    with pytest.raises(ValueError, match="state_scale='auto' is for the entropic robust target"):
        AgentConfig.resolve(load_config(), "robustrl/CartPole-v1", "sa-dqn", {"state_scale": "auto"})


def test_sac_and_robust_sac_train_select_checkpoint_and_evaluate_through_the_pipeline(tmp_path):
    from robustrl.agents import AgentConfig, load_config, read_checkpoint
    from robustrl.experiments import RunSpec, evaluate_run, train_run
    from robustrl.experiments.evaluation import greedy_policy
    from robustrl.experiments.training import load_run_model

    tiny_run = {"n_timesteps": 300, "eval_freq": 150, "eval_episodes": 2, "learning_starts": 100, "batch_size": 32,
                "state_scale_steps": 150}
    config = load_config(None, "sac.yml")
    assert AgentConfig.resolve(config, "robustrl/Pendulum-v1", "regular").algo == "SAC"
    for agent, algo in (("robust", "RobustSAC"),):  # the plain SAC takes the same path (rho = 0 test above)
        overrides = {k: v for k, v in tiny_run.items() if agent == "robust" or k != "state_scale_steps"}
        assert AgentConfig.resolve(config, "robustrl/Pendulum-v1", agent, overrides).algo == algo
        run_dir = train_run(RunSpec(agent, 0, "robustrl/Pendulum-v1", overrides=overrides), tmp_path, config)
        state = read_checkpoint(run_dir / "best.pt")
        assert state["algo"] == algo and all(k.split(".")[0] in ("actor", "critic") for k in state["q_net"])
        model = load_run_model(run_dir, "best")
        obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
        np.testing.assert_allclose(greedy_policy(model, "float64")(obs), model.predict(obs, deterministic=True)[0],
                                   atol=1e-5)
        returns = evaluate_run(run_dir, episodes=2)["returns"]["robustrl/Pendulum-v1"]["best"]
        assert len(returns) == 2 and all(-3300 < r <= 0 for r in returns)


def test_actor_critic_configs_are_checked_like_dqns():
    from robustrl.agents import AgentConfig, load_config

    config = load_config(None, "sac.yml")
    with pytest.raises(ValueError, match="exploration_fraction"):
        AgentConfig.resolve(config, "robustrl/Pendulum-v1", "regular", {"exploration_fraction": 0.1})
    with pytest.raises(ValueError, match="ent_coef must be 'auto'"):
        AgentConfig.resolve(config, "robustrl/Pendulum-v1", "regular", {"ent_coef": "hot"})
    with pytest.raises(ValueError, match="perturbation not available for SAC"):
        AgentConfig.resolve(config, "robustrl/Pendulum-v1", "robust", {"perturbation": "pgd"})
    with pytest.raises(ValueError, match="algorithm must be one of"):
        AgentConfig.resolve({"robustrl/Pendulum-v1": {"algorithm": "PPO", "agents": {"regular": {}}}},
                            "robustrl/Pendulum-v1", "regular")


def test_the_suite_runs_noise_channels_on_an_actor_critic_and_refuses_q_network_attacks_clearly():
    from robustrl.experiments.suite import load_suite
    from robustrl.experiments.suite import channel_returns

    model = RobustSAC("MlpPolicy", gym.make("robustrl/Pendulum-v1"), rho=0.0, **tiny())
    from robustrl.tasks import parse_task

    bare = parse_task({"name": "bare", "title": "Bare", "nominal_id": "robustrl/Pendulum-v1",
                       "ids": {"robustrl/Pendulum-v1": "Original"}, "return_range": [-1500, 0]}, "bare.yml")
    with pytest.raises(ValueError, match="task 'bare' has none to lend"):
        load_suite(None, bare)
    suite = load_suite(None, "pendulum")
    assert suite.state_scale == [0.99, 0.97, 5.9] and [s.name for s in suite.sets] == ["moderate", "wide"]
    noise = channel_returns(model, "noise-uniform", [0.0, 0.1], 2, 0, [1.0, 1.0, 8.0], suite.attack,
                            "robustrl/Pendulum-v1")
    assert noise.shape == (2, 2) and (noise <= 0).all()
    with pytest.raises(ValueError, match="has an actor: use mad-linf or critic-linf"):
        channel_returns(model, "pgd-linf", [0.05], 1, 0, [1.0, 1.0, 8.0], suite.attack, "robustrl/Pendulum-v1")
    mad = channel_returns(model, "mad-linf", [0.0, 0.2], 2, 0, [1.0, 1.0, 8.0], suite.attack,
                          "robustrl/Pendulum-v1")
    assert mad.shape == (2, 2) and (mad <= 0).all()
    np.testing.assert_array_equal(mad[0], noise[0])  # level 0: the clean return, whatever the channel
    actions = channel_returns(model, "action-noise", [0.0, 0.5], 2, 0, [1.0, 1.0, 8.0], suite.attack,
                              "robustrl/Pendulum-v1")
    np.testing.assert_array_equal(actions[0], noise[0])
    assert not np.array_equal(actions[1], actions[0])


def test_the_packaged_suite_follows_the_runs_algorithm_and_mixed_runs_must_name_one(tmp_path):
    import json

    from robustrl.agents import AGENT_CLASSES
    from stable_baselines3 import DQN

    from robustrl.experiments.suite import (
        ACTOR_CRITIC_SUITE,
        CHANNELS,
        DEFAULT_SUITE,
        Q_NETWORK_ALGOS,
        default_suite_name,
        load_suite,
    )

    assert set(Q_NETWORK_ALGOS) == {name for name, cls in AGENT_CLASSES.items() if issubclass(cls, DQN)}
    runs = {}
    for algo in ("DQN", "RobustSADQN", "SAC", "PRMDPTD3"):
        runs[algo] = tmp_path / algo
        runs[algo].mkdir()
        (runs[algo] / "meta.json").write_text(json.dumps({"agent": "a", "seed": 0, "algo": algo}))
    assert default_suite_name([runs["DQN"], runs["RobustSADQN"]]) == DEFAULT_SUITE
    assert default_suite_name([runs["SAC"], runs["PRMDPTD3"]]) == ACTOR_CRITIC_SUITE
    assert default_suite_name([runs["SAC"]], "pendulum") == ACTOR_CRITIC_SUITE  # a task without a suite of its own
    from dataclasses import replace

    from robustrl.tasks import get_task

    assert default_suite_name([runs["SAC"]], replace(get_task("pendulum"), suite="mine")) == "mine"
    with pytest.raises(ValueError, match=r"mix Q-network agents \(DQN, ...\) and actor-critic agents \(SAC"):
        default_suite_name([runs["DQN"], runs["SAC"]])
    actor_critic = load_suite(ACTOR_CRITIC_SUITE, "pendulum")
    assert all(CHANNELS[c].method not in ("fgm", "pgd") for c in actor_critic.channels)
    assert {"mad-linf", "critic-linf", "action-noise"} <= set(actor_critic.channels)


def test_an_agent_can_name_its_own_family_so_sac_and_td3_share_one_env_id():
    from robustrl.agents import AgentConfig, load_config, make_agent

    config = load_config(None, "sac.yml")
    td3 = AgentConfig.resolve(config, "robustrl/Pendulum-v1", "robust-td3")
    assert td3.algo == "RobustTD3" and td3.dqn_kwargs == {"learning_rate": 1e-3, "action_noise_std": 0.1}
    model = make_agent(td3, gym.make("robustrl/Pendulum-v1"), seed=0)
    assert float(model.action_noise._sigma[0]) == 0.1 and model.state_scale == "auto"
    with pytest.raises(ValueError, match="ent_coef"):  # SAC's key on a TD3 agent
        AgentConfig.resolve(config, "robustrl/Pendulum-v1", "td3", {"ent_coef": 0.1})


def test_building_an_agent_leaves_its_config_as_it_was():
    from robustrl.agents import AgentConfig, load_config, make_agent

    sac = AgentConfig.resolve(load_config(None, "sac.yml"), "robustrl/Pendulum-v1", "regular",
                              {"policy_kwargs": {"net_arch": [16, 16]}})
    model = make_agent(sac, gym.make("robustrl/Pendulum-v1"), seed=0)
    assert "use_sde" in model.policy_kwargs  # SB3 writes into the policy_kwargs it is given ...
    assert sac.dqn_kwargs["policy_kwargs"] == {"net_arch": [16, 16]}  # ... a copy, not the config's (whose check
    AgentConfig.resolve(load_config(None, "sac.yml"), "robustrl/Pendulum-v1", "regular", sac.dqn_kwargs)  # refuses it)


@pytest.mark.parametrize("objective", ["mad", "critic"])
def test_actor_attacks_beat_random_points_of_the_ball_and_stay_in_it(objective):
    from robustrl.attacks import ActorAttack
    from robustrl.experiments.evaluation import greedy_actor_network, greedy_critic

    th.manual_seed(0)
    model = SAC("MlpPolicy", gym.make("Pendulum-v1"), **tiny())
    actor, critic = greedy_actor_network(model), greedy_critic(model)
    states = th.as_tensor(np.random.default_rng(0).normal(size=(64, 3)), dtype=th.float64)
    scale = th.tensor([1.0, 1.0, 8.0], dtype=th.float64)
    attack = ActorAttack(actor, 0.1, objective, critic=critic, steps=20, scale=scale,
                         generator=th.Generator().manual_seed(0))
    attacked = attack(states)
    assert (((attacked - states) / scale).abs() <= 0.1 + 1e-12).all()
    noise = states + 0.1 * scale * (2 * th.rand(states.shape, generator=th.Generator().manual_seed(1),
                                                dtype=th.float64) - 1)
    with th.no_grad():
        clean = actor(states)
        if objective == "mad":
            gain, random = ((actor(attacked) - clean) ** 2).sum(1), ((actor(noise) - clean) ** 2).sum(1)
        else:
            gain, random = -critic(states, actor(attacked)), -critic(states, actor(noise))
    assert gain.mean() > random.mean() and (gain >= random - 1e-9).float().mean() > 0.9


def test_pr_mdp_at_alpha_zero_is_td3_and_at_one_executes_the_adversarys_actions():
    from robustrl.agents import AgentConfig, load_config
    from robustrl.agents.robust_ac import PRMDPTD3

    th.manual_seed(0)
    ours = PRMDPTD3("MlpPolicy", gym.make("Pendulum-v1"), alpha=0.0, **tiny()).learn(80)
    th.manual_seed(0)
    theirs = TD3("MlpPolicy", gym.make("Pendulum-v1"), **tiny()).learn(80)
    assert all(np.array_equal(a, b) for a, b in zip(_weights(ours), _weights(theirs)))
    model = PRMDPTD3("MlpPolicy", gym.make("Pendulum-v1"), alpha=1.0, **tiny())
    before = [p.detach().clone() for p in model.adversary.parameters()]
    model.learn(120)
    assert any(not th.equal(a, b) for a, b in zip(before, model.adversary.parameters()))  # the adversary learns
    model._last_obs = np.array([[1.0, 0.0, 0.5]], dtype=np.float32)
    action, buffer_action = model._sample_action(0, model.action_noise)
    with th.no_grad():
        expected = model.adversary(th.as_tensor(model._last_obs)).clamp(-1, 1).numpy()
    np.testing.assert_allclose(buffer_action, expected, rtol=0, atol=1e-7)
    config = load_config(None, "sac.yml")
    assert AgentConfig.resolve(config, "robustrl/Pendulum-v1", "pr-mdp-td3").algo == "PRMDPTD3"
    with pytest.raises(ValueError, match="pr_alpha"):
        AgentConfig.resolve(config, "robustrl/Pendulum-v1", "pr-mdp-td3", {"pr_alpha": 1.5})
