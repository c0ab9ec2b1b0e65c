"""CartPole with every physical parameter a validated constructor argument.

Gymnasium's ``CartPoleEnv`` computes ``total_mass`` and ``polemass_length`` once, in ``__init__``;
setting ``masspole`` afterwards silently leaves them stale. Here the six physical parameters are
validated properties and the two derived quantities are computed from them on every access, so they
can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv, CartPoleVectorEnv

from robustrl.checks import check_int
from robustrl.envs.params import Parameter, ParametricEnv, check_parameters, parameter_property

__all__ = [
    "NOMINAL_PARAMETERS",
    "PARAMETERS",
    "PHYSICAL_PARAMETERS",
    "PerturbedCartPoleEnv",
    "PerturbedCartPoleVectorEnv",
    "check_physical_parameters",
]

#: The physical parameters of Gymnasium's ``CartPole-v1``, by name: the defaults of the constructors.
NOMINAL_PARAMETERS: dict[str, float] = {
    "gravity": 9.8,
    "masscart": 1.0,
    "masspole": 0.1,
    "length": 0.5,
    "force_mag": 10.0,
    "tau": 0.02,
}
#: The names of the six physical parameters, in the order of :data:`NOMINAL_PARAMETERS`.
PHYSICAL_PARAMETERS: tuple[str, ...] = tuple(NOMINAL_PARAMETERS)


#: The six parameters as :class:`~robustrl.envs.params.Parameter` records (each finite and > 0).
PARAMETERS: dict[str, Parameter] = {
    "gravity": Parameter("gravity", 9.8, "gravity (m/s²)"),
    "masscart": Parameter("masscart", 1.0, "cart mass (kg)"),
    "masspole": Parameter("masspole", 0.1, "pole mass (kg)"),
    "length": Parameter("length", 0.5, "pole half-length (m)"),
    "force_mag": Parameter("force_mag", 10.0, "push force (N)"),
    "tau": Parameter("tau", 0.02, "time step (s)"),
}


def check_physical_parameters(parameters: Mapping[str, Any], num_envs: int | None = None) -> dict[str, Any]:
    """Validate a mapping of physical parameters.

    Unknown names and values that are not finite and > 0 raise ``ValueError``; values that are not real
    numbers (strings, booleans, None, complex) raise ``TypeError``.
    """
    return check_parameters(parameters, PARAMETERS, "CartPole", num_envs)


def _physical_parameter(name: str) -> property:
    return parameter_property(name, f"Physical parameter ``{name}`` (validated: a real number, finite, > 0).")


def _derived(name: str, compute: Any) -> property:
    def setter(self: _PhysicsMixin, value: Any) -> None:
        # Gymnasium's __init__ assigns the derived value once; accept only that consistent value.
        if not np.allclose(value, compute(self)):
            raise AttributeError(f"{name} is derived from the physical parameters; set those instead")

    return property(compute, setter, doc=f"``{name}``, recomputed from the physical parameters on access.")


class _PhysicsMixin(ParametricEnv):
    """Validated physical parameters and always-consistent derived quantities."""

    PARAMETERS = PARAMETERS
    FAMILY = "CartPole"

    gravity = _physical_parameter("gravity")
    masscart = _physical_parameter("masscart")
    masspole = _physical_parameter("masspole")
    length = _physical_parameter("length")
    force_mag = _physical_parameter("force_mag")
    tau = _physical_parameter("tau")
    total_mass = _derived("total_mass", lambda self: self.masspole + self.masscart)
    polemass_length = _derived("polemass_length", lambda self: self.masspole * self.length)

    def safety_margin(self, observations: np.ndarray) -> np.ndarray:
        """``1 - max(|x| / x_threshold, |theta| / theta_threshold)`` per row of observations: 1 with the cart
        centred and the pole upright, 0 at the edge of termination (either limit). Model selection breaks ties
        of the nominal return by its mean over an episode's states (the task setting ``selection.margin``)."""
        observations = np.asarray(observations)
        return 1.0 - np.maximum(np.abs(observations[:, 0]) / self.x_threshold,
                                np.abs(observations[:, 2]) / self.theta_threshold_radians)

    def _apply_params(self, params: dict[str, Any]) -> None:
        """Nothing to write: the properties read the stored values and derive the rest on access."""

    @property
    def parameters(self) -> dict[str, Any]:
        """The six physical parameters as a dict (copies of arrays): :meth:`get_params`."""
        return self.get_params()

    def set_parameters(self, **parameters: Any) -> None:
        """Set several physical parameters at once; all are validated before any is changed (:meth:`set_params`)."""
        self.set_params(**parameters)


