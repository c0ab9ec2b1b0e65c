"""SA-DQN: DQN with the state-adversarial hinge regularizer of Zhang et al. (NeurIPS 2020), PGD inner solver or a
sampled (entropic) one; and RobustSADQN, that regularizer on top of the entropic robust target."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from robustrl.agents.base import HookedDQN
from robustrl.agents.robust_dqn import RobustDQN
from robustrl.agents.robust_target import check_state_scale
from robustrl.checks import check_eps, check_int, check_option, is_number
from robustrl.estimators import check_eta, check_norm

__all__ = ["SA_KEYS", "SA_LOSSES", "ObservationHingeMixin", "RobustSADQN", "SADQN", "check_sa_kwargs"]

#: The keyword arguments of :class:`SADQN` beyond DQN's (``norm`` and ``state_scale`` as in RobustDQN).
SA_KEYS = ("kappa", "sa_eps", "sa_ramp", "hinge_c", "sa_steps", "sa_loss", "sa_eta", "sa_samples")
#: How the hinge's inner maximum over the observation ball is taken: ``pgd`` (SA-DQN's PGD point) or ``sampled``
#: (the entropic risk of the hinge over points sampled uniformly in the ball).
SA_LOSSES = ("pgd", "sampled")


def _fraction(value: Any, name: str) -> float:
    number = check_eps(value, name)
    if not 0 < number <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {name}={value!r}")
    return number


def _temperature(value: Any) -> float:
    try:
        return check_eta(value) if is_number(value) else check_eta(math.nan)
    except ValueError:
        raise ValueError(f"sa_eta must be a number in [0, inf], got sa_eta={value!r}") from None


def check_sa_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Check :class:`SADQN`'s own keyword arguments (``ValueError`` naming the key and the value)."""
    checks = {"kappa": lambda v: check_eps(v, "kappa"), "sa_eps": lambda v: check_eps(v, "sa_eps"),
              "sa_ramp": lambda v: _fraction(v, "sa_ramp"), "hinge_c": lambda v: check_eps(v, "hinge_c"),
              "sa_steps": lambda v: check_int(v, "sa_steps", 1), "sa_eta": _temperature,
              "sa_loss": lambda v: check_option(v, SA_LOSSES, "sa_loss"),
              "sa_samples": lambda v: check_int(v, "sa_samples", 1)}
    for key, value in kwargs.items():
        if key in checks:
            checks[key](value)
    if any(key in checks for key in kwargs):
        check_state_scale(kwargs.get("state_scale"))  # SA-DQN's ball needs its scale from the start: no "auto"
    return kwargs


