"""SA-DQN: DQN with the state-adversarial hinge regularizer of Zhang et al. (NeurIPS 2020), PGD inner solver."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from robustrl.agents.base import HookedDQN
from robustrl.agents.robust_dqn import check_state_scale
from robustrl.checks import check_eps, check_int
from robustrl.estimators import check_norm

__all__ = ["SA_KEYS", "SADQN", "check_sa_kwargs"]

#: The keyword arguments of :class:`SADQN` beyond DQN's (``norm`` and ``state_scale`` as in RobustDQN).
SA_KEYS = ("kappa", "sa_eps", "sa_ramp", "hinge_c", "sa_steps")


def _fraction(value: Any, name: str) -> float:
    number = check_eps(value, name)
    if not 0 < number <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {name}={value!r}")
    return number


def check_sa_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Check :class:`SADQN`'s own keyword arguments (``ValueError`` naming the key and the value)."""
    checks = {"kappa": lambda v: check_eps(v, "kappa"), "sa_eps": lambda v: check_eps(v, "sa_eps"),
              "sa_ramp": lambda v: _fraction(v, "sa_ramp"), "hinge_c": lambda v: check_eps(v, "hinge_c"),
              "sa_steps": lambda v: check_int(v, "sa_steps", 1)}
    for key, value in kwargs.items():
        if key in checks:
            checks[key](value)
    if any(key in checks for key in kwargs):
        check_state_scale(kwargs.get("state_scale"))  # SA-DQN's ball needs its scale from the start: no "auto"
    return kwargs


class SADQN(HookedDQN):
    """State-adversarial DQN: the TD loss plus ``kappa`` times the SA-DQN hinge regularizer.

    Zhang, Chen, Xiao, Li, Liu, Boning, Hsieh, "Robust Deep Reinforcement Learning against Adversarial
    Perturbations on State Observations", NeurIPS 2020, with their PGD inner solver (not the convex
    relaxation)::

        loss = TD loss + kappa * mean_s max( max_{s^ in B_eps(s)} max_{a != a*} Q(s^, a) - Q(s^, a*), -c ),

    ``a*`` the greedy action of the online network on ``s``; the inner maximum is ``sa_steps`` steps of PGD
    on the SA-DQN margin loss (:class:`robustrl.attacks.PGD`, random start), then the hinge is evaluated at
    the point found, with gradients through the online network. ``eps`` grows linearly from 0 to ``sa_eps``
    over the first ``sa_ramp`` of training (their schedule), in units of ``state_scale`` (the units of
    RobustDQN's ``rho`` and of the robustness suite). Only :meth:`_regularizer` differs from SB3's ``DQN``;
    with ``kappa = 0`` it is ``DQN`` exactly.

    :param kappa: weight of the regularizer (>= 0; their Atari configs use 0.005-0.02).
    :param sa_eps: final radius of the ball (>= 0).
    :param sa_ramp: fraction of training over which eps grows from 0 (in (0, 1]).
    :param hinge_c: the hinge's floor ``c`` (>= 0): a state whose margin already exceeds it adds nothing.
    :param sa_steps: PGD steps of the inner maximum (>= 1).
    :param norm: ``"linf"`` or ``"l2"``.
    :param state_scale: per-dimension scale of the ball (default all ones).
    :param kwargs: passed unchanged to :class:`stable_baselines3.DQN` (``seed`` also seeds the PGD starts).
    """

    def __init__(self, policy: Any, env: Any, kappa: float = 0.01, sa_eps: float = 0.05, sa_ramp: float = 0.5,
                 hinge_c: float = 1.0, sa_steps: int = 10, norm: str = "linf",
                 state_scale: Sequence[float] | None = None, **kwargs: Any) -> None:
        check_sa_kwargs(dict(kappa=kappa, sa_eps=sa_eps, sa_ramp=sa_ramp, hinge_c=hinge_c, sa_steps=sa_steps))
        self.kappa, self.sa_eps, self.sa_ramp = float(kappa), float(sa_eps), float(sa_ramp)
        self.hinge_c, self.sa_steps = float(hinge_c), int(sa_steps)
        self.norm = check_norm(norm)
        self.state_scale = check_state_scale(state_scale)
        super().__init__(policy=policy, env=env, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        check_state_scale(self.state_scale, int(math.prod(self.observation_space.shape)))
        self._attack_generator = self._seeded_generator()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_attack_generator"]

    def current_eps(self) -> float:
        """The radius now: ``sa_eps`` times the fraction of ``sa_ramp`` of training done so far (at most 1)."""
        done = 1.0 - float(self._current_progress_remaining)
        return self.sa_eps * min(1.0, done / self.sa_ramp)

    def _regularizer(self, replay_data: ReplayBufferSamples, q_values: th.Tensor) -> th.Tensor | None:
        """``kappa`` times the mean SA-DQN hinge at the PGD point of each state (None while eps or kappa is 0)."""
        from robustrl.attacks import PGD, margin

        eps = self.current_eps()
        self.logger.record("train/sa_eps", eps)
        if self.kappa == 0 or eps == 0:
            return None
        labels = q_values.detach().argmax(dim=1)
        attack = PGD(self.q_net, eps, steps=self.sa_steps, norm=self.norm, generator=self._attack_generator,
                     loss="margin", scale=self.state_scale, clip=None)
        adversarial = attack(replay_data.observations.float(), labels)
        hinge = (-margin(self.q_net(adversarial), labels)).clamp(min=-self.hinge_c)
        self.logger.record("train/sa_hinge", float(hinge.detach().mean()))
        return self.kappa * hinge.mean()
