"""Perturbation wrappers: the identity setting changes nothing, each perturbation reaches the agent."""

from __future__ import annotations

import functools
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from torch import nn

import robustrl  # noqa: F401  (registers the ids)
from robustrl.attacks import PGD, WorstOf
from robustrl.envs import NOMINAL_ID
from robustrl.experiments.evaluation import greedy_rollout
from robustrl.wrappers import (
    ActionNoise,
    ActionNoiseTransform,
    ObservationAttack,
    ObservationAttackTransform,
    ObservationNoise,
    ObservationNoiseTransform,
    RandomAction,
    RandomActionTransform,
)

SCALE = np.array([0.5, 0.5, 0.05, 0.5])


class TrueObservations(gym.ObservationWrapper):
    """Records the environment's true observations (put inside the perturbation wrapper)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.seen: list[np.ndarray] = []

    def observation(self, observation: np.ndarray) -> np.ndarray:
        self.seen.append(observation.copy())
        return observation


class ExecutedActions(gym.ActionWrapper):
    """Records the actions the environment executes (put inside the perturbation wrapper)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.executed: list[int] = []

    def action(self, action: int) -> int:
        self.executed.append(int(action))
        return action


def controller(observation: np.ndarray) -> int:
    """A fixed policy that balances the pole for 100-200 steps (not for 500, so returns can differ)."""
    return int(observation[3] > 0)


def play(env: gym.Env, seed: int, policy=controller, episodes: int = 2) -> tuple[list[float], list[np.ndarray]]:
    """Returns of ``episodes`` episodes and every observation the agent received (the last ones too)."""
    returns, received = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        received.append(obs.copy())
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            received.append(obs.copy())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns, received



pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def q_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))
    with torch.no_grad():  # start near the controller, so episodes last a while
        net[2].weight.mul_(0.1)
        net[0].weight[0] = torch.tensor([0.0, 0.0, 0.0, 10.0])
        net[2].weight[:, 0] = torch.tensor([-1.0, 1.0])
    return net.double()


def q_policy(q_net: nn.Module):
    def act(observation: np.ndarray) -> np.ndarray | int:
        with torch.no_grad():
            actions = q_net(torch.as_tensor(np.atleast_2d(observation), dtype=torch.float64)).argmax(1).numpy()
        return actions if np.ndim(observation) == 2 else int(actions[0])
    return act


def attack(q_net: nn.Module, eps: float):
    return WorstOf.over_losses(PGD, q_net, eps, steps=3, restarts=2, scale=SCALE, clip=None)


def make(wrap=lambda env: env) -> gym.Env:
    return wrap(TrueObservations(ExecutedActions(gym.make(NOMINAL_ID))))


def test_identity_settings_give_exactly_the_unwrapped_returns_and_observations(q_net):
    plain = play(make(), seed=5)
    for wrap in (lambda e: ObservationNoise(e, 0.0, SCALE), lambda e: ObservationNoise(e, 0, kind="gaussian"),
                 lambda e: RandomAction(e, 0.0), lambda e: ObservationAttack(e, attack(q_net, 0.0))):
        returns, received = play(make(wrap), seed=5)
        assert returns == plain[0]
        assert all(np.array_equal(a, b) for a, b in zip(received, plain[1], strict=True))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_uniform_noise_reaches_the_agent_inside_the_ball(norm):
    env = make(lambda e: ObservationNoise(e, 0.1, SCALE, norm=norm))
    _, received = play(env, seed=0)
    delta = (np.array(received) - np.array(env.env.seen, dtype=float)) / SCALE
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert (size <= 0.1 * (1 + 1e-5)).all() and (size > 0).all() and size.max() > 0.05


def test_gaussian_noise_has_std_eps_times_scale():
    env = make(lambda e: ObservationNoise(e, 0.1, SCALE, kind="gaussian"))
    _, received = play(env, seed=0, episodes=5)
    std = (np.array(received) - np.array(env.env.seen, dtype=float)).std(0)
    np.testing.assert_allclose(std, 0.1 * SCALE, rtol=0.25)


def test_random_actions_are_executed_instead_of_the_agents():
    env = make(lambda e: RandomAction(e, 1.0))
    play(env, seed=0, policy=lambda obs: 0, episodes=3)
    executed = np.array(env.env.env.executed)
    assert len(executed) > 20 and 0.3 < executed.mean() < 0.7, "p = 1: uniform over {0, 1}, never only the agent's 0"
    chosen: list[int] = []
    env = make(lambda e: RandomAction(e, 0.2))
    play(env, seed=0, policy=lambda obs: chosen.append(controller(obs)) or chosen[-1], episodes=5)
    changed = np.mean(np.array(chosen) != np.array(env.env.env.executed))
    assert len(chosen) > 300 and 0.06 < changed < 0.14  # p / 2: half of the random actions are the agent's


