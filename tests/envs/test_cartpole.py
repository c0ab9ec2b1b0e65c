import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.utils.env_checker import check_env

import robustrl  # noqa: F401  (registers the ids)
from robustrl.envs import ENV_IDS, VARIANTS, PerturbedCartPoleEnv, make_vector_env


def rollout(env: gym.Env, seed: int, steps: int = 200) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        trace.append(obs)
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(obs)
    return np.array(trace)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_id_passes_env_checker(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.max_episode_steps == 500
    assert env.spec.reward_threshold == 475.0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_rollout(env_id):
    np.testing.assert_array_equal(rollout(gym.make(env_id), 3), rollout(gym.make(env_id), 3))
    assert not np.array_equal(rollout(gym.make(env_id), 3), rollout(gym.make(env_id), 4))


@pytest.mark.parametrize("env_id,change", [(k, v) for k, v in VARIANTS.items() if v])
def test_kwarg_on_nominal_id_equals_variant_id(env_id, change):
    variant = gym.make(env_id)
    nominal_with_kwarg = gym.make("robustrl/CartPole-v1", **change)
    np.testing.assert_array_equal(rollout(variant, 11), rollout(nominal_with_kwarg, 11))
    # ... and the change matters: the nominal physics gives another rollout.
    assert not np.array_equal(rollout(variant, 11), rollout(gym.make("robustrl/CartPole-v1"), 11))


def test_nominal_matches_gymnasium_cartpole_exactly():
    np.testing.assert_array_equal(rollout(gym.make("robustrl/CartPole-v1"), 5),
                                  rollout(gym.make("CartPole-v1"), 5))


def test_variant_ids_have_the_documented_physics():
    assert gym.make("robustrl/CartPoleHeavy-v1").unwrapped.masspole == 5.0
    assert gym.make("robustrl/CartPoleShort-v1").unwrapped.length == 0.1
    assert gym.make("robustrl/CartPoleStrongGravity-v1").unwrapped.gravity == 40.0


def test_derived_quantities_follow_parameter_changes():
    env = gym.make("robustrl/CartPole-v1").unwrapped
    env.masspole = 5.0
    assert env.total_mass == pytest.approx(6.0)
    assert env.polemass_length == pytest.approx(2.5)
    env.set_parameters(length=0.1, masscart=2.0)
    assert env.total_mass == pytest.approx(7.0)
    assert env.polemass_length == pytest.approx(0.5)
    with pytest.raises(AttributeError, match="derived"):
        env.total_mass = 1.0


def test_changing_masspole_later_equals_constructing_with_it():
    late = gym.make("robustrl/CartPole-v1")
    late.unwrapped.masspole = 5.0
    np.testing.assert_array_equal(rollout(late, 2), rollout(gym.make("robustrl/CartPoleHeavy-v1"), 2))
    # Gymnasium's own env goes stale: total_mass is not updated, so the physics differ.
    stale = CartPoleEnv()
    stale.masspole = 5.0
    assert stale.total_mass != pytest.approx(5.0 + stale.masscart)


@pytest.mark.parametrize("name", ["gravity", "masscart", "masspole", "length", "force_mag", "tau"])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_parameters_raise_value_error_naming_them(name, bad):
    with pytest.raises(ValueError, match=name):
        PerturbedCartPoleEnv(**{name: bad})
    env = PerturbedCartPoleEnv()
    with pytest.raises(ValueError, match=name):
        setattr(env, name, bad)
    other = "masscart" if name != "masscart" else "length"
    with pytest.raises(ValueError, match=name):
        env.set_parameters(**{other: 2.0, name: bad})
    assert getattr(env, other) != 2.0  # nothing half-written
    with pytest.raises(ValueError, match=name):
        gym.make("robustrl/CartPole-v1", **{name: bad})


def test_unknown_parameter_is_rejected():
    env = PerturbedCartPoleEnv()
    with pytest.raises(ValueError, match="polelength"):
        env.set_parameters(polelength=1.0)


def test_vector_env_matches_single_env_step_for_step():
    n = 5
    venv = make_vector_env("robustrl/CartPoleHeavy-v1", n)
    obs, _ = venv.reset(seed=0)
    singles = [PerturbedCartPoleEnv(masspole=5.0) for _ in range(n)]
    for env, start in zip(singles, venv.state.T):
        env.reset(seed=0)
        env.state = start.copy()
    rng = np.random.default_rng(0)
    for _ in range(8):  # early steps: no sub-env has terminated yet
        actions = rng.integers(0, 2, size=n)
        obs, *_ = venv.step(actions)
        expected = np.stack([env.step(int(a))[0] for env, a in zip(singles, actions)])
        np.testing.assert_allclose(obs, expected, rtol=1e-6, atol=1e-6)


def test_vector_env_per_env_parameters():
    masses = np.array([0.1, 1.0, 5.0])
    venv = make_vector_env("robustrl/CartPole-v1", 3, masspole=masses)
    np.testing.assert_array_equal(venv.total_mass, masses + 1.0)
    venv.reset(seed=1)
    venv.state[:] = np.array([[0.0], [0.0], [0.1], [0.0]])  # same tilted start for all three
    obs, *_ = venv.step(np.zeros(3, dtype=np.int64))
    assert len(np.unique(obs[:, 3])) == 3  # different masses, different angular accelerations
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        make_vector_env("robustrl/CartPole-v1", 3, masspole=np.ones(4))
    with pytest.raises(ValueError, match="masspole"):
        make_vector_env("robustrl/CartPole-v1", 3, masspole=np.array([1.0, -1.0, 1.0]))


def test_make_vec_uses_the_vector_entry_point():
    venv = gym.make_vec("robustrl/CartPoleShort-v1", num_envs=4, vectorization_mode="vector_entry_point")
    assert venv.unwrapped.length == 0.1
    assert venv.unwrapped.max_episode_steps == 500


def test_unknown_env_id_lists_valid_ones():
    with pytest.raises(ValueError, match="CartPoleHeavy"):
        make_vector_env("robustrl/CartPoleTall-v1", 2)


WRONG_TYPES = ["0.3", True, False, np.bool_(True), None, b"0.3", 1 + 0j, [0.3]]


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("bad", WRONG_TYPES, ids=repr)
def test_wrong_type_parameter_raises_type_error_on_every_id(env_id, bad):
    with pytest.raises(TypeError, match=r"length must be a real number.*length=" + re.escape(repr(bad))):
        gym.make(env_id, length=bad)
    with pytest.raises(TypeError, match="tau"):
        gym.make(env_id, tau=bad)


@pytest.mark.parametrize("bad", WRONG_TYPES, ids=repr)
def test_wrong_type_is_rejected_after_construction(bad):
    env = gym.make("robustrl/CartPole-v1").unwrapped
    with pytest.raises(TypeError, match="masspole"):
        env.masspole = bad
    with pytest.raises(TypeError, match="gravity"):
        env.set_parameters(length=0.2, gravity=bad)
    assert env.masspole == 0.1 and env.length == 0.5 and env.gravity == 9.8  # nothing half-written


@pytest.mark.parametrize("good", [0.3, 3, np.float32(0.25), np.float64(0.3), np.int64(2), np.array(0.3)], ids=repr)
def test_numeric_scalars_of_any_numpy_type_are_accepted(good):
    env = gym.make("robustrl/CartPole-v1", length=good).unwrapped
    assert env.length == pytest.approx(float(good)) and type(env.length) is float
    env.tau = good
    assert env.tau == pytest.approx(float(good))
    venv = make_vector_env("robustrl/CartPole-v1", 2, length=good)
    assert venv.length == pytest.approx(float(good))


@pytest.mark.parametrize("bad", [
    np.array([True, False]), np.array(["0.3", "0.4"]), ["0.3", 0.4], [0.3, True], [0.3, None],
    np.array([0.3, "a"], dtype=object), np.array([1 + 0j, 2 + 0j]), "0.3", True, np.bool_(False),
], ids=repr)
def test_vector_env_rejects_strings_and_bools(bad):
    with pytest.raises(TypeError, match="masspole"):
        make_vector_env("robustrl/CartPole-v1", 2, masspole=bad)
    venv = make_vector_env("robustrl/CartPole-v1", 2)
    with pytest.raises(TypeError, match="masspole"):
        venv.masspole = bad
    assert venv.masspole == 0.1


def test_vector_env_accepts_int_and_float32_arrays_and_lists():
    venv = make_vector_env("robustrl/CartPole-v1", 3, masspole=np.array([1, 2, 3]),
                           length=np.array([0.1, 0.2, 0.3], dtype=np.float32), gravity=[9, 9.8, np.float32(10)])
    assert venv.masspole.dtype == np.float64 and venv.length.dtype == np.float64
    np.testing.assert_allclose(venv.gravity, [9, 9.8, 10])
