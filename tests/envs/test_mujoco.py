"""MuJoCo families (robustrl.envs.mujoco): registrations, nominal dynamics equal to Gymnasium's, the parameter
API, and the packaged RRLS uncertainty sets."""

import copy
import inspect
import math
import pickle
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
import yaml

pytest.importorskip("mujoco", reason="MuJoCo is not installed: the robustrl[mujoco] extra is not installed")

import gymnasium as gym
from gymnasium.utils.env_checker import check_env

import robustrl  # noqa: F401  (registers the ids)
from robustrl.envs.mujoco import BODIES, FLOOR_FRICTION, PARAMETERS, REGISTRATIONS
from tests.envs.traces import assert_same_trace

#: Family -> (robustrl id, Gymnasium id, uncertainty task folder).
FAMILIES = {
    "InvertedPendulum": ("robustrl/InvertedPendulum-v5", "InvertedPendulum-v5", "invertedpendulum"),
    "Hopper": ("robustrl/Hopper-v5", "Hopper-v5", "hopper"),
    "HalfCheetah": ("robustrl/HalfCheetah-v5", "HalfCheetah-v5", "halfcheetah"),
    "Walker2d": ("robustrl/Walker2d-v5", "Walker2d-v5", "walker2d"),
}
FAMILY_PARAMS = [(family, name) for family in FAMILIES for name in PARAMETERS[family]]
#: Model arrays that a parameter writes or mj_setConst derives from it.
MODEL_ARRAYS = ["body_mass", "geom_friction", "body_subtreemass", "body_invweight0", "dof_invweight0",
                "dof_M0", "actuator_acc0"]


def make(family: str, **kwargs):
    return gym.make(FAMILIES[family][0], **kwargs).unwrapped


def nominal(family: str) -> dict[str, float]:
    return {name: parameter.nominal for name, parameter in PARAMETERS[family].items()}


def changed_value(family: str, name: str) -> float:
    return 2 * PARAMETERS[family][name].nominal


def assert_same_model(a, b) -> None:
    for field in MODEL_ARRAYS:
        assert np.array_equal(getattr(a.model, field), getattr(b.model, field)), field


@pytest.mark.parametrize("family", FAMILIES)
def test_registration_mirrors_gymnasium(family):
    ours, theirs = gym.spec(FAMILIES[family][0]), gym.spec(FAMILIES[family][1])
    assert ours.max_episode_steps == theirs.max_episode_steps == 1000
    assert ours.reward_threshold == theirs.reward_threshold
    assert ours.kwargs == theirs.kwargs == {}
    assert set(REGISTRATIONS) == {ids[0] for ids in FAMILIES.values()}


@pytest.mark.parametrize("family", FAMILIES)
def test_nominal_values_are_the_loaded_models(family):
    model = gym.make(FAMILIES[family][1]).unwrapped.model
    for name, body in BODIES[family].items():
        assert model.body_mass[model.body(body).id] == PARAMETERS[family][name].nominal, name
    if family in FLOOR_FRICTION:
        assert model.geom_friction[model.geom("floor").id, 0] == FLOOR_FRICTION[family]
        assert PARAMETERS[family]["friction"].nominal == 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_env_checker(family):
    check_env(make(family), skip_render_check=True)
    check_env(make(family, **{name: changed_value(family, name) for name in PARAMETERS[family]}),
              skip_render_check=True)


