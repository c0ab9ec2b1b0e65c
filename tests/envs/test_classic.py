import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.utils.env_checker import check_env

import robustrl  # noqa: F401  (registers the ids)
from robustrl.envs import (
    PerturbedAcrobotEnv,
    PerturbedContinuousMountainCarEnv,
    PerturbedMountainCarEnv,
    PerturbedPendulumEnv,
)
from robustrl.envs.classic import REGISTRATIONS

#: Our id -> (Gymnasium's id, our class, one action that exercises every parameter: a full push / torque).
FAMILIES = {
    "robustrl/Acrobot-v1": ("Acrobot-v1", PerturbedAcrobotEnv, 2),
    "robustrl/MountainCar-v0": ("MountainCar-v0", PerturbedMountainCarEnv, 2),
    "robustrl/MountainCarContinuous-v0": ("MountainCarContinuous-v0", PerturbedContinuousMountainCarEnv,
                                          np.array([1.0], dtype=np.float32)),
    "robustrl/Pendulum-v1": ("Pendulum-v1", PerturbedPendulumEnv, np.array([2.0], dtype=np.float32)),
}
IDS = tuple(FAMILIES)
PARAMETERS = [(env_id, name) for env_id, (_, cls, _) in FAMILIES.items() for name in cls.PARAMETERS]
NOMINAL = {
    "robustrl/Acrobot-v1": {"link_length_1": 1.0, "link_length_2": 1.0, "link_mass_1": 1.0, "link_mass_2": 1.0,
                            "link_com_pos_1": 0.5, "link_com_pos_2": 0.5, "link_moi": 1.0},
    "robustrl/MountainCar-v0": {"force": 0.001, "gravity": 0.0025},
    "robustrl/MountainCarContinuous-v0": {"power": 0.0015, "gravity": 0.0025},
    "robustrl/Pendulum-v1": {"m": 1.0, "l": 1.0, "g": 10.0, "max_torque": 2.0},
}
#: Acrobot's start for the one-step comparisons: link 1 horizontal, link 2 pointing up-left, at rest. Its tip
#: ends the step at 0.70 m (no goal); with link 2 1.5 times longer, at 1.12 m (goal: above 1 m).
ACROBOT_START = np.array([np.pi / 2, 1.0, 0.0, 0.0])


def changed(name: str, nominal: float) -> float:
    # A larger max_torque only matters for actions outside the (fixed) action space: weaken the motor instead.
    return nominal * (0.5 if name == "max_torque" else 1.5)


def rollout(env: gym.Env, seed: int, steps: int) -> tuple[np.ndarray, ...]:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    observations, rewards, terminations, truncations = [obs], [], [], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(obs)
        rewards.append(reward)
        terminations.append(terminated)
        truncations.append(truncated)
        if terminated or truncated:
            observations.append(env.reset()[0])
    return (np.array(observations), np.array(rewards), np.array(terminations), np.array(truncations))


def one_step(env: gym.Env, env_id: str, seed: int = 0, **reset_kwargs) -> tuple:
    """(observation, reward, terminated) of one full-push step from the family's start (seeded)."""
    env.reset(seed=seed, **reset_kwargs)
    if env_id == "robustrl/Acrobot-v1":
        env.unwrapped.state = ACROBOT_START.copy()
    obs, reward, terminated, _, _ = env.step(FAMILIES[env_id][2])
    return obs, float(reward), terminated


def same_outcome(a: tuple, b: tuple) -> bool:
    return np.array_equal(a[0], b[0]) and a[1:] == b[1:]


