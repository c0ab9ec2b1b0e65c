"""Gymnasium's LunarLander with its physics as validated parameters (requires the ``robustrl[box2d]`` extra).

Gymnasium reads the engine powers from module constants (``MAIN_ENGINE_POWER``, ``SIDE_ENGINE_POWER``) inside
``LunarLander.step``; changing those constants would change every LunarLander in the process. Here each
environment runs Gymnasium's own ``step`` code (the same code object, so the nominal dynamics are
bit-identical) with a private copy of the module's global names in which the two constants are the
instance's parameters.
Gravity is written into the live Box2D world (``world.gravity``) and into Gymnasium's ``gravity`` attribute,
which ``reset`` reads when it builds the next world.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium.envs.box2d import lunar_lander as _gym_lunar_lander
from gymnasium.envs.box2d.lunar_lander import LunarLander
from gymnasium.utils import EzPickle

from robustrl.envs.box2d import GRAVITY_LIMIT, LUNAR_LANDER_PARAMETERS
from robustrl.envs.params import ParametricEnv

__all__ = ["ENGINE_CONSTANTS", "PerturbedLunarLanderEnv"]

#: Parameter -> the module constant of ``gymnasium.envs.box2d.lunar_lander`` that ``LunarLander.step`` reads.
ENGINE_CONSTANTS: dict[str, str] = {
    "main_engine_power": "MAIN_ENGINE_POWER",
    "side_engine_power": "SIDE_ENGINE_POWER",
}

_missing = sorted(set(ENGINE_CONSTANTS.values()) - set(LunarLander.step.__code__.co_names))
if _missing:  # pragma: no cover - guards against a Gymnasium that no longer reads the constants in step
    raise ImportError(f"gymnasium's LunarLander.step no longer reads {_missing}; robustrl's engine-power "
                      "parameters would have no effect: update robustrl.envs.box2d.lunar_lander")


class PerturbedLunarLanderEnv(ParametricEnv, LunarLander):
    """Gymnasium's LunarLander with gravity, wind and engine powers as parameters.

    ## Description
    The rocket-landing task of Gymnasium's ``LunarLander`` (Oleg Klimov), unchanged: the same Box2D world,
    terrain, reward and termination; with the nominal parameters every step is bit-identical to Gymnasium's.
    Only the physical parameters can be chosen, per instance, and changed between steps.

    ## Action and observation spaces
    As Gymnasium's: ``Discrete(4)`` (nothing, left engine, main engine, right engine), or with
    ``continuous=True`` ``Box(-1, 1, (2,))`` (main throttle, side throttle); ``Box(8,)`` of position,
    velocity, angle, angular velocity and the two leg contacts.

    ## Parameters
    ``gravity`` (10.0): the *magnitude* of the gravity (the world's is ``(0, -gravity)``),
    ``0 < gravity < 12`` as Gymnasium asserts ``-12 < gravity < 0`` (Gymnasium's ``gravity=-10.0`` is
    ``gravity=10.0`` here; a negative value raises ``ValueError`` saying so). ``wind_power`` (15.0) and
    ``turbulence_power`` (1.5), ``>= 0``: only used when the environment was built with ``enable_wind=True``;
    with wind disabled they have no effect (and ``enable_wind`` also changes how ``reset`` draws from the
    seed). ``main_engine_power`` (13.0) and ``side_engine_power`` (0.6), ``> 0``: the impulse scales of the
    engines (Gymnasium's module constants, here per instance). Each is a real number (``TypeError``
    otherwise), finite and inside its range (``ValueError`` otherwise). :meth:`set_params` and
    ``reset(options={"params": {...}})`` change them; the change applies from the next step (gravity
    immediately in the current Box2D world, and in every world ``reset`` builds afterwards).
    :meth:`get_params` reads them.

    ## Registered ids
    ``robustrl/LunarLander-v3`` (discrete) and ``robustrl/LunarLanderContinuous-v3`` (``continuous=True``), as
    Gymnasium's ``LunarLander-v3`` / ``LunarLanderContinuous-v3``: 1000-step limit, reward threshold 200.

    ## Version history
    v3: first version, on Gymnasium's ``LunarLander-v3`` dynamics.
    """

    PARAMETERS = LUNAR_LANDER_PARAMETERS
    FAMILY = "LunarLander"

    def __init__(
        self,
        render_mode: str | None = None,
        continuous: bool = False,
        *,
        gravity: float = 10.0,
        enable_wind: bool = False,
        wind_power: float = 15.0,
        turbulence_power: float = 1.5,
        main_engine_power: float = 13.0,
        side_engine_power: float = 0.6,
    ) -> None:
        for name, flag in (("continuous", continuous), ("enable_wind", enable_wind)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {name}={flag!r}")
        checked = self.check_params({"gravity": gravity, "wind_power": wind_power,
                                     "turbulence_power": turbulence_power,
                                     "main_engine_power": main_engine_power,
                                     "side_engine_power": side_engine_power})
        super().__init__(render_mode=render_mode, continuous=bool(continuous), gravity=-checked["gravity"],
                         enable_wind=bool(enable_wind), wind_power=checked["wind_power"],
                         turbulence_power=checked["turbulence_power"])
        # Gymnasium's step, run with this instance's own copy of the module's global names.
        self._step_globals = dict(vars(_gym_lunar_lander))
        step = LunarLander.step
        self._gymnasium_step = types.FunctionType(step.__code__, self._step_globals, step.__name__,
                                                  step.__defaults__, step.__closure__)
        # Pickling and copying rebuild the environment from these (Gymnasium's EzPickle); set_params keeps the
        # parameters in them current.
        EzPickle.__init__(self, render_mode=render_mode, continuous=bool(continuous),
                          enable_wind=bool(enable_wind), **checked)
        self.set_params(**checked)

    @classmethod
    def check_params(cls, values: Any, num_envs: int | None = None) -> dict[str, Any]:
        """Validate ``values`` (see :func:`~robustrl.envs.params.check_parameters`), and ``gravity < 12``."""
        try:
            checked = super().check_params(values, num_envs)
        except ValueError as err:
            gravity = values.get("gravity") if isinstance(values, Mapping) else None
            if str(err).startswith("gravity") and isinstance(gravity, (int, float)) and gravity < 0:
                raise ValueError(f"{err}: robustrl's gravity is the magnitude (Gymnasium's gravity=-10.0 is "
                                 "gravity=10.0 here)") from None
            raise
        if "gravity" in checked:
            too_large = np.ravel(checked["gravity"]) >= GRAVITY_LIMIT  # a scalar, or one value per sub-env
            if too_large.any():
                got = float(np.ravel(checked["gravity"])[np.argmax(too_large)])
                raise ValueError(f"gravity must be < {GRAVITY_LIMIT:g} (Gymnasium asserts -12 < gravity < 0), "
                                 f"got gravity={got!r}")
        return checked

    def _apply_params(self, params: dict[str, Any]) -> None:
        """Write the parameters where Gymnasium reads them: ``gravity`` (negated) for the next ``reset``
        and into the current world, the wind attributes, and the engine constants of this instance's
        ``step``."""
        self.gravity = -params["gravity"]
        self.world.gravity = (0, self.gravity)
        self.wind_power = params["wind_power"]
        self.turbulence_power = params["turbulence_power"]
        for name, constant in ENGINE_CONSTANTS.items():
            self._step_globals[constant] = params[name]
        self._ezpickle_kwargs.update(params)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Gymnasium's ``LunarLander.step`` (the same code), with this instance's engine powers."""
        return self._gymnasium_step(self, action)