def trace(env: gym.Env, seed: int, steps: int = 250) -> list:
    """Observations, rewards, terminated and truncated of ``steps`` seeded random actions, through resets."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for t in range(steps):
        obs, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        out.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + t)
            out.append(obs)
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_nominal_dynamics_equal_gymnasium_step_for_step(family):
    ours = trace(gym.make(FAMILIES[family][0], max_episode_steps=80), 2)
    theirs = trace(gym.make(FAMILIES[family][1], max_episode_steps=80), 2)
    assert sum(1 for x in ours if not isinstance(x, tuple)) >= 3  # at least two episode ends
    assert_same_trace(ours, theirs)


def lockstep_pair(family: str, steps: int = 25, contact: bool = False):
    """Two nominal environments in the same state after ``steps`` identical random steps (with ``contact``, at
    least that many and until the body touches the floor)."""
    pair = make(family), make(family)
    for env in pair:
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        for t in range(200):
            if t >= steps and (env.data.ncon > 0 or not contact):
                break
            env.step(rng.uniform(-1, 1, env.action_space.shape))
    return pair


def steps(env, n: int = 5) -> list:
    rng = np.random.default_rng(1)
    return [env.step(rng.uniform(-1, 1, env.action_space.shape))[:3] for _ in range(n)]


def assert_same_steps(a: list, b: list) -> None:
    for x, y in zip(a, b):
        assert np.array_equal(x[0], y[0]) and x[1:] == y[1:]


@pytest.mark.parametrize("family,name", FAMILY_PARAMS)
def test_set_params_changes_the_next_step(family, name):
    changed, unchanged = lockstep_pair(family, contact=name == "friction")
    if name == "friction":
        assert changed.data.ncon > 0  # touching the floor, where friction acts
    value = changed_value(family, name)
    changed.set_params(**{name: value})
    assert changed.get_params() == {**nominal(family), name: value}
    assert not np.array_equal(steps(changed, 1)[0][0], steps(unchanged, 1)[0][0])


@pytest.mark.parametrize("family,name", FAMILY_PARAMS)
def test_values_are_absolute(family, name):
    env, unchanged = lockstep_pair(family)
    value = changed_value(family, name)
    env.set_params(**{name: value})
    env.set_params(**{name: value})
    model = env.model
    if name == "friction":
        np.testing.assert_array_equal(model.geom_friction, 2 * unchanged.model.geom_friction)
    else:
        assert model.body_mass[model.body(BODIES[family][name]).id] == value
    env.set_params(**{name: PARAMETERS[family][name].nominal})
    assert env.get_params() == nominal(family)
    assert_same_model(env, unchanged)
    assert_same_steps(steps(env), steps(unchanged))


@pytest.mark.parametrize("family,name", FAMILY_PARAMS)
def test_reset_option_and_constructor_apply_the_value(family, name):
    value = changed_value(family, name)
    built = make(family, **{name: value})
    reset = make(family)
    reset.reset(seed=4, options={"params": {name: value}})
    built.reset(seed=4)
    assert built.get_params()[name] == reset.get_params()[name] == value
    assert_same_model(built, reset)
    assert_same_steps(steps(built), steps(reset))


@pytest.mark.parametrize("family", FAMILIES)
def test_masses_refresh_the_derived_constants(family):
    env = make(family)
    name = next(iter(BODIES[family]))
    before = env.model.body_subtreemass.copy()
    env.set_params(**{name: 3 * PARAMETERS[family][name].nominal})
    assert env.model.body_subtreemass[0] > before[0]  # the world's subtree holds every body
    assert env.model.body_subtreemass[0] == pytest.approx(env.model.body_mass.sum())


@pytest.mark.parametrize("family", FAMILIES)
def test_unknown_parameter_lists_the_valid_ones(family):
    env = make(family)
    valid = list(PARAMETERS[family])[-1]
    with pytest.raises(ValueError, match=f"unknown.*valid.*{valid}"):
        env.set_params(worldfriction=1.0)
    with pytest.raises(ValueError, match=f"headmass.*valid.*{valid}"):
        env.reset(options={"params": {"headmass": 1.0}})
    with pytest.raises(ValueError, match=f"worldfriction.*valid.*{valid}"):
        make(family, worldfriction=1.0)
    with pytest.raises(ValueError, match="xml_file"):
        make(family, xml_file="other.xml")
    assert env.get_params() == nominal(family)


@pytest.mark.parametrize("family,name", FAMILY_PARAMS)
def test_wrong_types_raise_type_error_naming_the_parameter(family, name):
    env = make(family)
    for bad in ("a", True, None):
        with pytest.raises(TypeError, match=name):
            env.set_params(**{name: bad})
        with pytest.raises(TypeError, match=name):
            env.reset(options={"params": {name: bad}})
    with pytest.raises(TypeError, match=name):
        make(family, **{name: "a"})
    assert env.get_params() == nominal(family)


@pytest.mark.parametrize("family,name", FAMILY_PARAMS)
def test_invalid_values_raise_value_error_and_change_nothing(family, name):
    env, unchanged = lockstep_pair(family, steps=3)
    other = next(n for n in PARAMETERS[family] if n != name)
    for bad in (math.nan, math.inf, 0.0, -1.0):
        with pytest.raises(ValueError, match=name):
            env.set_params(**{other: changed_value(family, other), name: bad})
        with pytest.raises(ValueError, match=name):
            env.reset(options={"params": {name: bad}})
    with pytest.raises(ValueError, match=name):
        make(family, **{name: -1.0})
    assert env.get_params() == nominal(family)  # nothing half-written
    assert_same_model(env, unchanged)
    assert_same_steps(steps(env, 3), steps(unchanged, 3))


@pytest.mark.parametrize("family", FAMILIES)
def test_two_instances_do_not_share_parameters(family):
    changed, other = make(family), make(family)
    assert changed.model is not other.model
    changed.set_params(**{name: changed_value(family, name) for name in PARAMETERS[family]})
    assert other.get_params() == nominal(family)
    assert_same_model(other, gym.make(FAMILIES[family][1]).unwrapped)


@pytest.mark.parametrize("family", FAMILIES)
def test_copies_keep_the_parameters(family):
    name = next(iter(BODIES[family]))
    env = make(family, reset_noise_scale=0.02)
    env.set_params(**{name: 1.5})
    for clone in (copy.deepcopy(env), pickle.loads(pickle.dumps(env))):
        assert clone.get_params() == env.get_params()
        assert_same_model(clone, env)


def test_importing_robustrl_does_not_import_mujoco():
    code = ("import sys, gymnasium as gym, robustrl; gym.spec('robustrl/Hopper-v5'); "
            "assert 'mujoco' not in sys.modules and 'robustrl.envs.mujoco.envs' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- The packaged RRLS uncertainty sets -------------------------------------------------------------------

#: RRLS's ParamsBound enums (SuReLI/RRLS rrls/envs/*.py), restated here to check the files against.
RRLS_BOUNDS = {
    "InvertedPendulum": [{"polemass": (1.0, 31.0)}, {"polemass": (1.0, 31.0), "cartmass": (1.0, 11.0)}],
    "Hopper": [{"worldfriction": (0.1, 3.0)}, {"worldfriction": (0.1, 3.0), "torsomass": (0.1, 3.0)},
               {"worldfriction": (0.1, 3.0), "torsomass": (0.1, 3.0), "thighmass": (0.1, 4.0)}],
    "HalfCheetah": [{"worldfriction": (0.1, 3.0)}, {"worldfriction": (0.1, 4.0), "torsomass": (0.1, 7.0)},
                    {"worldfriction": (0.1, 4.0), "torsomass": (0.1, 7.0), "backthighmass": (0.1, 3.0)}],
    "Walker2d": [{"worldfriction": (0.1, 4.0)}, {"worldfriction": (0.1, 4.0), "torsomass": (0.1, 5.0)},
                 {"worldfriction": (0.1, 4.0), "torsomass": (0.1, 5.0), "thighmass": (0.1, 6.0)}],
}
SET_FILES = [(family, dim) for family, sets in RRLS_BOUNDS.items() for dim in range(1, len(sets) + 1)]


def try_loader(path, task: str):
    """The set as robustrl's loader parses it, or None where the loader refuses it (unknown task or parameter,
    a range without the nominal value)."""
    from robustrl.experiments.uncertainty import load_uncertainty_set

    try:
        if "task" in inspect.signature(load_uncertainty_set).parameters:
            return load_uncertainty_set(path, task=task)
        return load_uncertainty_set(path)
    except (ValueError, KeyError, LookupError, FileNotFoundError):
        return None


def test_each_task_folder_holds_exactly_the_rrls_sets():
    for family, (_, _, task) in FAMILIES.items():
        folder = resources.files("robustrl").joinpath(f"configs/uncertainty/{task}")
        names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".yml"))
        assert names == [f"rrls-{dim}d.yml" for dim in range(1, len(RRLS_BOUNDS[family]) + 1)]


@pytest.mark.parametrize("family,dim", SET_FILES)
def test_packaged_rrls_set(family, dim):
    task = FAMILIES[family][2]
    path = resources.files("robustrl").joinpath(f"configs/uncertainty/{task}/rrls-{dim}d.yml")
    data = yaml.safe_load(path.read_text())
    assert data["name"] == f"{task}-rrls-{dim}d"
    records = PARAMETERS[family]
    expected = {("friction" if name == "worldfriction" else name):
                ((low / FLOOR_FRICTION[family], high / FLOOR_FRICTION[family]) if name == "worldfriction"
                 else (low, high))
                for name, (low, high) in RRLS_BOUNDS[family][dim - 1].items()}
    assert list(data["parameters"]) == list(expected)
    for name, entry in data["parameters"].items():
        assert name in records
        low, high = entry["range"]
        assert (low, high) == expected[name]
        values = entry["values"]
        assert values == np.linspace(low, high, 10).tolist()  # 10 points, both bounds included
        assert values[0] == low and values[-1] == high
        assert records[name].admits(values).all()
    loaded = try_loader(str(path), task)
    if loaded is not None:
        assert loaded.values == {name: entry["values"] for name, entry in data["parameters"].items()}


def test_hopper_names_its_own_suite_the_actor_critic_one_without_the_3d_set():
    from robustrl.experiments.suite import ACTOR_CRITIC_SUITE, default_suite_name, load_suite
    from robustrl.tasks import get_task

    assert default_suite_name([], "hopper") == "hopper"
    own, actor_critic = load_suite("hopper", "hopper"), load_suite(ACTOR_CRITIC_SUITE, "hopper")
    assert own.name == "hopper" and own.channels == actor_critic.channels
    assert own.attack == actor_critic.attack
    assert [s.name for s in own.sets] == ["hopper-rrls-1d", "hopper-rrls-2d"]
    assert [s.name for s in actor_critic.sets] == ["hopper-rrls-1d", "hopper-rrls-2d", "hopper-rrls-3d"]
    assert own.state_scale == list(get_task("hopper").state_scale)