class ObservationHingeMixin:
    """The SA-DQN hinge regularizer as a :class:`~robustrl.agents.base.HookedDQN` ``_regularizer``, for any DQN
    subclass (:class:`SADQN` on DQN's target, :class:`RobustSADQN` on the entropic target)::

        kappa * mean_s max( h(s^), -c ),   h(s^) = max_{a != a*} Q(s^, a) - Q(s^, a*),

    ``a*`` the greedy action of the online network on ``s``, and the maximum over ``s^`` in the ball of radius
    ``eps`` (units of ``state_scale``) taken by ``sa_loss``:

    - ``"pgd"`` (Zhang et al., NeurIPS 2020, their PGD inner solver): ``sa_steps`` steps of PGD on the margin loss
      (:class:`robustrl.attacks.PGD`, random start), the hinge evaluated at the point found;
    - ``"sampled"``: ``sa_samples`` points uniform in the ball (the shared sampler of
      :func:`robustrl.estimators.perturb`), and the entropic risk of their clamped hinges at temperature
      ``sa_eta`` (:func:`robustrl.estimators.entropic_risk`; ``sa_eta = 0``: the worst sample, ``inf``: the mean),
      the soft-max twin of the robust target's soft-min (Wang, Gao, Xie, arXiv:2408.09672). No inner gradient
      steps: one forward and backward pass over the sampled points.

    The gradient flows through the online network at the chosen points. ``eps`` grows linearly from 0 to
    ``sa_eps`` over the first ``sa_ramp`` of training (SA-DQN's schedule). ``kappa = 0`` adds nothing and draws
    nothing: the agent is then its base class update for update.
    """

    def _init_sa(self, kappa: float, sa_eps: float, sa_ramp: float, hinge_c: float, sa_steps: int, sa_loss: str,
                 sa_eta: float, sa_samples: int) -> None:
        check_sa_kwargs(dict(kappa=kappa, sa_eps=sa_eps, sa_ramp=sa_ramp, hinge_c=hinge_c, sa_steps=sa_steps,
                             sa_loss=sa_loss, sa_eta=sa_eta, sa_samples=sa_samples))
        self.kappa, self.sa_eps, self.sa_ramp = float(kappa), float(sa_eps), float(sa_ramp)
        self.hinge_c, self.sa_steps, self.sa_loss = float(hinge_c), int(sa_steps), sa_loss
        self.sa_eta, self.sa_samples = float(sa_eta), int(sa_samples)

    def _setup_sa(self) -> None:
        self._attack_generator = self._seeded_generator()  # type: ignore[attr-defined]

    def current_eps(self) -> float:
        """The radius now: ``sa_eps`` times the fraction of ``sa_ramp`` of training done so far (at most 1)."""
        done = 1.0 - float(self._current_progress_remaining)  # type: ignore[attr-defined]
        return self.sa_eps * min(1.0, done / self.sa_ramp)

    def _sa_scale(self) -> th.Tensor | None:
        return None if self.state_scale is None else th.as_tensor(self.state_scale, dtype=th.float32)  # type: ignore[attr-defined]

    def _regularizer(self, replay_data: ReplayBufferSamples, q_values: th.Tensor) -> th.Tensor | None:
        """``kappa`` times the mean hinge over the batch (None while eps or kappa is 0)."""
        from robustrl.attacks import PGD, margin
        from robustrl.estimators import entropic_risk, perturb

        eps = self.current_eps()
        self.logger.record("train/sa_eps", eps)  # type: ignore[attr-defined]
        if self.kappa == 0 or eps == 0:
            return None
        q_net = self.q_net  # type: ignore[attr-defined]
        labels = q_values.detach().argmax(dim=1)
        observations = replay_data.observations.float()
        if self.sa_loss == "pgd":
            attack = PGD(q_net, eps, steps=self.sa_steps, norm=self.norm,  # type: ignore[attr-defined]
                         generator=self._attack_generator, loss="margin", scale=self.state_scale, clip=None)  # type: ignore[attr-defined]
            adversarial = attack(observations, labels)
            hinge = (-margin(q_net(adversarial), labels)).clamp(min=-self.hinge_c)
        else:
            batch, m = len(observations), self.sa_samples
            points = perturb(observations, eps, m, norm=self.norm, scale=self._sa_scale(),  # type: ignore[attr-defined]
                             generator=self._attack_generator)
            scores = q_net(points.reshape(batch * m, *observations.shape[1:]))
            sampled = (-margin(scores, labels.repeat_interleave(m))).clamp(min=-self.hinge_c).view(batch, m)
            hinge = entropic_risk(sampled, self.sa_eta, dim=1)
        self.logger.record("train/sa_hinge", float(hinge.detach().mean()))  # type: ignore[attr-defined]
        return self.kappa * hinge.mean()


