"""Every hyperparameter a config can set is checked by AgentConfig.resolve, before anything is created."""

import inspect
import math

import pytest
from stable_baselines3 import DQN

import robustrl.envs  # noqa: F401  (registers the ids, for the state_scale length check)
from robustrl.agents import AgentConfig, RobustDQN, load_config
from robustrl.agents.hyperparameters import UNSUPPORTED_DQN_KEYS, check_dqn_kwargs

NOMINAL = "robustrl/CartPole-v1"


def resolve(agent="robust", **overrides):
    return AgentConfig.resolve(load_config(), NOMINAL, agent, overrides)


@pytest.mark.parametrize("key, value, message", [
    ("learning_rate", "abc", "learning_rate='abc'"),
    ("learning_rate", 0, "learning_rate=0"),
    ("learning_rate", -1e-3, "learning_rate=-0.001"),
    ("learning_rate", math.nan, "learning_rate=nan"),
    ("learning_rate", True, "learning_rate=True"),
    ("learning_rate", lambda progress: 1e-3, "schedule"),
    ("gamma", -1, "gamma=-1"),
    ("gamma", 1.5, "gamma=1.5"),
    ("gamma", "0.9", "gamma='0.9'"),
    ("gamma", True, "gamma=True"),
    ("batch_size", 0, "batch_size=0"),
    ("batch_size", 2.5, "batch_size=2.5"),
    ("batch_size", True, "batch_size=True"),
    ("buffer_size", 10, "buffer_size=10 and batch_size=64"),
    ("buffer_size", 0, "buffer_size=0"),
    ("learning_starts", -1, "learning_starts=-1"),
    ("exploration_fraction", 1.5, "exploration_fraction=1.5"),
    ("exploration_initial_eps", -0.1, "exploration_initial_eps=-0.1"),
    ("exploration_final_eps", "low", "exploration_final_eps='low'"),
    ("train_freq", 0, "train_freq=0"),
    ("train_freq", [4, "minute"], "train_freq=[4, 'minute']"),
    ("train_freq", [0, "step"], "train_freq=0"),
    ("gradient_steps", 0, "gradient_steps=0"),
    ("gradient_steps", -2, "gradient_steps=-2"),
    ("target_update_interval", 0, "target_update_interval=0"),
    ("tau", 0, "tau=0"),
    ("tau", 1.5, "tau=1.5"),
    ("max_grad_norm", 0, "max_grad_norm=0"),
    ("n_steps", 0, "n_steps=0"),
    ("stats_window_size", 0, "stats_window_size=0"),
    ("policy_kwargs", [64, 64], "policy_kwargs=[64, 64]"),
    ("policy_kwargs", {"net_arch": [64, 0]}, "net_arch=[64, 0]"),
    ("policy_kwargs", {"net_arch": "big"}, "net_arch='big'"),
    ("policy_kwargs", {"activation_fn": "nn.ReLU"}, "policy_kwargs.activation_fn"),
    ("rho", "abc", "rho='abc'"),
    ("rho", -0.1, "rho=-0.1"),
    ("rho", math.inf, "rho=inf"),
    ("eta", -1, "eta=-1"),
    ("eta", math.nan, "eta=nan"),
    ("eta", False, "eta=False"),
    ("eta", "0.5", "eta='0.5'"),
    ("rho", True, "rho=True"),
    ("n_samples", 0, "n_samples=0"),
    ("n_samples", 2.0, "n_samples=2.0"),
    ("norm", "l3", "norm='l3'"),
    ("estimator", "sg", "estimator='sg'"),
    ("mlmc_level", -1, "mlmc_level=-1"),
    ("state_scale", [1.0, 2.0], "4 entries"),
    ("state_scale", [1.0, 0.0, 1.0, 1.0], "state_scale=[1.0, 0.0, 1.0, 1.0]"),
    ("state_scale", "wide", "state_scale='wide'"),
    ("verbose", 1, "'verbose' is not supported"),
    ("optimize_memory_usage", True, "'optimize_memory_usage' is not supported"),
    ("replay_buffer_kwargs", {}, "'replay_buffer_kwargs' is not supported"),
    ("tensorboard_log", 3, "tensorboard_log=3"),
])
def test_bad_values_raise_naming_key_and_value(key, value, message):
    with pytest.raises(ValueError) as err:
        resolve(**{key: value})
    assert message in str(err.value) and "\n" not in str(err.value)
    if key not in UNSUPPORTED_DQN_KEYS:
        assert str(err.value).startswith(key)


