"""Acrobot, MountainCar (discrete and continuous) and Pendulum with the parameter API.

Each class is Gymnasium's environment with its physical parameters declared as
:class:`~robustrl.envs.params.Parameter` records and served by :class:`~robustrl.envs.params.ParametricEnv`:
validated constructor keyword arguments, ``get_params()``, ``set_params(**params)`` and
``reset(options={"params": {...}})``. With the nominal values (Gymnasium's) every step is bit-identical to
Gymnasium's own environment.

Gymnasium keeps these parameters in plain attributes (Acrobot in upper-case *class* attributes, shared by
every instance). Here each of those attributes is a validated property of the subclass that reads and writes
the instance's own parameter values, so that changing one environment never changes another and
``get_params()`` always reports what the dynamics use, however the value was set.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from numpy import cos

from robustrl.envs.params import Parameter, ParametricEnv, parameter_property

__all__ = [
    "ACROBOT_GOAL_HEIGHT",
    "ACROBOT_PARAMETERS",
    "CONTINUOUS_MOUNTAIN_CAR_PARAMETERS",
    "MOUNTAIN_CAR_PARAMETERS",
    "PENDULUM_PARAMETERS",
    "REGISTRATIONS",
    "PerturbedAcrobotEnv",
    "PerturbedContinuousMountainCarEnv",
    "PerturbedMountainCarEnv",
    "PerturbedPendulumEnv",
]


def _records(*parameters: Parameter) -> dict[str, Parameter]:
    return {parameter.name: parameter for parameter in parameters}


#: Acrobot's seven parameters (Gymnasium's ``AcrobotEnv`` class attributes, nominal values equal to them).
ACROBOT_PARAMETERS: dict[str, Parameter] = _records(
    Parameter("link_length_1", 1.0, "length of link 1, pivot to joint (m); enters the dynamics and the tip height"),
    Parameter("link_length_2", 1.0, "length of link 2, joint to tip (m); only the tip height (termination) and "
                                     "the rendering use it: the dynamics depend on link 2 through its mass, centre "
                                     "of mass and moment of inertia"),
    Parameter("link_mass_1", 1.0, "mass of link 1 (kg)"),
    Parameter("link_mass_2", 1.0, "mass of link 2 (kg)"),
    Parameter("link_com_pos_1", 0.5, "distance from the pivot to the centre of mass of link 1 (m)"),
    Parameter("link_com_pos_2", 0.5, "distance from the joint to the centre of mass of link 2 (m)"),
    Parameter("link_moi", 1.0, "moment of inertia of each link (kg·m²): Gymnasium's single LINK_MOI, "
                               "shared by both links"),
)

#: Discrete MountainCar's two parameters (Gymnasium's ``force`` and ``gravity`` attributes).
MOUNTAIN_CAR_PARAMETERS: dict[str, Parameter] = _records(
    Parameter("force", 0.001, "velocity change per step of a full push, (action - 1) * force (position units "
                              "per step², i.e. m/step² in Gymnasium's units; the engine's strength)"),
    Parameter("gravity", 0.0025, "coefficient of cos(3 * position) in the per-step velocity change "
                                 "(m/step², not m/s²: the hill's pull, not a gravitational acceleration)"),
)

#: Continuous MountainCar's two parameters (Gymnasium's ``power`` and its literal 0.0025 gravity term).
CONTINUOUS_MOUNTAIN_CAR_PARAMETERS: dict[str, Parameter] = _records(
    Parameter("power", 0.0015, "velocity change per step per unit of action, force * power with the action "
                               "clipped to [-1, 1] (m/step²; the engine's strength)"),
    Parameter("gravity", 0.0025, "coefficient of cos(3 * position) in the per-step velocity change "
                                 "(m/step², not m/s²: the hill's pull, not a gravitational acceleration)"),
)

#: Pendulum's four parameters (Gymnasium's ``m``, ``l``, ``g`` and ``max_torque`` attributes).
PENDULUM_PARAMETERS: dict[str, Parameter] = _records(
    Parameter("m", 1.0, "mass of the pendulum (kg)"),
    Parameter("l", 1.0, "length of the pendulum (m)"),
    Parameter("g", 10.0, "gravitational acceleration (m/s²)"),
    Parameter("max_torque", 2.0, "largest torque the motor applies (N·m): actions are clipped to "
                                 "[-max_torque, max_torque] in step; the action space stays Box(-2, 2)"),
)

#: Acrobot's target: the episode terminates when the tip is higher than this above the pivot (m). Gymnasium's
#: literal 1.0 (drawn as the line at height 1 when rendering); it stays fixed when the link lengths change.
ACROBOT_GOAL_HEIGHT = 1.0

#: Registered id -> the keyword arguments of ``gymnasium.register``: the nominal ids, with the step limit and
#: reward threshold of Gymnasium's id of the same name (Pendulum-v1 has no reward threshold).
REGISTRATIONS: dict[str, dict[str, Any]] = {
    "robustrl/Acrobot-v1": {
        "entry_point": "robustrl.envs.classic:PerturbedAcrobotEnv",
        "max_episode_steps": 500,
        "reward_threshold": -100.0,
    },
    # Acrobot's perturbed ids, chosen by scripts/calibrate_task.py on held-out seeds 100-102 (its rule: the first
    # grid value at which a regular agent loses a quarter of the return range; results/calibration/acrobot.md).
    **{env_id: {"entry_point": "robustrl.envs.classic:PerturbedAcrobotEnv", "max_episode_steps": 500,
                "reward_threshold": -100.0, "kwargs": change}
       for env_id, change in {"robustrl/AcrobotHeavyUpperLink-v1": {"link_mass_1": 8.0},
                              "robustrl/AcrobotHeavyLowerLink-v1": {"link_mass_2": 3.0},
                              "robustrl/AcrobotLongUpperLink-v1": {"link_length_1": 4.0}}.items()},
    "robustrl/MountainCar-v0": {
        "entry_point": "robustrl.envs.classic:PerturbedMountainCarEnv",
        "max_episode_steps": 200,
        "reward_threshold": -110.0,
    },
    "robustrl/MountainCarContinuous-v0": {
        "entry_point": "robustrl.envs.classic:PerturbedContinuousMountainCarEnv",
        "max_episode_steps": 999,
        "reward_threshold": 90.0,
    },
    "robustrl/Pendulum-v1": {
        "entry_point": "robustrl.envs.classic:PerturbedPendulumEnv",
        "max_episode_steps": 200,
    },
    # Pendulum's perturbed ids, chosen by scripts/calibrate_task.py on held-out seeds 100-102 (a SAC agent;
    # results/calibration/pendulum.md).
    **{env_id: {"entry_point": "robustrl.envs.classic:PerturbedPendulumEnv", "max_episode_steps": 200,
                "kwargs": change}
       for env_id, change in {"robustrl/PendulumHeavy-v1": {"m": 3.0}, "robustrl/PendulumLong-v1": {"l": 2.0},
                              "robustrl/PendulumWeakMotor-v1": {"max_torque": 0.5}}.items()},
}


def _parameter_attribute(name: str, attribute: str) -> property:
    """Gymnasium's attribute ``attribute`` as a property over the instance's value of parameter ``name``."""
    return parameter_property(name, f"Gymnasium's ``{attribute}``: parameter ``{name}`` of this instance "
                                    "(validated on assignment, reported by ``get_params()``).")


class _InstanceParams(ParametricEnv):
    """The parameters are stored per instance and read by the properties: nothing else to write."""

    def _apply_params(self, params: dict[str, Any]) -> None:
        """Nothing to write: Gymnasium's code reads the properties, and nothing is derived from them."""

    def _init_params(self, checked: dict[str, float]) -> None:
        """After Gymnasium's ``__init__`` (which assigned its own defaults): the constructor's values, stored in
        the order of :attr:`PARAMETERS` (the order of ``get_params()``)."""
        self.__dict__["_params"] = {}
        self.set_params(**{name: checked[name] for name in self.PARAMETERS})