def test_the_attack_reaches_the_agent_inside_the_ball_and_changes_its_actions(q_net):
    env = make(lambda e: ObservationAttack(e, attack(q_net, 0.2)))
    _, received = play(env, seed=0, policy=q_policy(q_net))
    true = np.array(env.env.seen, dtype=float)
    delta = (np.array(received) - true) / SCALE
    assert np.abs(delta).max() <= 0.2 * (1 + 1e-5) and np.abs(delta).max() > 0.1
    greedy = q_policy(q_net)
    assert (greedy(np.array(received)) != greedy(true)).any()


def test_same_seed_same_perturbed_rollout_and_env_draws_untouched(q_net):
    for wrap in (lambda e: ObservationNoise(e, 0.1, SCALE), lambda e: RandomAction(e, 0.3),
                 lambda e: ObservationAttack(e, attack(q_net, 0.1))):
        first, second = play(make(wrap), seed=3), play(make(wrap), seed=3)
        assert first[0] == second[0] and all(np.array_equal(a, b) for a, b in zip(first[1], second[1]))
        env = make(wrap)
        env.reset(seed=3)
        assert np.array_equal(env.env.seen[0], make().reset(seed=3)[0]), "the first true state is the env's own"


@pytest.mark.filterwarnings("ignore:.*(different from the unwrapped|infinity):UserWarning")
def test_check_env_passes_on_wrapped_envs(q_net):
    for wrap in (lambda e: ObservationNoise(e, 0.01, SCALE), lambda e: ObservationNoise(e, 0.01, kind="gaussian"),
                 lambda e: RandomAction(e, 0.1), lambda e: ObservationAttack(e, attack(q_net.float(), 0.01))):
        check_env(wrap(gym.make(NOMINAL_ID).unwrapped), skip_render_check=True)
    q_net.double()


@pytest.mark.parametrize("bad", [-0.1, math.nan, "0.1", None])
def test_bad_eps_names_the_value(bad):
    with pytest.raises(ValueError, match=f"eps={bad!r}"):
        ObservationNoise(gym.make(NOMINAL_ID), bad)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, True])
def test_bad_p_names_the_value(bad):
    with pytest.raises(ValueError, match=f"p={bad!r}"):
        RandomAction(gym.make(NOMINAL_ID), bad)


def test_bad_noise_settings_name_the_value():
    with pytest.raises(ValueError, match="'laplace'"):
        ObservationNoise(gym.make(NOMINAL_ID), 0.1, kind="laplace")
    with pytest.raises(ValueError, match="-1"):
        ObservationNoise(gym.make(NOMINAL_ID), 0.1, scale=[1, -1, 1, 1])
    with pytest.raises(TypeError, match="attack"):
        ObservationAttack(gym.make(NOMINAL_ID), lambda x: x)


def test_batched_rollout_uses_the_same_transforms(q_net):
    policy = q_policy(q_net)
    rollout = functools.partial(greedy_rollout, policy, NOMINAL_ID, 8, seed=0, max_episode_steps=60)
    plain = np.array(rollout())
    identity = rollout(action_transform=RandomActionTransform(0.0, gym.spaces.Discrete(2), seed=0),
                       observation_transform=ObservationAttackTransform(attack(q_net, 0.0), seed=0))
    np.testing.assert_array_equal(np.array(identity), plain)
    attacked = rollout(observation_transform=ObservationAttackTransform(attack(q_net, 0.2), seed=0))
    random = rollout(action_transform=RandomActionTransform(1.0, gym.spaces.Discrete(2), seed=0))
    # the returns may reach the 60-step cap either way; the mean safety margins show that the states changed
    assert not np.array_equal(attacked[1], plain[1]) and not np.array_equal(random[0], plain[0])
    noise = np.array([0.1, 0.2, 0.01, 0.2])
    by_name = rollout(observation_noise=noise, noise_seed=4)
    by_transform = rollout(observation_transform=ObservationNoiseTransform(1.0, noise, seed=4))
    np.testing.assert_array_equal(np.array(by_name), np.array(by_transform))
    with pytest.raises(ValueError, match="not both"):
        rollout(observation_noise=noise, observation_transform=ObservationNoiseTransform(0.1))