@pytest.mark.parametrize("env_id", IDS)
def test_every_id_passes_env_checker_with_gymnasiums_limits(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    original = gym.spec(FAMILIES[env_id][0])
    assert env.spec.max_episode_steps == original.max_episode_steps
    assert env.spec.reward_threshold == original.reward_threshold
    assert REGISTRATIONS[env_id]["entry_point"] == f"robustrl.envs.classic:{FAMILIES[env_id][1].__name__}"
    assert env.unwrapped.get_params() == NOMINAL[env_id]
    assert type(env.unwrapped).nominal_params() == NOMINAL[env_id]
    assert env.action_space == gym.make(FAMILIES[env_id][0]).action_space
    assert env.observation_space == gym.make(FAMILIES[env_id][0]).observation_space


@pytest.mark.parametrize("env_id", IDS)
def test_nominal_equals_gymnasium_step_for_step(env_id):
    original = FAMILIES[env_id][0]
    steps = gym.spec(original).max_episode_steps + 150  # at least one episode end and reset
    ours, theirs = rollout(gym.make(env_id), 7, steps), rollout(gym.make(original), 7, steps)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and np.array_equal(a, b)
    assert theirs[2].any() or theirs[3].any()


@pytest.mark.parametrize("env_id,name", PARAMETERS)
def test_each_parameter_changes_the_next_step_by_every_route(env_id, name):
    cls = FAMILIES[env_id][1]
    value = changed(name, NOMINAL[env_id][name])
    nominal = one_step(gym.make(env_id), env_id)

    env = gym.make(env_id)
    env.reset(seed=0)
    env.unwrapped.set_params(**{name: value})
    assert env.unwrapped.get_params() == {**NOMINAL[env_id], name: value}
    perturbed = one_step(env, env_id)
    assert not same_outcome(perturbed, nominal)
    if name == "link_length_2":
        # Link 2's length enters no dynamics (its mass, centre of mass and inertia do): it only lifts the tip.
        assert np.array_equal(perturbed[0], nominal[0]) and perturbed[2] and not nominal[2]
    else:
        assert not np.array_equal(perturbed[0], nominal[0])

    by_reset = gym.make(env_id)
    assert same_outcome(one_step(by_reset, env_id, options={"params": {name: value}}), perturbed)
    assert by_reset.unwrapped.get_params()[name] == value
    by_kwarg = gym.make(env_id, **{name: value})
    assert same_outcome(one_step(by_kwarg, env_id), perturbed)
    assert same_outcome(one_step(cls(**{name: value}), env_id), perturbed)

    env.unwrapped.set_params(**{name: NOMINAL[env_id][name]})  # and back
    assert same_outcome(one_step(env, env_id), nominal)


def test_gymnasium_attributes_are_the_parameters():
    acrobot = PerturbedAcrobotEnv(link_mass_2=2.0)
    assert acrobot.LINK_MASS_2 == 2.0
    acrobot.LINK_MOI = 3.0
    assert acrobot.get_params()["link_moi"] == 3.0
    with pytest.raises(ValueError, match="link_moi"):
        acrobot.LINK_MOI = -1.0
    pendulum = PerturbedPendulumEnv(g=9.81)
    assert pendulum.g == 9.81 and gym.make("robustrl/Pendulum-v1", g=9.81).unwrapped.g == 9.81
    car = PerturbedContinuousMountainCarEnv()
    car.gravity = 0.003
    assert car.get_params() == {"power": 0.0015, "gravity": 0.003}
    with pytest.raises(TypeError, match="force"):
        PerturbedMountainCarEnv().force = "0.002"


def test_pendulum_action_space_stays_while_max_torque_clips():
    nominal = one_step(gym.make("robustrl/Pendulum-v1"), "robustrl/Pendulum-v1")
    stronger = gym.make("robustrl/Pendulum-v1", max_torque=3.0)
    weaker = gym.make("robustrl/Pendulum-v1", max_torque=1.0)
    for env in (stronger, weaker):
        assert env.action_space == gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    # An in-space action never exceeds 2: a larger limit changes nothing, a smaller one clips.
    assert same_outcome(one_step(stronger, "robustrl/Pendulum-v1"), nominal)
    weaker_out = one_step(weaker, "robustrl/Pendulum-v1")
    assert weaker.unwrapped.last_u == 1.0 and not same_outcome(weaker_out, nominal)
    # An action outside the space is clipped at the current max_torque (as Gymnasium's step does at 2).
    stronger.reset(seed=0)
    stronger.unwrapped.step(np.array([2.5], dtype=np.float32))
    assert stronger.unwrapped.last_u == np.float32(2.5)


@pytest.mark.parametrize("env_id", IDS)
def test_unknown_parameter_lists_the_valid_ones(env_id):
    env = gym.make(env_id).unwrapped
    valid = re.escape(str(list(FAMILIES[env_id][1].PARAMETERS)))
    with pytest.raises(ValueError, match=rf"unknown .*'mass'.*valid: {valid}"):
        env.set_params(mass=1.0)
    with pytest.raises(ValueError, match=valid):
        env.reset(options={"params": {"mass": 1.0}})
    with pytest.raises(TypeError):
        gym.make(env_id, mass=1.0)  # not a constructor argument


@pytest.mark.parametrize("env_id,name", PARAMETERS)
@pytest.mark.parametrize("bad", ["a", True, None], ids=repr)
def test_wrong_type_raises_type_error_naming_the_parameter(env_id, name, bad):
    pattern = rf"{name} must be a real number.*{re.escape(f'{name}={bad!r}')}"
    with pytest.raises(TypeError, match=pattern):
        gym.make(env_id, **{name: bad})
    env = gym.make(env_id).unwrapped
    with pytest.raises(TypeError, match=pattern):
        env.set_params(**{name: bad})
    with pytest.raises(TypeError, match=pattern):
        env.reset(options={"params": {name: bad}})
    assert env.get_params() == NOMINAL[env_id]


@pytest.mark.parametrize("env_id,name", PARAMETERS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0, -1], ids=repr)
def test_bad_value_raises_value_error_and_changes_nothing(env_id, name, bad):
    pattern = re.escape(f"{name}={bad!r}")
    with pytest.raises(ValueError, match=rf"{name} must be finite and > 0, got {pattern}"):
        gym.make(env_id, **{name: bad})
    env = gym.make(env_id)
    env.reset(seed=0)
    other = next(n for n in NOMINAL[env_id] if n != name)
    with pytest.raises(ValueError, match=pattern):
        env.unwrapped.set_params(**{other: changed(other, NOMINAL[env_id][other]), name: bad})
    with pytest.raises(ValueError, match=pattern):
        env.reset(seed=0, options={"params": {other: changed(other, NOMINAL[env_id][other]), name: bad}})
    assert env.unwrapped.get_params() == NOMINAL[env_id]  # nothing half-written
    assert same_outcome(one_step(env, env_id), one_step(gym.make(env_id), env_id))