class PerturbedAcrobotEnv(_InstanceParams, AcrobotEnv):
    """Gymnasium's Acrobot with its link parameters as constructor arguments.

    ## Description
    The two-link underactuated swing-up of Sutton (1996, "Generalization in Reinforcement Learning: Successful
    Examples Using Sparse Coarse Coding") and Sutton & Barto's *Reinforcement Learning: An Introduction*, as
    implemented by Gymnasium's ``AcrobotEnv`` (book dynamics, RK4 with ``dt`` 0.2 s, gravity 9.8 m/s²); spaces,
    reward and start states are unchanged. Only the link parameters can be chosen.

    Gymnasium reads the parameters from upper-case class attributes (``LINK_MASS_1`` ...), shared by every
    instance; here each is a property over this instance's values, so that changing one environment never
    changes another (and ``AcrobotEnv`` itself is never touched).

    Gymnasium's termination, ``-cos(theta1) - cos(theta1 + theta2) > 1.0``, is the tip's height above the
    pivot for links of length 1 m. Here it is ``-link_length_1 * cos(theta1) - link_length_2 * cos(theta1 +
    theta2) > ACROBOT_GOAL_HEIGHT`` (1.0 m, fixed), bit-identical at the nominal lengths. With
    ``link_length_1 + link_length_2 <= 1`` the goal cannot be reached. The observation (cosines, sines and
    angular velocities) uses no length; the rendering draws the links at their lengths.

    ## Action and observation spaces
    ``Discrete(3)`` (torque -1, 0, +1 N·m on the joint between the links); ``Box(6,)`` of (cos theta1,
    sin theta1, cos theta2, sin theta2, theta1 velocity, theta2 velocity), as in ``Acrobot-v1``.

    ## Parameters
    ``link_length_1`` (1.0 m), ``link_length_2`` (1.0 m; it moves the tip only, see above), ``link_mass_1``
    (1.0 kg), ``link_mass_2`` (1.0 kg), ``link_com_pos_1`` (0.5 m, pivot to the centre of mass of link 1),
    ``link_com_pos_2`` (0.5 m, joint to the centre of mass of link 2), ``link_moi`` (1.0 kg·m²): see
    :data:`ACROBOT_PARAMETERS`. Each a real number (a string, a bool or None raises ``TypeError``), finite and
    > 0 (else ``ValueError``). ``link_moi`` is one parameter, the moment of inertia of both links, because
    Gymnasium has one ``LINK_MOI`` used for both: a single parameter keeps Gymnasium's ``_dsdt`` (the
    dynamics) unmodified. Parameters may be changed later through ``env.unwrapped`` (:meth:`set_params`,
    ``reset(options={"params": {...}})``, or Gymnasium's attributes ``LINK_MASS_1`` ...); :meth:`get_params`
    reads them.

    ## Registered ids
    ``robustrl/Acrobot-v1`` (nominal, any parameter as a kwarg): 500-step limit, reward threshold -100, as
    Gymnasium's ``Acrobot-v1``.

    ## Version history
    v1: first version, on Gymnasium's ``Acrobot-v1`` dynamics.
    """

    PARAMETERS = ACROBOT_PARAMETERS
    FAMILY = "Acrobot"

    LINK_LENGTH_1 = _parameter_attribute("link_length_1", "LINK_LENGTH_1")
    LINK_LENGTH_2 = _parameter_attribute("link_length_2", "LINK_LENGTH_2")
    LINK_MASS_1 = _parameter_attribute("link_mass_1", "LINK_MASS_1")
    LINK_MASS_2 = _parameter_attribute("link_mass_2", "LINK_MASS_2")
    LINK_COM_POS_1 = _parameter_attribute("link_com_pos_1", "LINK_COM_POS_1")
    LINK_COM_POS_2 = _parameter_attribute("link_com_pos_2", "LINK_COM_POS_2")
    LINK_MOI = _parameter_attribute("link_moi", "LINK_MOI")

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        link_length_1: float = 1.0,
        link_length_2: float = 1.0,
        link_mass_1: float = 1.0,
        link_mass_2: float = 1.0,
        link_com_pos_1: float = 0.5,
        link_com_pos_2: float = 0.5,
        link_moi: float = 1.0,
    ) -> None:
        checked = self.check_params({
            "link_length_1": link_length_1, "link_length_2": link_length_2, "link_mass_1": link_mass_1,
            "link_mass_2": link_mass_2, "link_com_pos_1": link_com_pos_1, "link_com_pos_2": link_com_pos_2,
            "link_moi": link_moi,
        })
        super().__init__(render_mode=render_mode)
        self._init_params(checked)

    def _terminal(self) -> bool:
        """Whether the tip is above :data:`ACROBOT_GOAL_HEIGHT`, with this instance's link lengths."""
        s = self.state
        assert s is not None, "Call reset before using AcrobotEnv object."
        height = -self.LINK_LENGTH_1 * cos(s[0]) - self.LINK_LENGTH_2 * cos(s[1] + s[0])
        return bool(height > ACROBOT_GOAL_HEIGHT)