class PerturbedCartPoleEnv(_PhysicsMixin, CartPoleEnv):
    """Gymnasium's CartPole with its physics as constructor arguments.

    ## Description
    The classic cart-pole balancing task (Barto, Sutton, Anderson 1983) as implemented by Gymnasium's
    ``CartPoleEnv``; dynamics, spaces, reward and termination are unchanged. Only the physical
    parameters can be chosen, to build the perturbed MDPs of Wang, Gao, Xie (arXiv:2408.09672).

    ## Action and observation spaces
    ``Discrete(2)`` (push left / right); ``Box(4,)`` of (cart position, cart velocity, pole angle,
    pole angular velocity), as in ``CartPole-v1``.

    ## Parameters
    ``gravity`` (9.8), ``masscart`` (1.0), ``masspole`` (0.1), ``length`` (0.5, half the pole),
    ``force_mag`` (10.0), ``tau`` (0.02 s): each a real number (int or float, numpy ones included; a string
    or a bool raises ``TypeError``), finite and > 0 (else ``ValueError``).
    ``total_mass`` and ``polemass_length`` are derived on access and always consistent.
    Parameters may be changed later through ``env.unwrapped`` (attributes, :meth:`set_params`, or
    ``reset(options={"params": {...}})``); :meth:`get_params` reads them.

    ## Registered ids
    ``robustrl/CartPole-v1`` (nominal, any parameter as a kwarg), ``robustrl/CartPoleHeavy-v1``
    (masspole 5.0), ``robustrl/CartPoleShort-v1`` (length 0.1), ``robustrl/CartPoleStrongGravity-v1``
    (gravity 40.0); 500-step limit, reward threshold 475.

    ## Version history
    v1: first version, on Gymnasium's ``CartPole-v1`` dynamics.
    """

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        gravity: float = 9.8,
        masscart: float = 1.0,
        masspole: float = 0.1,
        length: float = 0.5,
        force_mag: float = 10.0,
        tau: float = 0.02,
        sutton_barto_reward: bool = False,
    ) -> None:
        checked = check_physical_parameters(
            dict(gravity=gravity, masscart=masscart, masspole=masspole, length=length,
                 force_mag=force_mag, tau=tau)
        )
        super().__init__(render_mode=render_mode, sutton_barto_reward=sutton_barto_reward)
        self.set_parameters(**checked)


class PerturbedCartPoleVectorEnv(_PhysicsMixin, CartPoleVectorEnv):
    """Vectorized :class:`PerturbedCartPoleEnv` (Gymnasium's ``CartPoleVectorEnv`` physics).

    Each physical parameter is a scalar shared by all sub-environments or an array of shape
    ``(num_envs,)``, one value per sub-environment, which makes parameter sweeps a single batched
    rollout. Sub-environments auto-reset on the step after they finish (Gymnasium's next-step mode).
    """

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = 500,
        render_mode: str | None = None,
        *,
        gravity: float | np.ndarray = 9.8,
        masscart: float | np.ndarray = 1.0,
        masspole: float | np.ndarray = 0.1,
        length: float | np.ndarray = 0.5,
        force_mag: float | np.ndarray = 10.0,
        tau: float | np.ndarray = 0.02,
        sutton_barto_reward: bool = False,
    ) -> None:
        check_int(num_envs, "num_envs", 1)
        self._parameter_num_envs = num_envs
        checked = check_physical_parameters(
            dict(gravity=gravity, masscart=masscart, masspole=masspole, length=length,
                 force_mag=force_mag, tau=tau),
            num_envs,
        )
        super().__init__(num_envs=num_envs, max_episode_steps=max_episode_steps, render_mode=render_mode,
                         sutton_barto_reward=sutton_barto_reward)
        self.set_parameters(**checked)