@pytest.mark.parametrize("ids", [(NOMINAL_ID, "robustrl/CartPoleHeavy-v1"),
                                 ("robustrl/Acrobot-v1", "robustrl/AcrobotHeavyUpperLink-v1")])
def test_each_block_of_a_batched_rollout_has_its_own_starts_the_same_for_every_policy(ids):
    from robustrl.experiments.evaluation import greedy_returns_by_id

    def starts_of(action: int) -> np.ndarray:
        seen: list[np.ndarray] = []

        def policy(obs: np.ndarray) -> np.ndarray:
            if not seen:
                seen.append(obs.copy())
            return np.full(len(obs), action, dtype=np.int64)

        greedy_returns_by_id(policy, ids, 3, seed=5)
        return seen[0]

    first = starts_of(0)
    np.testing.assert_array_equal(first, starts_of(1))  # another policy, the same starts
    assert not np.array_equal(first[:3], first[3:])  # the second id's block starts elsewhere
    if ids[0] != NOMINAL_ID:  # a SyncVectorEnv family: sub-environment i is reset with seed + i
        single = np.array([gym.make(ids[0]).reset(seed=5 + i)[0] for i in range(6)], dtype=np.float32)
        np.testing.assert_array_equal(first, single)


def test_an_agents_q_network_is_the_attacked_model_of_its_greedy_policy():
    from stable_baselines3 import DQN

    from robustrl.experiments.evaluation import greedy_policy, greedy_q_network

    model = DQN("MlpPolicy", gym.make(NOMINAL_ID), policy_kwargs=dict(net_arch=[16]), seed=0, device="cpu")
    network = greedy_q_network(model)
    assert next(network.parameters()).dtype == torch.float64
    assert next(model.policy.q_net.parameters()).dtype == torch.float32, "the model is left alone"
    states = np.random.default_rng(0).normal(size=(64, 4)) * SCALE
    with torch.no_grad():
        greedy = network(torch.as_tensor(states)).argmax(1).numpy()
    np.testing.assert_array_equal(greedy, greedy_policy(model)(states.astype(np.float32)))
    transform = ObservationAttackTransform(WorstOf.over_losses(PGD, network, 1.0, scale=SCALE, clip=None), seed=0)
    attacked = transform(states.astype(np.float32))
    assert attacked.dtype == np.float32 and (greedy_policy(model)(attacked) != greedy).any()
    with pytest.raises(ValueError, match="'float16'"):
        greedy_q_network(model, "float16")


def test_random_actions_on_a_box_action_space_stay_in_the_box():
    box = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    actions = np.full((50, 2), 0.5, dtype=np.float32)
    random = RandomActionTransform(1.0, box, seed=0)(actions)
    assert random.dtype == np.float32 and (np.abs(random) <= 1).all() and (random != 0.5).all()
    np.testing.assert_array_equal(RandomActionTransform(0.0, box, seed=0)(actions), actions)
    assert box.contains(RandomActionTransform(1.0, box, seed=0)(actions[0]))
    with pytest.raises(TypeError, match="MultiBinary"):
        RandomActionTransform(0.1, gym.spaces.MultiBinary(3))


def test_action_noise_has_std_in_half_widths_stays_in_the_box_and_refuses_discrete_actions():
    box = gym.spaces.Box(np.array([-2.0, 0.0], dtype=np.float32), np.array([2.0, 10.0], dtype=np.float32))
    actions = np.tile(np.array([0.0, 5.0], dtype=np.float32), (20000, 1))
    noisy = ActionNoiseTransform(0.1, box, seed=0)(actions)
    assert noisy.dtype == np.float32 and noisy.shape == actions.shape
    np.testing.assert_allclose((noisy - actions).std(axis=0), [0.1 * 2.0, 0.1 * 5.0], rtol=0.03)  # half-widths 2, 5
    at_edge = ActionNoiseTransform(1.0, box, seed=0)(np.tile(box.high, (100, 1)))
    assert (at_edge <= box.high).all() and (at_edge >= box.low).all() and (at_edge < box.high).any()
    np.testing.assert_array_equal(ActionNoiseTransform(0.0, box, seed=0)(actions), actions)
    np.testing.assert_array_equal(ActionNoiseTransform(0.3, box, seed=1)(actions[:5]),
                                  ActionNoiseTransform(0.3, box, seed=1)(actions[:5]))
    assert box.contains(ActionNoiseTransform(0.5, box, seed=0)(actions[0]))
    with pytest.raises(ValueError, match="bounded Box .* use random actions"):
        ActionNoiseTransform(0.1, gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match="std must be finite and >= 0, got std=-0.1"):
        ActionNoiseTransform(-0.1, box)


