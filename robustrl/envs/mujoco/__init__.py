"""InvertedPendulum, Hopper, HalfCheetah and Walker2d (MuJoCo) with the parameter API: records, registrations.

This module is light: it imports no MuJoCo (the environments are in :mod:`robustrl.envs.mujoco.envs`, imported
by ``gymnasium.make`` through the string entry points), so importing :mod:`robustrl` works without the
``robustrl[mujoco]`` extra.

The parameters are those that RRLS (Zouitine et al. 2024, ``SuReLI/RRLS``, ``rrls/envs/*.py``) perturbs, under
RRLS's names; RRLS's uncertainty sets copy those of M2TD3 (Tanabe et al. 2022, ``akimotolab/M2TD3``,
``configs/environment/*.yaml``). robustrl packages them as
``robustrl/configs/uncertainty/<task>/rrls-<n>d.yml``.

* Masses (kg) are *absolute*, as in RRLS: ``torsomass=2.0`` makes the torso's ``body_mass`` 2.0. The nominal
  values are the masses of Gymnasium's v5 models (MuJoCo computes them from the geoms at density 1000;
  HalfCheetah's are scaled to a total of 14 kg), to the last bit. Bodies are looked up by name.
* ``friction`` (Hopper, HalfCheetah, Walker2d) is a *multiplier*, 1.0 nominal, of every geom's friction
  coefficients. RRLS's ``worldfriction`` is instead the floor's absolute sliding friction (HalfCheetah: every
  geom's); since MuJoCo gives a contact the larger friction of its two geoms, lowering only the floor's has
  no effect where the foot's is larger (Hopper's foot 2.0, Walker2d's feet 1.9). A floor friction ``w`` of
  RRLS is ``friction = w / (the floor's nominal friction)`` here: Hopper 1.0, HalfCheetah 0.4, Walker2d 0.7
  (:data:`FLOOR_FRICTION`).
"""

from __future__ import annotations

from typing import Any

from robustrl.envs.params import Parameter

__all__ = [
    "BODIES",
    "FLOOR_FRICTION",
    "HALF_CHEETAH_PARAMETERS",
    "HOPPER_PARAMETERS",
    "INVERTED_PENDULUM_PARAMETERS",
    "PARAMETERS",
    "REGISTRATIONS",
    "WALKER2D_PARAMETERS",
]

#: Family -> parameter -> the body (its name in Gymnasium's v5 model) whose mass the parameter is, as RRLS
#: maps them (RRLS indexes ``body_mass`` by position; the names here are those bodies').
BODIES: dict[str, dict[str, str]] = {
    "InvertedPendulum": {"polemass": "pole", "cartmass": "cart"},
    "Hopper": {"torsomass": "torso", "thighmass": "thigh", "legmass": "leg", "footmass": "foot"},
    "HalfCheetah": {"torsomass": "torso", "backthighmass": "bthigh", "backshinmass": "bshin",
                    "backfootmass": "bfoot", "forwardthighmass": "fthigh", "forwardshinmass": "fshin",
                    "forwardfootmass": "ffoot"},
    "Walker2d": {"torsomass": "torso", "thighmass": "thigh", "legmass": "leg", "footmass": "foot",
                 "leftthighmass": "thigh_left", "leftlegmass": "leg_left", "leftfootmass": "foot_left"},
}

#: The nominal sliding friction of the floor geom of each family with a floor (Gymnasium's v5 models): RRLS's
#: ``worldfriction`` ``w`` corresponds to ``friction = w / FLOOR_FRICTION[family]``.
FLOOR_FRICTION: dict[str, float] = {"Hopper": 1.0, "HalfCheetah": 0.4, "Walker2d": 0.7}

# The body masses of Gymnasium's v5 models (model.body_mass), as loaded by MuJoCo.
_MASSES: dict[str, dict[str, float]] = {
    "InvertedPendulum": {"polemass": 5.018591641363306, "cartmass": 10.47197551196598},
    "Hopper": {"torsomass": 3.6651914291880923, "thighmass": 4.057890510886818, "legmass": 2.7813566959781637,
               "footmass": 5.315574769873931},
    "HalfCheetah": {"torsomass": 6.25020920502092, "backthighmass": 1.5435146443514645,
                    "backshinmass": 1.5874476987447697, "backfootmass": 1.0953974895397491,
                    "forwardthighmass": 1.4380753138075317, "forwardshinmass": 1.200836820083682,
                    "forwardfootmass": 0.8845188284518829},
    "Walker2d": {"torsomass": 3.6651914291880923, "thighmass": 4.057890510886818,
                 "legmass": 2.7813566959781637, "footmass": 3.1667253948185117,
                 "leftthighmass": 4.057890510886818, "leftlegmass": 2.7813566959781637,
                 "leftfootmass": 3.1667253948185117},
}


def _records(family: str, friction: bool) -> dict[str, Parameter]:
    records = {}
    if friction:
        records["friction"] = Parameter(
            "friction", 1.0, "multiplier of every geom's friction coefficients (1 = Gymnasium's; the floor's "
                             f"sliding friction is {FLOOR_FRICTION[family]:g} x friction)")
    for name, body in BODIES[family].items():
        records[name] = Parameter(name, _MASSES[family][name], f"mass of the body {body!r} (kg, absolute)")
    return records


#: InvertedPendulum's parameters: the pole's and the cart's masses.
INVERTED_PENDULUM_PARAMETERS: dict[str, Parameter] = _records("InvertedPendulum", friction=False)
#: Hopper's parameters: the friction multiplier and the four body masses.
HOPPER_PARAMETERS: dict[str, Parameter] = _records("Hopper", friction=True)
#: HalfCheetah's parameters: the friction multiplier and the seven body masses.
HALF_CHEETAH_PARAMETERS: dict[str, Parameter] = _records("HalfCheetah", friction=True)
#: Walker2d's parameters: the friction multiplier and the seven body masses.
WALKER2D_PARAMETERS: dict[str, Parameter] = _records("Walker2d", friction=True)

#: Family -> its parameter records.
PARAMETERS: dict[str, dict[str, Parameter]] = {
    "InvertedPendulum": INVERTED_PENDULUM_PARAMETERS,
    "Hopper": HOPPER_PARAMETERS,
    "HalfCheetah": HALF_CHEETAH_PARAMETERS,
    "Walker2d": WALKER2D_PARAMETERS,
}


def _registration(class_name: str, reward_threshold: float | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"entry_point": f"robustrl.envs.mujoco.envs:{class_name}",
                            "max_episode_steps": 1000}
    if reward_threshold is not None:
        spec["reward_threshold"] = reward_threshold
    return spec


#: Registered id -> ``gymnasium.register`` keyword arguments (time limit and reward threshold as Gymnasium's
#: v5 ids; Walker2d-v5 has no reward threshold).
REGISTRATIONS: dict[str, dict[str, Any]] = {
    "robustrl/InvertedPendulum-v5": _registration("PerturbedInvertedPendulumEnv", 950.0),
    "robustrl/Hopper-v5": _registration("PerturbedHopperEnv", 3800.0),
    "robustrl/HalfCheetah-v5": _registration("PerturbedHalfCheetahEnv", 4800.0),
    "robustrl/Walker2d-v5": _registration("PerturbedWalker2dEnv", None),
}
