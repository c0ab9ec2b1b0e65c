import math
import re

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import ReplayBufferSamples

import robustrl  # noqa: F401
from robustrl.agents import AgentConfig, RobustDQN, load_agent, load_config, make_agent
from robustrl.estimators import perturb

TINY = dict(
    learning_starts=100, train_freq=64, gradient_steps=4, batch_size=16, buffer_size=1000,
    target_update_interval=10, policy_kwargs=dict(net_arch=[16, 16]), learning_rate=1e-3,
)
SCALE = [2.4, 3.0, 0.21, 3.0]


def env():
    return gym.make("robustrl/CartPole-v1")


def weights(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


def batch(n: int = 8, dones: float = 0.0, seed: int = 0) -> ReplayBufferSamples:
    g = torch.Generator().manual_seed(seed)
    return ReplayBufferSamples(
        observations=torch.randn(n, 4, generator=g),
        actions=torch.randint(0, 2, (n, 1), generator=g),
        next_observations=torch.randn(n, 4, generator=g) * 0.1,
        dones=torch.full((n, 1), dones),
        rewards=torch.ones(n, 1),
    )


def test_rho_zero_learns_exactly_like_dqn():
    # SB3 seeds the global RNGs at construction: build and train one model at a time.
    robust = RobustDQN("MlpPolicy", env(), rho=0.0, eta=0.5, seed=1, **TINY).learn(400)
    regular = DQN("MlpPolicy", env(), seed=1, **TINY).learn(400)
    for a, b in zip(weights(robust), weights(regular)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_rho_zero_target_equals_dqn_target():
    model = RobustDQN("MlpPolicy", env(), rho=0.0, seed=0, **TINY)
    data = batch()
    with torch.no_grad():
        expected = data.rewards + 0.99 * model.q_net_target(data.next_observations).max(1).values.reshape(-1, 1)
    torch.testing.assert_close(model._compute_target(data, 0.99), expected, rtol=0, atol=0)


def test_eta_inf_target_is_mean_over_perturbations():
    model = RobustDQN("MlpPolicy", env(), rho=0.1, eta=math.inf, n_samples=8, state_scale=SCALE, seed=0, **TINY)
    data = batch()
    state = model._perturbation_generator.get_state()
    target = model._compute_target(data, 0.99)
    g = torch.Generator().manual_seed(0)
    g.set_state(state)
    z = perturb(data.next_observations, 0.1, 8, scale=SCALE, generator=g)
    with torch.no_grad():
        q = model.q_net_target(z.flatten(0, 1)).view(8, 8, 2)
    expected = data.rewards + 0.99 * q.mean(1).max(1).values.reshape(-1, 1)
    torch.testing.assert_close(target, expected)


def test_small_eta_target_approaches_worst_sample_and_is_below_mean():
    kwargs = dict(rho=0.5, n_samples=16, state_scale=SCALE, seed=0, **TINY)
    data = batch()
    targets = {}
    for eta in (math.inf, 1.0, 1e-6, 0.0):
        model = RobustDQN("MlpPolicy", env(), eta=eta, **kwargs)
        targets[eta] = model._compute_target(data, 0.99)
    assert (targets[1.0] <= targets[math.inf] + 1e-6).all()
    assert (targets[0.0] <= targets[1.0] + 1e-6).all()
    torch.testing.assert_close(targets[1e-6], targets[0.0])


def test_done_masks_the_bootstrap():
    model = RobustDQN("MlpPolicy", env(), rho=0.1, seed=0, **TINY)
    torch.testing.assert_close(model._compute_target(batch(dones=1.0), 0.99), torch.ones(8, 1))
    assert not torch.allclose(model._compute_target(batch(dones=0.0), 0.99), torch.ones(8, 1))


def test_mlmc_estimator_target_runs_and_is_finite():
    model = RobustDQN("MlpPolicy", env(), rho=0.1, estimator="mlmc", mlmc_level=3, seed=0, **TINY)
    assert torch.isfinite(model._compute_target(batch(), 0.99)).all()


def test_same_seed_same_weights_and_other_seed_differs():
    runs = [RobustDQN("MlpPolicy", env(), rho=0.1, eta=0.5, seed=s, **TINY).learn(400) for s in (3, 3, 4)]
    for a, b in zip(weights(runs[0]), weights(runs[1])):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(not torch.equal(a, b) for a, b in zip(weights(runs[0]), weights(runs[2])))


def test_learn_with_callback_progress_bar_and_logger(tmp_path):
    class Count(BaseCallback):
        calls = 0

        def _on_step(self) -> bool:
            Count.calls += 1
            return True

    model = RobustDQN("MlpPolicy", env(), seed=0, tensorboard_log=None, verbose=0, **TINY)
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(300, callback=Count(), progress_bar=True)
    assert Count.calls == model.num_timesteps >= 300
    assert "train/loss" in (tmp_path / "progress.csv").read_text()


def test_parameters_survive_save_and_load(tmp_path):
    model = RobustDQN("MlpPolicy", env(), rho=0.2, eta=math.inf, n_samples=4, norm="l2",
                      state_scale=SCALE, estimator="mlmc", mlmc_level=2, seed=0, **TINY)
    model.save(tmp_path / "m.zip")
    loaded = RobustDQN.load(tmp_path / "m.zip")
    for name in ("rho", "eta", "n_samples", "norm", "state_scale", "estimator", "mlmc_level"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert torch.isfinite(loaded._compute_target(batch(), 0.99)).all()
    for a, b in zip(weights(model), weights(loaded)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(rho=-0.1), "rho=-0.1"),
        (dict(eta=-1.0), "eta=-1.0"),
        (dict(n_samples=0), "n_samples=0"),
        (dict(norm="l1"), "norm='l1'"),
        (dict(estimator="sgd"), "estimator='sgd'"),
        (dict(mlmc_level=-1), "mlmc_level=-1"),
        (dict(state_scale=[1.0, 0.0, 1.0, 1.0]), "state_scale"),
        (dict(state_scale=[1.0, 1.0]), "4 entries"),
        (dict(rho=True), "rho=True"),
        (dict(eta="0.5"), "eta='0.5'"),
        (dict(state_scale=["1", "1", "1", "1"]), "state_scale=['1', '1', '1', '1']"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        RobustDQN("MlpPolicy", env(), **kwargs)


def test_config_resolution_and_errors():
    config = load_config()
    robust = AgentConfig.resolve(config, "robustrl/CartPole-v1", "robust", {"eta": 0.3, "n_timesteps": 1000})
    assert robust.algo == "RobustDQN" and robust.robust_kwargs["eta"] == 0.3 and robust.n_timesteps == 1000
    assert AgentConfig.resolve(config, "robustrl/CartPole-v1", "robust-mean").robust_kwargs["eta"] == math.inf
    regular = AgentConfig.resolve(config, "robustrl/CartPole-v1", "regular")
    assert regular.algo == "DQN" and regular.dqn_kwargs["learning_rate"] == 2.3e-3
    assert regular.dqn_kwargs["policy_kwargs"] == {"net_arch": [256, 256]}
    with pytest.raises(ValueError, match="unknown agent 'robot'.*regular"):
        AgentConfig.resolve(config, "robustrl/CartPole-v1", "robot")
    with pytest.raises(ValueError, match="unknown hyperparameter 'etaa'"):
        AgentConfig.resolve(config, "robustrl/CartPole-v1", "robust", {"etaa": 1})
    with pytest.raises(ValueError, match="n_timesteps"):
        AgentConfig.resolve(config, "robustrl/CartPole-v1", "robust", {"n_timesteps": 0})
    with pytest.raises(ValueError, match="no hyperparameters for env id"):
        AgentConfig.resolve(config, "CartPole-v0", "robust")


def test_make_agent_builds_configured_classes():
    config = load_config()
    cfg = AgentConfig.resolve(config, "robustrl/CartPole-v1", "robust", {"buffer_size": 1000})
    model = make_agent(cfg, env(), seed=0)
    packaged = config["robustrl/CartPole-v1"]["agents"]["robust"]
    assert isinstance(model, RobustDQN) and model.eta == packaged["eta"] and model.rho == packaged["rho"]
    assert model.state_scale == SCALE


def test_load_agent_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.zip"):
        load_agent(tmp_path / "nothere.zip")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="bad.zip"):
        load_agent(bad)
    model = DQN("MlpPolicy", env(), seed=0, **TINY)
    model.save(tmp_path / "ok.zip")
    assert isinstance(load_agent(tmp_path / "ok.zip"), DQN)
    truncated = tmp_path / "trunc.zip"
    truncated.write_bytes((tmp_path / "ok.zip").read_bytes()[:500])
    with pytest.raises(ValueError, match="trunc.zip"):
        load_agent(truncated)


def test_pgd_target_is_below_the_sampled_targets_and_stays_in_the_ball():
    # a small ball, where the network is close to linear and PGD finds the corner that samples only approach
    kwargs = dict(rho=0.05, norm="linf", state_scale=SCALE, seed=0, **TINY)
    data = batch()
    pgd = RobustDQN("MlpPolicy", env(), perturbation="pgd", pgd_steps=10, **kwargs)
    hard = RobustDQN("MlpPolicy", env(), eta=0.0, n_samples=64, **kwargs)
    hard.q_net_target.load_state_dict(pgd.q_net_target.state_dict())
    worst_sampled, searched = hard._compute_target(data, 0.99), pgd._compute_target(data, 0.99)
    with torch.no_grad():
        plain = data.rewards + 0.99 * pgd.q_net_target(data.next_observations).max(1).values.reshape(-1, 1)
    # PGD is a local search: per row it can stop in a local minimum, but on the whole it goes lower
    assert (searched < plain).all() and searched.mean() < worst_sampled.mean()
    # each action's point lowers that action's value and lies in the scaled ball
    from robustrl.attacks import PGD

    attack = PGD(pgd.q_net_target, 0.05, steps=10, loss="score", scale=SCALE, clip=None,
                 generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(8, dtype=torch.long)
    z = attack(data.next_observations, labels)
    assert ((z - data.next_observations).abs() <= 0.05 * torch.tensor(SCALE) + 1e-6).all()
    with torch.no_grad():
        assert (pgd.q_net_target(z)[:, 0] < pgd.q_net_target(data.next_observations)[:, 0]).all()


def test_pgd_target_with_rho_zero_learns_exactly_like_dqn_and_bad_values_are_named():
    robust = RobustDQN("MlpPolicy", env(), rho=0.0, perturbation="pgd", seed=1, **TINY).learn(400)
    regular = DQN("MlpPolicy", env(), seed=1, **TINY).learn(400)
    for a, b in zip(weights(robust), weights(regular)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="perturbation must be one of"):
        RobustDQN("MlpPolicy", env(), perturbation="fgsm", **TINY)
    with pytest.raises(ValueError, match="pgd_steps"):
        RobustDQN("MlpPolicy", env(), perturbation="pgd", pgd_steps=0, **TINY)
    cfg = AgentConfig.resolve(load_config(), "robustrl/CartPole-v1", "robust-pgd")
    assert cfg.algo == "RobustDQN" and cfg.robust_kwargs["perturbation"] == "pgd"


def test_pgd_target_of_a_linear_q_network_is_the_exact_worst_corner():
    tiny = {**TINY, "policy_kwargs": dict(net_arch=[])}
    model = RobustDQN("MlpPolicy", env(), rho=0.1, perturbation="pgd", pgd_steps=10, state_scale=SCALE, seed=0,
                      **tiny)
    data = batch()
    weight, bias = model.q_net_target.q_net[0].weight, model.q_net_target.q_net[0].bias
    scale = torch.tensor(SCALE)
    with torch.no_grad():
        corners = [data.next_observations - 0.1 * scale * weight[a].sign() for a in range(2)]
        worst = torch.stack([corners[a] @ weight[a] + bias[a] for a in range(2)], dim=1)
    expected = data.rewards + 0.99 * worst.max(1).values.reshape(-1, 1)
    torch.testing.assert_close(model._compute_target(data, 0.99), expected)


def test_the_robust_target_records_the_spread_of_q_over_the_ball_and_its_gap_to_the_plain_target():
    model = RobustDQN("MlpPolicy", env(), rho=0.5, eta=0.1, n_samples=8, state_scale=SCALE, seed=0, **TINY)
    model._target_stats = {}
    data = batch()
    target = model._compute_target(data, 0.99)
    spread, gap = model._target_stats["q_spread"][0], model._target_stats["target_gap"][0]
    state = model._perturbation_generator.get_state()
    assert spread > 0  # (the gap has either sign: the ball can sit above its centre)
    with torch.no_grad():
        plain = model.q_net_target(data.next_observations).max(1).values
    torch.testing.assert_close(torch.tensor(gap), (plain - (target.squeeze(1) - 1.0) / 0.99).mean(), rtol=1e-4,
                               atol=1e-6)
    assert model._perturbation_generator.get_state().equal(state)  # recording draws nothing
    model.learn(400)
    assert model.target_history and set(model.target_history[-1]) == {"timesteps", "q_spread", "target_gap"}


@pytest.mark.parametrize("kwargs, expected", [
    (dict(n_samples=8), 8),
    (dict(n_samples=4, eta_scale="spread"), 4),
    (dict(estimator="mlmc", mlmc_level=3), None),  # the 2**level of the level drawn
    (dict(estimator="linear"), 1),  # the next state itself, and its gradient
    (dict(perturbation="pgd", pgd_steps=3), 3),
    (dict(rho=0.0), 0),
])
def test_train_logs_the_next_states_the_target_evaluated_per_transition(tmp_path, kwargs, expected):
    from stable_baselines3.common.logger import configure

    from robustrl.estimators import RTMLMC

    model = RobustDQN("MlpPolicy", env(), **{"rho": 0.1, **kwargs}, seed=0, **TINY)
    if expected is None:  # the level RT-MLMC draws first, read from a copy of the perturbation generator
        copy = torch.Generator().set_state(model._perturbation_generator.get_state())
        expected = 2 ** RTMLMC(3).draw_level(copy)
    model.set_logger(configure(str(tmp_path), [""]))
    model.replay_buffer.sample = lambda batch_size, env=None: batch(batch_size)
    model.train(1, 8)
    assert model.logger.name_to_value["train/samples_per_update"] == expected
    assert all("samples_per_update" not in row for row in model.target_history)  # target_stats.csv unchanged


def test_rho_ramp_grows_the_radius_from_zero():
    ramped = RobustDQN("MlpPolicy", env(), rho=0.2, rho_ramp=0.5, state_scale=SCALE, seed=0, **TINY)
    for remaining, expected in ((1.0, 0.0), (0.75, 0.1), (0.5, 0.2), (0.0, 0.2)):
        ramped._current_progress_remaining = remaining
        assert ramped.current_rho() == pytest.approx(expected)
    ramped._current_progress_remaining = 1.0
    ramped._target_stats = {}
    data = batch()
    with torch.no_grad():  # at the start the target is DQN's
        expected = data.rewards + 0.99 * ramped.q_net_target(data.next_observations).max(1).values.reshape(-1, 1)
    torch.testing.assert_close(ramped._compute_target(data, 0.99), expected, rtol=0, atol=0)
    ramped._current_progress_remaining = 0.0  # past the ramp: the full radius perturbs the target
    assert not torch.equal(ramped._compute_target(data, 0.99), expected)
    with pytest.raises(ValueError, match="rho_ramp must be a fraction"):
        RobustDQN("MlpPolicy", env(), rho_ramp=1.5, **TINY)


def test_a_temperature_relative_to_the_spread_makes_the_target_scale_free():
    def bootstrap(model, data, scale_q=1.0):
        head = model.q_net_target.q_net[-1]
        with torch.no_grad():
            head.weight.mul_(scale_q)
            head.bias.mul_(scale_q)
        state = model._perturbation_generator.get_state()
        model._target_stats = {}
        value = (model._compute_target(data, 0.99) - data.rewards) / 0.99
        model._perturbation_generator.set_state(state)
        with torch.no_grad():
            head.weight.div_(scale_q)
            head.bias.div_(scale_q)
        return value

    data = batch()
    kwargs = dict(rho=0.5, eta=0.3, n_samples=16, state_scale=SCALE, seed=0, **TINY)
    relative = RobustDQN("MlpPolicy", env(), eta_scale="spread", **kwargs)
    absolute = RobustDQN("MlpPolicy", env(), **kwargs)
    absolute.q_net_target.load_state_dict(relative.q_net_target.state_dict())
    torch.testing.assert_close(bootstrap(relative, data, 100.0), 100.0 * bootstrap(relative, data), rtol=1e-4,
                               atol=1e-5)
    assert not torch.allclose(bootstrap(absolute, data, 100.0), 100.0 * bootstrap(absolute, data), rtol=1e-3)
    # by hand: per next state and action, S_{eta * (max - min)} over the same 16 samples
    state = relative._perturbation_generator.get_state()
    target = bootstrap(relative, data)
    g = torch.Generator().manual_seed(0)
    g.set_state(state)
    z = perturb(data.next_observations, 0.5, 16, scale=SCALE, generator=g)
    with torch.no_grad():
        q = relative.q_net_target(z.flatten(0, 1)).view(8, 16, 2)
    from robustrl.estimators import entropic_softmin

    spread = q.amax(1, keepdim=True) - q.amin(1, keepdim=True)
    expected = entropic_softmin(q, 0.3 * spread, dim=1).max(1).values.reshape(-1, 1)
    torch.testing.assert_close(target, expected)
    with pytest.raises(ValueError, match="eta_scale='spread' needs the sampled target with the saa or linear"):
        RobustDQN("MlpPolicy", env(), eta_scale="spread", estimator="mlmc", **TINY)
    with pytest.raises(ValueError, match="eta_scale must be one of"):
        RobustDQN("MlpPolicy", env(), eta_scale="relative", **TINY)


def test_a_bfloat16_target_matches_the_float32_one_to_a_small_part_of_the_spread_and_follows_the_target_net():
    kwargs = dict(rho=0.5, eta=0.1, n_samples=16, state_scale=SCALE, seed=0, **TINY)
    full = RobustDQN("MlpPolicy", env(), **kwargs)
    low = RobustDQN("MlpPolicy", env(), target_precision="bfloat16", **kwargs)
    low.q_net_target.load_state_dict(full.q_net_target.state_dict())
    low._refresh_target_body()  # what every train() call does first
    data = batch(64)

    def target(model):
        model._target_stats = {}
        model._perturbation_generator.manual_seed(3)
        return model._compute_target(data, 0.99)

    exact, approx = target(full), target(low)
    spread = low._target_stats["q_spread"][0]
    error = (exact - approx).abs()
    assert 0 < error.max() < 0.05 * spread  # bfloat16 was used, and it moved the target by little
    with torch.no_grad():  # a changed target network is followed from the next train() call on
        for p in low.q_net_target.parameters():
            p.mul_(2.0)
    stale = target(low)
    low._refresh_target_body()
    assert not torch.allclose(stale, target(low))
    with pytest.raises(ValueError, match="target_precision must be one of .*'float16'"):
        RobustDQN("MlpPolicy", env(), target_precision="float16", **TINY)
