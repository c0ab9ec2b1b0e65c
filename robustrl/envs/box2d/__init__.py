"""LunarLander (Box2D) with the parameter API: the parameter records and the Gymnasium registrations.

This module is light: it imports neither Box2D nor pygame (the environment itself is in
:mod:`robustrl.envs.box2d.lunar_lander`, imported by ``gymnasium.make`` through the string entry points), so
importing :mod:`robustrl` works without the ``robustrl[box2d]`` extra.

The five parameters and their valid ranges follow Gymnasium's ``LunarLander``
(``gymnasium.envs.box2d.lunar_lander``):

* ``gravity`` is the *magnitude* of the gravitational acceleration, 10.0 nominal, valid in
  ``0 < gravity < 12``: Gymnasium's constructor takes the signed value (``gravity=-10.0``) and asserts
  ``-12 < gravity < 0``; the parameter API's ranges are lower bounds
  (:class:`~robustrl.envs.params.Parameter`), so the sign is dropped and the upper bound 12 is checked by the
  environment. Gymnasium's ``gravity=-10.0`` is robustrl's ``gravity=10.0``.
* ``wind_power`` (15.0) and ``turbulence_power`` (1.5), both ``>= 0``, act only in an environment built with
  ``enable_wind=True`` (Gymnasium's constructor argument, kept); with wind disabled they change nothing.
  Gymnasium recommends ``wind_power <= 20`` and ``turbulence_power <= 2`` (it warns, it does not refuse).
* ``main_engine_power`` (13.0) and ``side_engine_power`` (0.6), both ``> 0``: Gymnasium's module constants
  ``MAIN_ENGINE_POWER`` and ``SIDE_ENGINE_POWER``, here per environment instance.
"""

from __future__ import annotations

from typing import Any

from robustrl.envs.params import Parameter

__all__ = [
    "GRAVITY_LIMIT",
    "LUNAR_LANDER_PARAMETERS",
    "REGISTRATIONS",
]

#: Gymnasium asserts ``-12 < gravity < 0``: robustrl's ``gravity`` (the magnitude) must be below this.
GRAVITY_LIMIT = 12.0

#: LunarLander's five parameters; nominal values equal Gymnasium's defaults and module constants.
LUNAR_LANDER_PARAMETERS: dict[str, Parameter] = {
    "gravity": Parameter("gravity", 10.0, "magnitude of the gravitational acceleration (Box2D units; the "
                                          "world's gravity is (0, -gravity), Gymnasium's gravity=-10.0); "
                                          "must be < 12"),
    "wind_power": Parameter("wind_power", 15.0, "maximum magnitude of the linear wind force (only with "
                                                "enable_wind=True)", inclusive=True),
    "turbulence_power": Parameter("turbulence_power", 1.5, "maximum magnitude of the rotational wind torque "
                                                           "(only with enable_wind=True)", inclusive=True),
    "main_engine_power": Parameter("main_engine_power", 13.0, "main engine impulse scale (Gymnasium's "
                                                              "MAIN_ENGINE_POWER)"),
    "side_engine_power": Parameter("side_engine_power", 0.6, "side engine impulse scale (Gymnasium's "
                                                             "SIDE_ENGINE_POWER)"),
}

_ENTRY_POINT = "robustrl.envs.box2d.lunar_lander:PerturbedLunarLanderEnv"

#: Registered id -> ``gymnasium.register`` keyword arguments: those of Gymnasium's ``LunarLander-v3`` and
#: ``LunarLanderContinuous-v3`` (the same class with ``continuous=True``), with robustrl's entry point.
REGISTRATIONS: dict[str, dict[str, Any]] = {
    "robustrl/LunarLander-v3": {"entry_point": _ENTRY_POINT, "max_episode_steps": 1000,
                                "reward_threshold": 200},
    "robustrl/LunarLanderContinuous-v3": {"entry_point": _ENTRY_POINT, "kwargs": {"continuous": True},
                                          "max_episode_steps": 1000, "reward_threshold": 200},
    # The discrete task's perturbed ids, chosen by scripts/calibrate_task.py on held-out seeds 100-102
    # (results/calibration/lunarlander.md): the weak main engine costs a regular agent a quarter of the return
    # range; the strongest gravity Gymnasium allows and the weakest side engines of the grid cost it less
    # (marked weak there).
    **{env_id: {"entry_point": _ENTRY_POINT, "max_episode_steps": 1000, "reward_threshold": 200, "kwargs": change}
       for env_id, change in {"robustrl/LunarLanderStrongGravity-v3": {"gravity": 11.9},
                              "robustrl/LunarLanderWeakMainEngine-v3": {"main_engine_power": 9.75},
                              "robustrl/LunarLanderWeakSideEngines-v3": {"side_engine_power": 0.15}}.items()},
}