class PerturbedMountainCarEnv(_InstanceParams, MountainCarEnv):
    """Gymnasium's discrete MountainCar with its force and gravity as constructor arguments.

    ## Description
    The under-powered car in a valley of Moore (1990, "Efficient Memory-based Learning for Robot Control",
    PhD thesis, University of Cambridge), as implemented by Gymnasium's ``MountainCarEnv``: ``velocity +=
    (action - 1) * force - cos(3 * position) * gravity``, then ``position += velocity``; spaces, clipping,
    reward and start states are unchanged. Only ``force`` and ``gravity`` can be chosen.

    ## Action and observation spaces
    ``Discrete(3)`` (push left, no push, push right); ``Box(2,)`` of (position, velocity), as in
    ``MountainCar-v0``.

    ## Parameters
    ``force`` (0.001 m/step²) and ``gravity`` (0.0025 m/step²; the coefficient of cos(3 * position) in the
    per-step velocity change, not an acceleration in m/s²): see :data:`MOUNTAIN_CAR_PARAMETERS`. Each a real
    number (a string, a bool or None raises ``TypeError``), finite and > 0 (else ``ValueError``).
    ``goal_velocity`` is Gymnasium's argument, passed on. Parameters may be changed later through
    ``env.unwrapped`` (:meth:`set_params`, ``reset(options={"params": {...}})``, or the attributes ``force``
    and ``gravity``); :meth:`get_params` reads them.

    ## Registered ids
    ``robustrl/MountainCar-v0`` (nominal, any parameter as a kwarg): 200-step limit, reward threshold -110,
    as Gymnasium's ``MountainCar-v0``.

    ## Version history
    v0: first version, on Gymnasium's ``MountainCar-v0`` dynamics.
    """

    PARAMETERS = MOUNTAIN_CAR_PARAMETERS
    FAMILY = "MountainCar"

    force = _parameter_attribute("force", "force")
    gravity = _parameter_attribute("gravity", "gravity")

    def __init__(
        self,
        render_mode: str | None = None,
        goal_velocity: float = 0,
        *,
        force: float = 0.001,
        gravity: float = 0.0025,
    ) -> None:
        checked = self.check_params({"force": force, "gravity": gravity})
        super().__init__(render_mode=render_mode, goal_velocity=goal_velocity)
        self._init_params(checked)


