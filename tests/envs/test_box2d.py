"""LunarLander (robustrl.envs.box2d): registrations, nominal dynamics equal to Gymnasium's, parameter API."""

import copy
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("Box2D", reason="Box2D is not installed: the robustrl[box2d] extra is not installed")

import gymnasium as gym
from gymnasium.envs.box2d import lunar_lander as gym_lunar_lander
from gymnasium.utils.env_checker import check_env

import robustrl  # noqa: F401  (registers the ids)
from robustrl.envs.box2d import LUNAR_LANDER_PARAMETERS, REGISTRATIONS
from robustrl.envs.box2d.lunar_lander import PerturbedLunarLanderEnv
from tests.envs.traces import assert_same_trace

GYMNASIUM_ID = {"robustrl/LunarLander-v3": "LunarLander-v3",
                "robustrl/LunarLanderContinuous-v3": "LunarLanderContinuous-v3"}
NAMES = list(LUNAR_LANDER_PARAMETERS)
NOMINAL = {name: parameter.nominal for name, parameter in LUNAR_LANDER_PARAMETERS.items()}
#: A changed value of each parameter (2x nominal where that stays in Gymnasium's valid or recommended range).
CHANGED = {"gravity": 5.0, "wind_power": 20.0, "turbulence_power": 2.0, "main_engine_power": 26.0,
           "side_engine_power": 1.2}
#: The discrete action that exercises each parameter (0 nothing, 1 left engine, 2 main engine).
ACTION = {"gravity": 0, "wind_power": 0, "turbulence_power": 0, "main_engine_power": 2,
          "side_engine_power": 1}
#: Wind and turbulence act only with enable_wind=True.
WIND = {name: name in ("wind_power", "turbulence_power") for name in NAMES}


def test_the_perturbed_ids_are_the_nominal_family_with_one_parameter_changed():
    perturbed = [env_id for env_id in REGISTRATIONS if env_id not in GYMNASIUM_ID]
    assert len(perturbed) == 3
    for env_id in perturbed:
        change = REGISTRATIONS[env_id]["kwargs"]
        params = gym.make(env_id).unwrapped.get_params()
        assert {k: params[k] for k in change} == change
        assert all(params[k] == NOMINAL[k] for k in params if k not in change)


def test_gymnasium_constants_are_as_recorded():
    assert gym_lunar_lander.MAIN_ENGINE_POWER == NOMINAL["main_engine_power"]
    assert gym_lunar_lander.SIDE_ENGINE_POWER == NOMINAL["side_engine_power"]
    env = gym_lunar_lander.LunarLander()
    assert (-env.gravity, env.wind_power, env.turbulence_power) == (
        NOMINAL["gravity"], NOMINAL["wind_power"], NOMINAL["turbulence_power"])


@pytest.mark.parametrize("env_id", list(GYMNASIUM_ID))
def test_registration_mirrors_gymnasium(env_id):
    ours, theirs = gym.spec(env_id), gym.spec(GYMNASIUM_ID[env_id])
    assert ours.max_episode_steps == theirs.max_episode_steps == 1000
    assert ours.reward_threshold == theirs.reward_threshold == 200
    assert ours.kwargs == theirs.kwargs


@pytest.mark.parametrize("env_id", list(GYMNASIUM_ID))
def test_env_checker(env_id):
    check_env(gym.make(env_id).unwrapped, skip_render_check=True)
    check_env(gym.make(env_id, enable_wind=True, main_engine_power=20.0).unwrapped, skip_render_check=True)