def test_action_noise_wrapper_perturbs_what_the_env_executes_and_is_the_identity_at_zero():
    def rollout(env, seed):
        env.reset(seed=seed)
        return [env.step(np.array([0.5], dtype=np.float32))[0] for _ in range(20)]

    plain = rollout(gym.make("robustrl/Pendulum-v1"), 3)
    np.testing.assert_array_equal(rollout(ActionNoise(gym.make("robustrl/Pendulum-v1"), 0.0), 3), plain)
    noisy = rollout(ActionNoise(gym.make("robustrl/Pendulum-v1"), 0.5), 3)
    assert not np.array_equal(noisy, plain)
    np.testing.assert_array_equal(rollout(ActionNoise(gym.make("robustrl/Pendulum-v1"), 0.5), 3), noisy)
    check_env(ActionNoise(gym.make("robustrl/Pendulum-v1").unwrapped, 0.2), skip_render_check=True)


# --- domain randomization -------------------------------------------------------------------------------------

def test_domain_randomization_draws_seeded_physics_inside_the_box_at_every_reset():
    from robustrl.wrappers import DomainRandomization

    box = {"masspole": [0.05, 0.5], "length": [0.25, 0.75], "gravity": [4.9, 14.7]}

    def draws(seed: int) -> list[dict]:
        env = DomainRandomization(gym.make("robustrl/CartPole-v1"), box)
        seen = [env.reset(seed=seed)[1]["physics"]] + [env.reset()[1]["physics"] for _ in range(20)]
        unwrapped = env.unwrapped
        assert unwrapped.masspole == seen[-1]["masspole"] and unwrapped.force_mag == 10.0  # unnamed: unchanged
        assert unwrapped.polemass_length == pytest.approx(seen[-1]["masspole"] * seen[-1]["length"])
        return seen

    first, again, other = draws(3), draws(3), draws(4)
    assert first == again and first != other
    for physics in first:
        assert all(box[k][0] <= v <= box[k][1] for k, v in physics.items())
    assert len({p["masspole"] for p in first}) == len(first)  # a new draw at every reset


def test_domain_randomization_changes_the_dynamics_the_agent_meets():
    from robustrl.wrappers import DomainRandomization

    plain = gym.make("robustrl/CartPole-v1")
    randomized = DomainRandomization(gym.make("robustrl/CartPole-v1"), {"masspole": [2.0, 3.0]})
    obs_plain, _ = plain.reset(seed=0)
    obs_random, _ = randomized.reset(seed=0)
    assert np.array_equal(obs_plain, obs_random)  # the env's own draws are untouched
    assert not np.array_equal(plain.step(1)[0], randomized.step(1)[0])


@pytest.mark.parametrize(("ranges", "message"), [
    ({"polemass": [0.1, 0.2]}, "unknown CartPole parameter 'polemass'"),
    ({"length": [0.75, 0.25]}, r"length: the range must be \[low, high\] .* got \[0.75, 0.25\]"),
    ({"length": [0.0, 0.25]}, r"length: the range must be"),
    ({}, "needs a mapping"),
])
def test_bad_randomization_ranges_name_the_value(ranges, message):
    from robustrl.wrappers import DomainRandomization

    with pytest.raises(ValueError, match=message):
        DomainRandomization(gym.make("robustrl/CartPole-v1"), ranges)


def test_domain_randomization_works_on_any_family_with_its_own_parameters_and_bounds():
    from robustrl.wrappers import DomainRandomization

    env = DomainRandomization(gym.make("robustrl/Acrobot-v1"), {"link_mass_2": [0.5, 2.0]})
    _, info = env.reset(seed=3)
    assert 0.5 <= info["physics"]["link_mass_2"] == env.unwrapped.get_params()["link_mass_2"] <= 2.0
    with pytest.raises(ValueError, match="unknown Acrobot parameter 'masspole'"):
        DomainRandomization(gym.make("robustrl/Acrobot-v1"), {"masspole": [0.1, 1.0]})
    pytest.importorskip("Box2D", reason="Box2D is not installed (the robustrl[box2d] extra)")
    lander = DomainRandomization(gym.make("robustrl/LunarLander-v3", enable_wind=True), {"wind_power": [0.0, 5.0]})
    assert 0.0 <= lander.reset(seed=0)[1]["physics"]["wind_power"] <= 5.0  # wind power 0 is allowed (>= 0)