class PerturbedContinuousMountainCarEnv(_InstanceParams, Continuous_MountainCarEnv):
    """Gymnasium's continuous MountainCar with its power and gravity as constructor arguments.

    ## Description
    The continuous-action version of Moore's (1990) mountain car, as implemented by Gymnasium's
    ``Continuous_MountainCarEnv``: ``velocity += force * power - gravity * cos(3 * position)`` with ``force``
    the action clipped to [-1, 1]; spaces, clipping, reward and start states are unchanged. Gymnasium writes
    the gravity term as the literal ``0.0025``; :meth:`step` is Gymnasium's with that literal replaced by the
    ``gravity`` parameter (bit-identical at the nominal 0.0025).

    ## Action and observation spaces
    ``Box(-1, 1, (1,))`` (the push); ``Box(2,)`` of (position, velocity), as in ``MountainCarContinuous-v0``.

    ## Parameters
    ``power`` (0.0015 m/step², Gymnasium's name for the force factor) and ``gravity`` (0.0025 m/step²; the
    coefficient of cos(3 * position) in the per-step velocity change, not an acceleration in m/s²): see
    :data:`CONTINUOUS_MOUNTAIN_CAR_PARAMETERS`. Each a real number (a string, a bool or None raises
    ``TypeError``), finite and > 0 (else ``ValueError``). ``goal_velocity`` is Gymnasium's argument, passed
    on. Parameters may be changed later through ``env.unwrapped`` (:meth:`set_params`,
    ``reset(options={"params": {...}})``, or the attributes ``power`` and ``gravity``); :meth:`get_params`
    reads them.

    ## Registered ids
    ``robustrl/MountainCarContinuous-v0`` (nominal, any parameter as a kwarg): 999-step limit, reward
    threshold 90, as Gymnasium's ``MountainCarContinuous-v0``.

    ## Version history
    v0: first version, on Gymnasium's ``MountainCarContinuous-v0`` dynamics.
    """

    PARAMETERS = CONTINUOUS_MOUNTAIN_CAR_PARAMETERS
    FAMILY = "MountainCarContinuous"

    power = _parameter_attribute("power", "power")
    gravity = _parameter_attribute("gravity", "the literal 0.0025 of step")

    def __init__(
        self,
        render_mode: str | None = None,
        goal_velocity: float = 0,
        *,
        power: float = 0.0015,
        gravity: float = 0.0025,
    ) -> None:
        checked = self.check_params({"power": power, "gravity": gravity})
        super().__init__(render_mode=render_mode, goal_velocity=goal_velocity)
        self._init_params(checked)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Gymnasium's step, with the ``gravity`` parameter in place of its literal 0.0025."""
        position = self.state[0]
        velocity = self.state[1]
        force = min(max(action[0], self.min_action), self.max_action)

        velocity += force * self.power - self.gravity * math.cos(3 * position)
        # Gymnasium's four ``if x > bound: x = bound`` clips, written as min / max (the same values).
        velocity = min(velocity, self.max_speed)
        velocity = max(velocity, -self.max_speed)
        position += velocity
        position = min(position, self.max_position)
        position = max(position, self.min_position)
        if position == self.min_position and velocity < 0:
            velocity = 0

        # Convert a possible numpy bool to a Python bool.
        terminated = bool(position >= self.goal_position and velocity >= self.goal_velocity)

        reward = 0
        if terminated:
            reward = 100.0
        reward -= math.pow(action[0], 2) * 0.1

        self.state = np.array([position, velocity], dtype=np.float32)

        if self.render_mode == "human":
            self.render()
        # truncation=False as the time limit is handled by the `TimeLimit` wrapper added during `make`
        return self.state, reward, terminated, False, {}