def trace(env: gym.Env, seed: int, steps: int = 300) -> list:
    """Observations, rewards, terminated and truncated of ``steps`` seeded random actions, through resets."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for t in range(steps):
        if isinstance(env.action_space, gym.spaces.Discrete):
            action = int(rng.integers(4))
        else:
            action = rng.uniform(-1, 1, 2).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + t)
            out.append(obs)
    return out


@pytest.mark.parametrize("env_id", list(GYMNASIUM_ID))
@pytest.mark.parametrize("enable_wind", [False, True])
def test_nominal_dynamics_equal_gymnasium_step_for_step(env_id, enable_wind):
    ours = trace(gym.make(env_id, enable_wind=enable_wind, max_episode_steps=150), 7)
    theirs = trace(gym.make(GYMNASIUM_ID[env_id], enable_wind=enable_wind, max_episode_steps=150), 7)
    assert sum(1 for x in ours if not isinstance(x, tuple)) >= 3  # at least two episode ends
    assert_same_trace(ours, theirs)


def lockstep_pair(name: str, steps: int = 5) -> tuple[PerturbedLunarLanderEnv, PerturbedLunarLanderEnv]:
    """Two nominal environments in the same state after ``steps`` identical steps."""
    pair = PerturbedLunarLanderEnv(enable_wind=WIND[name]), PerturbedLunarLanderEnv(enable_wind=WIND[name])
    for env in pair:
        env.reset(seed=3)
        for _ in range(steps):
            env.step(0)
    return pair


def steps(env: PerturbedLunarLanderEnv, action: int, n: int = 10) -> list:
    return [env.step(action)[:3] for _ in range(n)]


def assert_same_steps(a: list, b: list) -> None:
    for x, y in zip(a, b):
        assert np.array_equal(x[0], y[0]) and x[1:] == y[1:]


@pytest.mark.parametrize("name", NAMES)
def test_set_params_changes_the_next_step(name):
    changed, unchanged = lockstep_pair(name)
    changed.set_params(**{name: CHANGED[name]})
    assert changed.get_params() == {**NOMINAL, name: CHANGED[name]}
    assert not np.array_equal(changed.step(ACTION[name])[0], unchanged.step(ACTION[name])[0])


@pytest.mark.parametrize("name", NAMES)
def test_values_are_absolute(name):
    env, nominal = lockstep_pair(name)
    env.set_params(**{name: CHANGED[name]})
    env.set_params(**{name: CHANGED[name]})
    env.set_params(**{name: NOMINAL[name]})
    assert env.get_params() == NOMINAL
    assert_same_steps(steps(env, ACTION[name]), steps(nominal, ACTION[name]))


@pytest.mark.parametrize("name", NAMES)
def test_reset_option_and_constructor_apply_the_value(name):
    value = CHANGED[name]
    built = PerturbedLunarLanderEnv(enable_wind=WIND[name], **{name: value})
    built.reset(seed=4)
    reset = PerturbedLunarLanderEnv(enable_wind=WIND[name])
    reset.reset(seed=4, options={"params": {name: value}})
    nominal = PerturbedLunarLanderEnv(enable_wind=WIND[name])
    nominal.reset(seed=4)
    assert built.get_params()[name] == reset.get_params()[name] == value
    assert gym.make("robustrl/LunarLander-v3", **{name: value}).unwrapped.get_params()[name] == value
    a, b, c = (steps(env, ACTION[name], 20) for env in (built, reset, nominal))
    assert_same_steps(a, b)
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_gravity_reaches_the_world_now_and_after_reset():
    env = PerturbedLunarLanderEnv()
    env.reset(seed=0)
    env.set_params(gravity=4.0)
    assert tuple(env.world.gravity) == (0.0, -4.0)
    assert env.gravity == -4.0  # Gymnasium's attribute stays signed
    env.reset(seed=1)
    assert tuple(env.world.gravity) == (0.0, -4.0)


def test_wind_parameters_do_nothing_without_wind():
    env, nominal = lockstep_pair("gravity")  # enable_wind=False
    env.set_params(wind_power=30.0, turbulence_power=3.0)
    assert_same_steps(steps(env, 0), steps(nominal, 0))


def test_unknown_parameter_lists_the_valid_ones():
    env = PerturbedLunarLanderEnv()
    with pytest.raises(ValueError, match="main_engine.*valid.*main_engine_power"):
        env.set_params(main_engine=20.0)
    with pytest.raises(ValueError, match="valid.*gravity"):
        env.reset(options={"params": {"moon_gravity": 1.0}})
    assert env.get_params() == NOMINAL


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", ["a", True, None], ids=repr)
def test_wrong_types_raise_type_error_naming_the_parameter(name, bad):
    with pytest.raises(TypeError, match=name):
        PerturbedLunarLanderEnv(**{name: bad})
    with pytest.raises(TypeError, match=name):
        gym.make("robustrl/LunarLander-v3", **{name: bad})
    env = PerturbedLunarLanderEnv()
    with pytest.raises(TypeError, match=name):
        env.set_params(**{name: bad})
    with pytest.raises(TypeError, match=name):
        env.reset(options={"params": {name: bad}})
    assert env.get_params() == NOMINAL


def invalid_values(name: str) -> list[float]:
    parameter = LUNAR_LANDER_PARAMETERS[name]
    values = [math.nan, math.inf, -math.inf, -1.0] + ([] if parameter.inclusive else [0.0])
    return values + ([12.0, 15.0] if name == "gravity" else [])


@pytest.mark.parametrize("name", NAMES)
def test_invalid_values_raise_value_error_and_change_nothing(name):
    other = "side_engine_power" if name != "side_engine_power" else "main_engine_power"
    for bad in invalid_values(name):
        with pytest.raises(ValueError, match=name):
            PerturbedLunarLanderEnv(**{name: bad})
        env, nominal = lockstep_pair(name)
        with pytest.raises(ValueError, match=name):
            env.set_params(**{other: 2 * NOMINAL[other], name: bad})
        with pytest.raises(ValueError, match=name):
            env.reset(options={"params": {name: bad}})
        assert env.get_params() == NOMINAL  # nothing half-written
        assert_same_steps(steps(env, ACTION[name], 3), steps(nominal, ACTION[name], 3))
    if LUNAR_LANDER_PARAMETERS[name].inclusive:  # wind 0 is allowed
        assert PerturbedLunarLanderEnv(**{name: 0.0}).get_params()[name] == 0.0


def test_gymnasium_signed_gravity_is_explained():
    with pytest.raises(ValueError, match="gravity.*magnitude.*gravity=10.0"):
        gym.make("robustrl/LunarLander-v3", gravity=-10.0)
    assert PerturbedLunarLanderEnv(gravity=11.9).get_params()["gravity"] == 11.9


def test_flags_must_be_booleans():
    with pytest.raises(TypeError, match="enable_wind"):
        PerturbedLunarLanderEnv(enable_wind="yes")


def test_two_instances_do_not_share_parameters():
    changed = PerturbedLunarLanderEnv()
    other = PerturbedLunarLanderEnv()
    gymnasium_env = gym_lunar_lander.LunarLander()
    changed.set_params(**CHANGED)
    assert other.get_params() == NOMINAL
    assert gym_lunar_lander.MAIN_ENGINE_POWER == 13.0 and gym_lunar_lander.SIDE_ENGINE_POWER == 0.6
    for env in (changed, other, gymnasium_env):
        env.reset(seed=9)
    for t in range(40):  # interleaved: each step of the changed env between the others'
        action = (2, 1, 3, 0)[t % 4]
        changed.step(action)
        ours, theirs = other.step(action), gymnasium_env.step(action)
        assert np.array_equal(ours[0], theirs[0]) and ours[1:4] == theirs[1:4]


def test_copies_keep_the_parameters():
    env = PerturbedLunarLanderEnv(continuous=True, enable_wind=True, gravity=8.0)
    env.set_params(main_engine_power=20.0)
    for clone in (copy.deepcopy(env), pickle.loads(pickle.dumps(env))):
        expected = {**NOMINAL, "gravity": 8.0, "main_engine_power": 20.0}
        assert clone.get_params() == env.get_params() == expected
        assert clone.continuous and clone.enable_wind


def test_importing_robustrl_does_not_import_box2d():
    code = ("import sys, gymnasium as gym, robustrl; gym.spec('robustrl/LunarLander-v3'); "
            "assert 'Box2D' not in sys.modules and 'robustrl.envs.box2d.lunar_lander' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