@pytest.mark.parametrize("key, value", [
    ("rho", -0.1), ("eta", -1.0), ("n_samples", 0), ("norm", "l3"), ("estimator", "sg"), ("mlmc_level", -1),
    ("state_scale", [1.0, 0.0, 1.0, 1.0]),
])
def test_robust_messages_are_robust_dqns_own(key, value):
    """The early check raises what RobustDQN itself would raise for the same value."""
    with pytest.raises(ValueError) as early:
        resolve(**{key: value})
    with pytest.raises(ValueError) as late:
        RobustDQN("MlpPolicy", "CartPole-v1", **{key: value}, _init_setup_model=False)
    assert str(early.value).split(", got")[0] == str(late.value).split(", got")[0]


def test_good_values_pass_and_a_train_freq_pair_becomes_the_tuple_sb3_wants():
    cfg = resolve(learning_rate=1e-3, gamma=1, gradient_steps=-1, train_freq=[2, "episode"], tau=0.5,
                  exploration_fraction=0, eta=math.inf, rho=0, policy_kwargs={"net_arch": []}, n_steps=3)
    assert cfg.dqn_kwargs["train_freq"] == (2, "episode") and cfg.robust_kwargs["eta"] == math.inf
    DQN(cfg.policy, "CartPole-v1", **cfg.dqn_kwargs, _init_setup_model=True)  # SB3 accepts every checked value


def test_every_dqn_keyword_is_checked_or_refused():
    """A keyword SB3's DQN accepts is either checked or named as unsupported; none reaches SB3 unchecked."""
    names = [n for n in inspect.signature(DQN.__init__).parameters
             if n not in ("self", "policy", "env", "seed", "device", "_init_setup_model")]
    for name in names:
        value = object()
        with pytest.raises(ValueError, match=name):
            check_dqn_kwargs({name: value}, {"buffer_size": 10, "batch_size": 1})


def test_tensorboard_log_is_an_output_option_kept_out_of_the_dqn_kwargs_and_the_saved_config():
    pytest.importorskip("tensorboard")
    plain = resolve()
    in_file = {NOMINAL: {**load_config()[NOMINAL], "tensorboard_log": "tb"}}
    for cfg in (resolve(tensorboard_log="tb"), AgentConfig.resolve(in_file, NOMINAL, "robust")):
        assert cfg.tensorboard_log == "tb" and "tensorboard_log" not in cfg.dqn_kwargs
        assert cfg.to_dict() == plain.to_dict()  # the same run, with or without it
    assert resolve(tensorboard_log=None).tensorboard_log is None
    with pytest.raises(ValueError, match="'tensorboard_log' is an output option"):
        check_dqn_kwargs({"tensorboard_log": "tb"}, {"buffer_size": 10, "batch_size": 1})


def test_config_file_values_and_unknown_keys_are_checked_too():
    config = load_config()
    config[NOMINAL] = {**config[NOMINAL], "gamma": 2.0}
    with pytest.raises(ValueError, match="gamma=2.0"):
        AgentConfig.resolve(config, NOMINAL, "regular")
    config = load_config()
    config[NOMINAL] = {**config[NOMINAL], "policy": "TransformerPolicy"}
    with pytest.raises(ValueError, match="policy='TransformerPolicy'"):
        AgentConfig.resolve(config, NOMINAL, "regular")
    config = load_config()
    config[NOMINAL]["agents"]["robust"] = {**config[NOMINAL]["agents"]["robust"], "radius": 0.1}
    with pytest.raises(ValueError, match="'radius'"):
        AgentConfig.resolve(config, NOMINAL, "robust")


def test_the_domain_randomization_agent_trains_on_resampled_physics_and_others_keep_their_config_keys():
    from robustrl.agents import AgentConfig, load_config
    from robustrl.envs import NOMINAL_ID
    from robustrl.wrappers import DomainRandomization

    config = load_config()
    randomized = AgentConfig.resolve(config, NOMINAL_ID, "domain-randomization")
    assert randomized.algo == "DQN" and randomized.robust_kwargs == {}
    assert randomized.domain_randomization == {"force_mag": [5.0, 15.0], "length": [0.25, 0.75],
                                               "masspole": [0.05, 0.5], "gravity": [4.9, 14.7]}
    env = randomized.make_training_env()
    assert isinstance(env, DomainRandomization)
    assert env.reset(seed=0)[1]["physics"] != env.reset()[1]["physics"]
    regular = AgentConfig.resolve(config, NOMINAL_ID, "regular")
    assert "domain_randomization" not in regular.to_dict()  # configs saved before it still compare equal
    assert not isinstance(regular.make_training_env(), DomainRandomization)
    broken = {NOMINAL_ID: {**config[NOMINAL_ID], "agents": {"dr": {"domain_randomization": {"length": [1, 0.5]}}}}}
    with pytest.raises(ValueError, match=r"agents.dr.domain_randomization: length: the range must be"):
        AgentConfig.resolve(broken, NOMINAL_ID, "dr")
