"""Perturbed CartPole environments, registered with Gymnasium under the ``robustrl`` namespace.

Importing :mod:`robustrl` registers ``robustrl/CartPole-v1``, ``robustrl/CartPoleHeavy-v1``,
``robustrl/CartPoleShort-v1`` and ``robustrl/CartPoleStrongGravity-v1``.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
import numpy as np

from robustrl.checks import check_int

from robustrl.envs.cartpole import (
    NOMINAL_PARAMETERS,
    PHYSICAL_PARAMETERS,
    PerturbedCartPoleEnv,
    PerturbedCartPoleVectorEnv,
    check_physical_parameters,
)
from robustrl.envs.classic import (
    PerturbedAcrobotEnv,
    PerturbedContinuousMountainCarEnv,
    PerturbedMountainCarEnv,
    PerturbedPendulumEnv,
)

__all__ = [
    "ENV_IDS",
    "FAMILY_MODULES",
    "NOMINAL_ID",
    "NOMINAL_PARAMETERS",
    "PHYSICAL_PARAMETERS",
    "VARIANTS",
    "PerturbedAcrobotEnv",
    "PerturbedCartPoleEnv",
    "PerturbedCartPoleVectorEnv",
    "PerturbedContinuousMountainCarEnv",
    "PerturbedMountainCarEnv",
    "PerturbedPendulumEnv",
    "check_env_id",
    "check_physical_parameters",
    "make_vector_env",
    "register_envs",
    "robustrl_ids",
]

#: The nominal id (Gymnasium's CartPole physics), on which agents are trained and their models selected.
NOMINAL_ID = "robustrl/CartPole-v1"
#: Registered id -> the physical parameters it changes from the nominal CartPole (all others stay nominal).
#: The three perturbed ids are the test conditions of the reward table; training uses the nominal id.
VARIANTS: dict[str, dict[str, float]] = {
    NOMINAL_ID: {},
    "robustrl/CartPoleHeavy-v1": {"masspole": 5.0},
    "robustrl/CartPoleShort-v1": {"length": 0.1},
    "robustrl/CartPoleStrongGravity-v1": {"gravity": 40.0},
}
#: The four registered ids, nominal first: the keys of :data:`VARIANTS`.
ENV_IDS: tuple[str, ...] = tuple(VARIANTS)


#: Modules of the other environment families: each defines ``REGISTRATIONS``, registered id -> the keyword
#: arguments of ``gymnasium.register`` (entry points as strings, so registering imports no simulator).
FAMILY_MODULES: tuple[str, ...] = ("robustrl.envs.classic", "robustrl.envs.box2d", "robustrl.envs.mujoco")


def register_envs() -> None:
    """Register every robustrl id with Gymnasium (idempotent): CartPole's four and each family's."""
    for module_name in FAMILY_MODULES:
        module = importlib.import_module(module_name)
        for env_id, spec in module.REGISTRATIONS.items():
            if env_id not in gym.registry:
                gym.register(id=env_id, **spec)
    for env_id, change in VARIANTS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="robustrl.envs.cartpole:PerturbedCartPoleEnv",
            vector_entry_point="robustrl.envs.cartpole:PerturbedCartPoleVectorEnv",
            max_episode_steps=500,
            reward_threshold=475.0,
            kwargs=dict(change),
        )


def robustrl_ids() -> tuple[str, ...]:
    """Every id registered under the ``robustrl`` namespace."""
    return tuple(env_id for env_id in gym.registry if env_id.startswith("robustrl/"))


def check_env_id(env_id: str) -> str:
    """Return ``env_id`` if it is one of ours, else raise ``ValueError`` listing the valid ids."""
    if not isinstance(env_id, str) or not env_id.startswith("robustrl/") or env_id not in gym.registry:
        raise ValueError(f"unknown env id {env_id!r}; valid: {', '.join(robustrl_ids())}")
    return env_id


def _load(entry_point: str) -> Any:
    module, _, name = entry_point.partition(":")
    return getattr(importlib.import_module(module), name)


def make_vector_env(env_id: str, num_envs: int, max_episode_steps: int | None = None,
                    **parameters: Any) -> gym.vector.VectorEnv:
    """``num_envs`` sub-environments with the physics of ``env_id``, then ``parameters`` on top.

    ``parameters`` may be scalars or arrays of shape ``(num_envs,)`` (one value per sub-environment), so a whole
    parameter sweep is one batched rollout; ``max_episode_steps`` is the registered limit unless given. Where the
    family has a vector environment (CartPole) it is used; otherwise a Gymnasium ``SyncVectorEnv`` of one
    environment per sub-environment (``reset(seed=s)`` seeds sub-environment ``i`` with ``s + i``). Both reset
    a finished sub-environment on the step after it ends (Gymnasium's next-step mode).
    """
    check_int(num_envs, "num_envs", 1)
    spec = gym.spec(check_env_id(env_id))
    steps = spec.max_episode_steps if max_episode_steps is None else max_episode_steps
    physics = {**spec.kwargs, **parameters}
    if isinstance(spec.vector_entry_point, str):
        return _load(spec.vector_entry_point)(num_envs=num_envs, max_episode_steps=steps, **physics)
    family = _load(spec.entry_point)
    # Registered keyword arguments that are not physics (LunarLander's continuous, enable_wind) stay as registered.
    checked = family.check_params({k: v for k, v in physics.items() if k in family.PARAMETERS or k in parameters},
                                  num_envs)

    def make(index: int) -> Any:
        own = {name: value[index] if isinstance(value, np.ndarray) else value for name, value in checked.items()}
        return lambda: gym.make(env_id, max_episode_steps=steps, **own)

    return gym.vector.SyncVectorEnv([make(i) for i in range(num_envs)])


register_envs()