class SADQN(ObservationHingeMixin, HookedDQN):
    """State-adversarial DQN: the TD loss plus ``kappa`` times the SA-DQN hinge regularizer
    (:class:`ObservationHingeMixin`).

    Zhang, Chen, Xiao, Li, Liu, Boning, Hsieh, "Robust Deep Reinforcement Learning against Adversarial
    Perturbations on State Observations", NeurIPS 2020, with their PGD inner solver (not the convex
    relaxation)::

        loss = TD loss + kappa * mean_s max( max_{s^ in B_eps(s)} max_{a != a*} Q(s^, a) - Q(s^, a*), -c ).

    Only :meth:`_regularizer` differs from SB3's ``DQN``; with ``kappa = 0`` it is ``DQN`` exactly.

    :param kappa: weight of the regularizer (>= 0; their Atari configs use 0.005-0.02).
    :param sa_eps: final radius of the ball (>= 0), in units of ``state_scale`` (RobustDQN's ``rho`` units).
    :param sa_ramp: fraction of training over which eps grows from 0 (in (0, 1]).
    :param hinge_c: the hinge's floor ``c`` (>= 0): a state whose margin already exceeds it adds nothing.
    :param sa_steps: PGD steps of the inner maximum (>= 1; ``sa_loss="pgd"``).
    :param sa_loss: ``"pgd"`` (SA-DQN) or ``"sampled"`` (entropic risk of the hinge over sampled points).
    :param sa_eta: temperature of the sampled hinge's entropic risk (in [0, inf]; ``sa_loss="sampled"``).
    :param sa_samples: points sampled per state (>= 1; ``sa_loss="sampled"``).
    :param norm: ``"linf"`` or ``"l2"``.
    :param state_scale: per-dimension scale of the ball (default all ones).
    :param kwargs: passed unchanged to :class:`stable_baselines3.DQN` (``seed`` also seeds the PGD starts).
    """

    def __init__(self, policy: Any, env: Any, kappa: float = 0.01, sa_eps: float = 0.05, sa_ramp: float = 0.5,
                 hinge_c: float = 1.0, sa_steps: int = 10, norm: str = "linf",
                 state_scale: Sequence[float] | None = None, sa_loss: str = "pgd", sa_eta: float = 0.1,
                 sa_samples: int = 16, **kwargs: Any) -> None:
        self._init_sa(kappa, sa_eps, sa_ramp, hinge_c, sa_steps, sa_loss, sa_eta, sa_samples)
        self.norm = check_norm(norm)
        self.state_scale = check_state_scale(state_scale)
        super().__init__(policy=policy, env=env, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        check_state_scale(self.state_scale, int(math.prod(self.observation_space.shape)))
        self._setup_sa()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_attack_generator"]


class RobustSADQN(ObservationHingeMixin, RobustDQN):
    """Robust on the transition and in the observation: RobustDQN's entropic soft-min target plus ``kappa`` times
    the SA-DQN hinge (:class:`ObservationHingeMixin`) in the same ball units (``state_scale``, ``norm``).

    The target smooths what the agent expects after a transition (robustness to the physics); the hinge keeps the
    greedy action fixed in the ball around what it sees (robustness to observation attacks). With ``kappa = 0`` it
    is :class:`~robustrl.agents.RobustDQN` update for update; with ``rho = 0`` it is :class:`SADQN`.

    Wang, Gao, Xie, arXiv:2408.09672 (the entropic target; the ``sampled`` hinge is its soft-max twin); Zhang et al.,
    NeurIPS 2020 (the hinge). The parameters are RobustDQN's (``rho``, ``eta``, ``n_samples``, ...) and SADQN's
    (``kappa``, ``sa_eps``, ``sa_ramp``, ``hinge_c``, ``sa_steps``, ``sa_loss``, ``sa_eta``, ``sa_samples``);
    ``state_scale`` must be explicit (the hinge needs its ball from the first step).
    """

    def __init__(self, policy: Any, env: Any, kappa: float = 0.01, sa_eps: float = 0.05, sa_ramp: float = 0.5,
                 hinge_c: float = 1.0, sa_steps: int = 10, sa_loss: str = "pgd", sa_eta: float = 0.1,
                 sa_samples: int = 16, **kwargs: Any) -> None:
        self._init_sa(kappa, sa_eps, sa_ramp, hinge_c, sa_steps, sa_loss, sa_eta, sa_samples)
        if isinstance(kwargs.get("state_scale"), str):
            raise ValueError("RobustSADQN needs an explicit state_scale (its hinge's ball is used from the first "
                             f"step), got state_scale={kwargs['state_scale']!r}")
        super().__init__(policy=policy, env=env, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self._setup_sa()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_attack_generator"]