class PerturbedPendulumEnv(_InstanceParams, PendulumEnv):
    """Gymnasium's Pendulum with its mass, length, gravity and torque limit as constructor arguments.

    ## Description
    The inverted-pendulum swing-up of Gymnasium's ``PendulumEnv`` (the classic control-theory problem; Gymnasium
    names no paper): ``thdot += (3 g / (2 l) sin(th) + 3 / (m l²) u) dt``; spaces, reward, the speed limit and
    start states are unchanged. Only ``m``, ``l``, ``g`` and ``max_torque`` can be chosen.

    ``max_torque`` and the action space: Gymnasium builds the action space ``Box(-max_torque, max_torque)``
    once, in ``__init__``, and clips the action to ``[-max_torque, max_torque]`` in every step. Here the action
    space is always Gymnasium's ``Box(-2.0, 2.0, (1,))``, whatever ``max_torque`` is, so that one agent acts in
    every perturbed environment; ``max_torque`` is the motor's limit, applied by the clip in ``step`` (the
    torque applied and the torque in the reward are both the clipped one). A smaller ``max_torque`` weakens the
    motor; a larger one only matters for actions outside the action space (which ``step`` accepts, as
    Gymnasium's does). The rendering draws the rod at Gymnasium's length whatever ``l`` is.

    ## Action and observation spaces
    ``Box(-2, 2, (1,))`` (the torque, N·m); ``Box(3,)`` of (cos theta, sin theta, angular velocity), as in
    ``Pendulum-v1``.

    ## Parameters
    ``m`` (1.0 kg), ``l`` (1.0 m), ``g`` (10.0 m/s²; Gymnasium's own ``g`` argument), ``max_torque``
    (2.0 N·m): see :data:`PENDULUM_PARAMETERS`. Each a real number (a string, a bool or None raises
    ``TypeError``), finite and > 0 (else ``ValueError``). Nothing is derived from them (Gymnasium's step
    reads all four every time). Parameters may be changed later through ``env.unwrapped``
    (:meth:`set_params`, ``reset(options={"params": {...}})``, or the attributes ``m``, ``l``, ``g``,
    ``max_torque``); :meth:`get_params` reads them.

    ## Registered ids
    ``robustrl/Pendulum-v1`` (nominal, any parameter as a kwarg): 200-step limit, no reward threshold, as
    Gymnasium's ``Pendulum-v1``.

    ## Version history
    v1: first version, on Gymnasium's ``Pendulum-v1`` dynamics.
    """

    PARAMETERS = PENDULUM_PARAMETERS
    FAMILY = "Pendulum"

    m = _parameter_attribute("m", "m")
    l = _parameter_attribute("l", "l")
    g = _parameter_attribute("g", "g")
    max_torque = _parameter_attribute("max_torque", "max_torque")

    def __init__(
        self,
        render_mode: str | None = None,
        g: float = 10.0,
        *,
        m: float = 1.0,
        l: float = 1.0,
        max_torque: float = 2.0,
    ) -> None:
        checked = self.check_params({"m": m, "l": l, "g": g, "max_torque": max_torque})
        super().__init__(render_mode=render_mode, g=checked["g"])
        self._init_params(checked)
