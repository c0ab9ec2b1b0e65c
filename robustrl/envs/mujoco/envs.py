"""Gymnasium's MuJoCo v5 InvertedPendulum, Hopper, HalfCheetah and Walker2d with the parameter API.

Requires the ``robustrl[mujoco]`` extra. The parameters (:mod:`robustrl.envs.mujoco`) are RRLS's (Zouitine et
al. 2024), whose uncertainty sets copy M2TD3's (Tanabe et al. 2022): body masses, absolute, and (except for
InvertedPendulum) a multiplier of every geom's friction.

How a value reaches the simulator, in every family:

* each environment has its own compiled ``MjModel`` (Gymnasium loads one per instance), so two environments
  never share parameters;
* a mass is written into ``model.body_mass`` of the body found *by name* (``model.body(name).id``); only the
  mass changes, not the inertia tensor, as in RRLS and M2TD3, so a set of theirs means the same here;
* ``friction`` multiplies a copy of the model's nominal ``geom_friction`` (all geoms, all three coefficients:
  sliding, torsional, rolling), taken when the environment is built, so a value is absolute (``friction=2``
  twice is 2, not 4) and ``friction=1`` restores Gymnasium's exactly. MuJoCo gives a contact the larger
  friction of its two geoms, so scaling only the floor's (as RRLS's ``worldfriction`` does for Hopper and
  Walker2d) would change nothing below the foot's;
* then ``mujoco.mj_setConst`` recomputes the model's constants derived from the masses at the reference
  configuration (``body_subtreemass``, ``body_invweight0`` and ``dof_invweight0`` which set the softness of
  the contact and limit constraints, ``dof_M0``, ``actuator_acc0``), on a scratch ``MjData`` so the
  simulation state is untouched. RRLS does not, and its perturbed constraints keep the nominal model's
  softness. Gymnasium's observations of these four tasks are positions and velocities and use none of these
  constants, but the dynamics do. With the nominal values, mj_setConst reproduces the compiled constants bit
  for bit, so the nominal dynamics are Gymnasium's exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.inverted_pendulum_v5 import InvertedPendulumEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv
from gymnasium.utils import EzPickle

from robustrl.envs.mujoco import BODIES, PARAMETERS
from robustrl.envs.params import ParametricEnv

__all__ = [
    "PerturbedHalfCheetahEnv",
    "PerturbedHopperEnv",
    "PerturbedInvertedPendulumEnv",
    "PerturbedWalker2dEnv",
]


class _PerturbedMujocoEnv(ParametricEnv):
    """The parameter API over a Gymnasium MuJoCo env: masses by body name, a friction multiplier, mj_setConst.

    The constructor takes the family's parameters as keyword arguments (default: the nominal values) and
    passes every other keyword argument to Gymnasium's environment (``frame_skip``, ``reset_noise_scale``,
    ...), except ``xml_file``: the parameters and their nominal values are defined on Gymnasium's own model.
    """

    #: Parameter -> the name of the body whose mass it is.
    BODIES: Mapping[str, str] = {}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        params = {name: kwargs.pop(name) for name in list(kwargs) if name in self.PARAMETERS}
        stray = {name: value for name, value in kwargs.items() if name.endswith("mass") or "friction" in name}
        if stray:
            self.check_params(stray)  # raises ValueError naming them and listing the valid ones
        if "xml_file" in kwargs:
            raise ValueError(f"{type(self).__name__} does not take xml_file: its parameters and their "
                             "nominal values are defined on Gymnasium's model")
        checked = self.check_params({**self.nominal_params(), **params})
        super().__init__(render_mode=render_mode, **kwargs)  # type: ignore[call-arg]
        model = self.model
        self._body_ids = {name: model.body(body).id for name, body in self.BODIES.items()}
        self._nominal_geom_friction = model.geom_friction.copy()
        # Pickling and copying rebuild the environment from these (Gymnasium's EzPickle); set_params keeps the
        # parameters in them current.
        EzPickle.__init__(self, render_mode=render_mode, **kwargs, **checked)
        self.set_params(**checked)

    def _apply_params(self, params: dict[str, Any]) -> None:
        """Write the masses and the scaled frictions into the model and recompute its derived constants."""
        model = self.model
        for name, body_id in self._body_ids.items():
            model.body_mass[body_id] = params[name]
        if "friction" in params:
            np.multiply(self._nominal_geom_friction, params["friction"], out=model.geom_friction)
        mujoco.mj_setConst(model, mujoco.MjData(model))
        self._ezpickle_kwargs.update(params)


class PerturbedInvertedPendulumEnv(_PerturbedMujocoEnv, InvertedPendulumEnv):
    """Gymnasium's ``InvertedPendulum-v5`` with the pole's and the cart's masses as parameters.

    ## Description
    A pole hinged on a cart that moves along a rail; the task is to keep the pole upright (Gymnasium's
    ``InvertedPendulumEnv``, unchanged: spaces, reward, termination). With the nominal masses every step is
    bit-identical to Gymnasium's. The masses are RRLS's parameters (``RobustInvertedPendulum``); its sets
    (``polemass`` in [1, 31], then with ``cartmass`` in [1, 11], from M2TD3) are packaged as
    ``configs/uncertainty/invertedpendulum/rrls-1d.yml`` and ``rrls-2d.yml``.

    ## Action and observation spaces
    ``Box(-3, 3, (1,))``, the force on the cart; ``Box(4,)`` of cart position, pole angle and their
    velocities.

    ## Parameters
    ``polemass`` (5.018591641363306 kg) and ``cartmass`` (10.47197551196598 kg), absolute, each a real
    number, finite and > 0. Only ``body_mass`` changes, not the inertia (as in RRLS); the model's derived
    constants are recomputed (``mj_setConst``). Constructor keyword arguments, :meth:`set_params`,
    ``reset(options={"params": {...}})``; :meth:`get_params` reads them. Other keyword arguments go to
    Gymnasium's constructor (not ``xml_file``).

    ## Registered ids
    ``robustrl/InvertedPendulum-v5``: 1000-step limit, reward threshold 950, as Gymnasium's.

    ## Version history
    v5: first version, on Gymnasium's ``InvertedPendulum-v5``.
    """

    PARAMETERS = PARAMETERS["InvertedPendulum"]
    FAMILY = "InvertedPendulum"
    BODIES = BODIES["InvertedPendulum"]


class PerturbedHopperEnv(_PerturbedMujocoEnv, HopperEnv):
    """Gymnasium's ``Hopper-v5`` with its body masses and a friction multiplier as parameters.

    ## Description
    The one-legged hopper of Gymnasium's ``HopperEnv`` (Erez, Tassa, Todorov), unchanged: spaces, reward,
    termination. With the nominal parameters every step is bit-identical to Gymnasium's. The parameters are
    RRLS's (``RobustHopper``); its 1-D, 2-D and 3-D sets (from M2TD3) are packaged as
    ``configs/uncertainty/hopper/rrls-{1,2,3}d.yml``.

    ## Action and observation spaces
    ``Box(-1, 1, (3,))``, the torques of the thigh, leg and foot hinges; ``Box(11,)`` of positions (without
    the x coordinate) and velocities, as Gymnasium's.

    ## Parameters
    ``friction`` (1.0): multiplier of every geom's friction (floor 1.0, torso/thigh/leg 0.9, foot 2.0 at
    1.0); RRLS's ``worldfriction`` ``w`` sets only the floor's, which has no effect below the foot's 2.0: its
    ``w`` is ``friction = w / 1.0`` here, with the foot scaled alike. ``torsomass`` (3.6651914291880923),
    ``thighmass`` (4.057890510886818), ``legmass`` (2.7813566959781637), ``footmass`` (5.315574769873931):
    absolute masses (kg) of the bodies ``torso``, ``thigh``, ``leg``, ``foot``. Each a real number, finite and
    > 0. Only ``body_mass`` changes, not the inertia (as in RRLS); the derived constants are recomputed
    (``mj_setConst``). Constructor keyword arguments, :meth:`set_params`,
    ``reset(options={"params": {...}})``; :meth:`get_params` reads them. Other keyword arguments go to
    Gymnasium's constructor (not ``xml_file``).

    ## Registered ids
    ``robustrl/Hopper-v5``: 1000-step limit, reward threshold 3800, as Gymnasium's.

    ## Version history
    v5: first version, on Gymnasium's ``Hopper-v5``.
    """

    PARAMETERS = PARAMETERS["Hopper"]
    FAMILY = "Hopper"
    BODIES = BODIES["Hopper"]


class PerturbedHalfCheetahEnv(_PerturbedMujocoEnv, HalfCheetahEnv):
    """Gymnasium's ``HalfCheetah-v5`` with its body masses and a friction multiplier as parameters.

    ## Description
    The planar cheetah of Gymnasium's ``HalfCheetahEnv`` (Wawrzyński), unchanged: spaces, reward, no
    termination. With the nominal parameters every step is bit-identical to Gymnasium's. The parameters are
    RRLS's (``RobustHalfCheetah``); its 1-D, 2-D and 3-D sets (from M2TD3) are packaged as
    ``configs/uncertainty/halfcheetah/rrls-{1,2,3}d.yml``.

    ## Action and observation spaces
    ``Box(-1, 1, (6,))``, the torques of the six hinges; ``Box(17,)`` of positions (without the x coordinate)
    and velocities, as Gymnasium's.

    ## Parameters
    ``friction`` (1.0): multiplier of every geom's friction (all 0.4 at 1.0); RRLS's ``worldfriction`` ``w``
    sets every geom's sliding friction to ``w``, which is ``friction = w / 0.4`` here. ``torsomass``
    (6.25020920502092), ``backthighmass`` (1.5435146443514645), ``backshinmass`` (1.5874476987447697),
    ``backfootmass`` (1.0953974895397491), ``forwardthighmass`` (1.4380753138075317), ``forwardshinmass``
    (1.200836820083682), ``forwardfootmass`` (0.8845188284518829): absolute masses (kg) of the bodies
    ``torso``, ``bthigh``, ``bshin``, ``bfoot``, ``fthigh``, ``fshin``, ``ffoot``. Each a real number, finite
    and > 0. Only ``body_mass`` changes, not the inertia (as in RRLS); the derived constants are recomputed
    (``mj_setConst``). Constructor keyword arguments, :meth:`set_params`,
    ``reset(options={"params": {...}})``; :meth:`get_params` reads them. Other keyword arguments go to
    Gymnasium's constructor (not ``xml_file``).

    ## Registered ids
    ``robustrl/HalfCheetah-v5``: 1000-step limit, reward threshold 4800, as Gymnasium's.

    ## Version history
    v5: first version, on Gymnasium's ``HalfCheetah-v5``.
    """

    PARAMETERS = PARAMETERS["HalfCheetah"]
    FAMILY = "HalfCheetah"
    BODIES = BODIES["HalfCheetah"]


class PerturbedWalker2dEnv(_PerturbedMujocoEnv, Walker2dEnv):
    """Gymnasium's ``Walker2d-v5`` with its body masses and a friction multiplier as parameters.

    ## Description
    The planar biped of Gymnasium's ``Walker2dEnv`` (Erez, Tassa, Todorov), unchanged: spaces, reward,
    termination. With the nominal parameters every step is bit-identical to Gymnasium's. The parameters are
    RRLS's (``RobustWalker2d``); its 1-D, 2-D and 3-D sets (from M2TD3) are packaged as
    ``configs/uncertainty/walker2d/rrls-{1,2,3}d.yml``.

    ## Action and observation spaces
    ``Box(-1, 1, (6,))``, the torques of the six hinges; ``Box(17,)`` of positions (without the x coordinate)
    and velocities, as Gymnasium's.

    ## Parameters
    ``friction`` (1.0): multiplier of every geom's friction (floor 0.7, body 0.9, feet 1.9 at 1.0); RRLS's
    ``worldfriction`` ``w`` sets only the floor's, which has no effect on the feet's contacts below 1.9: its
    ``w`` is ``friction = w / 0.7`` here, with the feet scaled alike. ``torsomass`` (3.6651914291880923),
    ``thighmass`` (4.057890510886818), ``legmass`` (2.7813566959781637), ``footmass`` (3.1667253948185117),
    ``leftthighmass``, ``leftlegmass``, ``leftfootmass`` (as the right ones): absolute masses (kg) of the
    bodies ``torso``, ``thigh``, ``leg``, ``foot``, ``thigh_left``, ``leg_left``, ``foot_left``. Each a real
    number, finite and > 0. Only ``body_mass`` changes, not the inertia (as in RRLS); the derived constants
    are recomputed (``mj_setConst``). Constructor keyword arguments, :meth:`set_params`,
    ``reset(options={"params": {...}})``; :meth:`get_params` reads them. Other keyword arguments go to
    Gymnasium's constructor (not ``xml_file``).

    ## Registered ids
    ``robustrl/Walker2d-v5``: 1000-step limit, no reward threshold, as Gymnasium's.

    ## Version history
    v5: first version, on Gymnasium's ``Walker2d-v5``.
    """

    PARAMETERS = PARAMETERS["Walker2d"]
    FAMILY = "Walker2d"
    BODIES = BODIES["Walker2d"]