@pytest.mark.parametrize("env_id", IDS)
def test_a_change_stays_in_its_instance(env_id):
    cls = FAMILIES[env_id][1]
    first, second = gym.make(env_id), gym.make(env_id)
    first.unwrapped.set_params(**{n: changed(n, v) for n, v in NOMINAL[env_id].items()})
    assert second.unwrapped.get_params() == NOMINAL[env_id]
    assert cls().get_params() == NOMINAL[env_id] and gym.make(env_id).unwrapped.get_params() == NOMINAL[env_id]
    assert same_outcome(one_step(second, env_id), one_step(gym.make(env_id), env_id))
    assert not same_outcome(one_step(first, env_id), one_step(second, env_id))


def test_acrobot_never_touches_gymnasiums_class_attributes():
    env = PerturbedAcrobotEnv(link_mass_1=2.0, link_length_1=0.7, link_moi=0.5)
    env.LINK_COM_POS_2 = 0.3
    assert (AcrobotEnv.LINK_MASS_1, AcrobotEnv.LINK_LENGTH_1, AcrobotEnv.LINK_MOI, AcrobotEnv.LINK_COM_POS_2) == (
        1.0, 1.0, 1.0, 0.5)
    assert (AcrobotEnv().LINK_MASS_1, PerturbedAcrobotEnv().LINK_MASS_1) == (1.0, 1.0)
    assert "LINK_MASS_1" not in vars(AcrobotEnv()) and env.LINK_MASS_1 == 2.0


def test_acrobot_rendering_draws_the_links_at_their_lengths():
    pytest.importorskip("pygame")
    frames = []
    for length in (1.0, 0.5):
        env = PerturbedAcrobotEnv(render_mode="rgb_array", link_length_2=length)
        env.reset(seed=0)
        frames.append(env.render())
        env.close()
    assert frames[0].shape == frames[1].shape and not np.array_equal(*frames)
