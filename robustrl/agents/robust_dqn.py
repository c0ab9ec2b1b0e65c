"""Robust DQN: Stable-Baselines3 ``DQN`` with an entropic soft-min TD target."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from robustrl.agents.base import HookedDQN
from robustrl.agents.robust_target import (
    ETA_SCALES,
    TARGET_ESTIMATORS,
    RobustTargetMixin,
    check_eta_scale,
    check_rho_ramp,
    check_state_scale,
    check_target_estimator,
)
from robustrl.checks import check_int, check_option

__all__ = ["ETA_SCALES", "PERTURBATIONS", "TARGET_ESTIMATORS", "TARGET_PRECISIONS", "RobustDQN", "check_eta_scale",
           "check_perturbation", "check_rho_ramp", "check_state_scale", "check_target_estimator",
           "check_target_precision"]

#: How the perturbed next states are found: sampled in the ball (the entropic target) or by PGD (worst case).
PERTURBATIONS = ("sample", "pgd")
#: The precision of the target network's hidden layers on the sampled next states (its output layer stays float32).
TARGET_PRECISIONS = ("float32", "bfloat16")


def check_target_precision(target_precision: Any) -> str:
    """Validate the precision of the sampled target's hidden layers: one of :data:`TARGET_PRECISIONS`."""
    return check_option(target_precision, TARGET_PRECISIONS, "target_precision")


def check_perturbation(perturbation: Any) -> str:
    """Validate how the robust target perturbs the next state: one of :data:`PERTURBATIONS`."""
    return check_option(perturbation, PERTURBATIONS, "perturbation")


class RobustDQN(RobustTargetMixin, HookedDQN):
    """DQN whose TD target is a soft-min over sampled perturbations of the next state.

    The only change from SB3's ``DQN`` is the target (:meth:`_compute_target`, a hook of
    :class:`~robustrl.agents.base.HookedDQN`)::

        y = r + gamma (1 - done) max_a S_eta(Q_target(z_1, a), ..., Q_target(z_m, a)),
        z_j = s' + rho * state_scale * u_j,   u_j ~ Uniform(unit ball of ``norm``)

    with ``S_eta`` the entropic soft-min of :func:`robustrl.estimators.entropic_softmin`
    (Wang, Gao, Xie, "Regularization for Adversarial Robust Learning", arXiv:2408.09672).
    ``eta = inf`` gives the mean over the ball, ``eta = 0`` the worst sampled perturbation, and
    ``rho = 0`` the ordinary DQN target exactly. With ``perturbation="pgd"`` the perturbed next state is
    not sampled but searched: per action ``a``, ``pgd_steps`` steps of PGD (:class:`robustrl.attacks.PGD`,
    loss ``"score"``) on the target network find the point of the ball lowering ``Q_target(., a)``, and
    ``y = r + gamma (1 - done) max_a Q_target(z_a, a)`` (the worst-case target, the RL analogue of
    PGD adversarial training; ``eta``, ``n_samples`` and the estimator are then unused).

    :param rho: radius of the perturbation ball (>= 0), in units of ``state_scale``.
    :param eta: temperature in [0, inf] (``float("inf")`` allowed).
    :param n_samples: m, perturbations per next state for the ``"saa"`` estimator (>= 1).
    :param norm: ``"linf"`` or ``"l2"``.
    :param state_scale: per-dimension scale s of the perturbation (default all ones), or ``"auto"``: estimated from
        the replay buffer after ``state_scale_steps`` steps and frozen (the plain DQN target until then; see
        :func:`~robustrl.agents.robust_target.estimate_state_scale`).
    :param state_scale_steps: when ``state_scale="auto"`` is estimated (environment steps, >= 1).
    :param estimator: ``"saa"`` (m samples), ``"mlmc"`` (RT-MLMC over levels 0..``mlmc_level``) or ``"linear"`` (the
        closed form of each action's Q expanded to first order around the next state: one evaluation and one input
        gradient per action, no samples).
    :param mlmc_level: L for RT-MLMC (>= 0).
    :param perturbation: ``"sample"`` (the entropic target) or ``"pgd"`` (the worst case found by PGD).
    :param pgd_steps: PGD steps per action for ``perturbation="pgd"`` (>= 1).
    :param eta_scale: ``"absolute"`` (eta in units of Q) or ``"spread"``: the temperature of each next state and
        action is ``eta`` times the spread (max - min) of ``Q_target`` over its m samples, so the target does not
        change when Q is rescaled, and one eta means the same at every stage of training and on every task
        (saa and linear estimators, the latter with the spread of Q's linearization over the ball; ``eta`` 0 and inf
        mean the same in both).
    :param rho_ramp: fraction of training over which the radius grows linearly from 0 to ``rho`` (in [0, 1];
        0, the default, keeps ``rho`` from the start), as SA-DQN ramps its eps: the target is then not
        pessimistic while the Q-network still knows nothing.
    :param target_precision: ``"float32"`` (the default) or ``"bfloat16"``: the hidden layers of the target network
        run in bfloat16 on the m sampled next states (the output layer and everything else stay float32), which
        is ~2.5x faster per row where the CPU has bfloat16 instructions (AVX512-BF16, AMX) and slower where it
        has not; the target moves by ~1 % of the spread of Q over the ball.
    :param kwargs: passed unchanged to :class:`stable_baselines3.DQN` (``seed`` also seeds the
        perturbation generator, which is separate from the global RNGs).
    """

    def __init__(
        self,
        policy: Any,
        env: Any,
        rho: float = 0.05,
        eta: float = 1.0,
        n_samples: int = 16,
        norm: str = "linf",
        state_scale: Sequence[float] | str | None = None,
        estimator: str = "saa",
        mlmc_level: int = 4,
        perturbation: str = "sample",
        pgd_steps: int = 10,
        rho_ramp: float = 0.0,
        eta_scale: str = "absolute",
        target_precision: str = "float32",
        state_scale_steps: int = 10_000,
        **kwargs: Any,
    ) -> None:
        self.perturbation = check_perturbation(perturbation)
        self.pgd_steps = check_int(pgd_steps, "pgd_steps", 1)
        self.target_precision = check_target_precision(target_precision)
        self._init_robust_target(rho, eta, n_samples, norm, state_scale, estimator, mlmc_level, rho_ramp, eta_scale,
                                 sampled=perturbation == "sample", state_scale_steps=state_scale_steps)
        super().__init__(policy=policy, env=env, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self._setup_robust_target()
        self._target_body: th.nn.Module | None = None
        if self.target_precision == "bfloat16":
            self._target_body = copy.deepcopy(self.q_net_target.q_net[:-1]).to(th.bfloat16).requires_grad_(False)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), *self._ROBUST_EXCLUDED, "_target_body"]

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """:class:`~robustrl.agents.base.HookedDQN`'s ``train``; afterwards the means over its gradient steps of
        what explains the robust target are logged (``train/q_spread``: the max - min of ``Q_target`` over the
        sampled ball, averaged over next states and actions; ``train/target_gap``: the plain DQN target minus the
        robust one, before the discount) and appended to :attr:`target_history` (the training loop saves it).
        ``train/samples_per_update`` is logged too, not kept in the history: the perturbed next states the
        target evaluated per replay transition (``n_samples`` for the saa estimator, the ``2**level`` drawn for
        mlmc, ``pgd_steps`` for PGD, 0 while the radius is 0), the mean over the gradient steps."""
        self._begin_target_stats()
        self._refresh_target_body()  # the target network is fixed within one call
        super().train(gradient_steps, batch_size)
        self._end_target_stats()

    def _compute_target(self, replay_data: ReplayBufferSamples, discounts: th.Tensor | float) -> th.Tensor:
        """``r + gamma (1 - done) max_a S_eta(Q_target(z_j, a))`` over perturbed next states ``z_j``."""
        with th.no_grad():
            next_obs = replay_data.next_observations.float()
            rho = self.current_rho()
            if rho == 0:
                next_q_values = self.q_net_target(next_obs)
                self._samples_per_update.append(0)
            elif self.perturbation == "pgd":
                next_q_values = self._worst_case_q_values(next_obs, rho)
                self._samples_per_update.append(self.pgd_steps)
            else:
                next_q_values = self._robust_value(next_obs, self._sampled_q, rho)
            next_q_values, _ = next_q_values.max(dim=1)
            if rho > 0:  # how far below the plain DQN target the robust one sits
                plain = self._plain_value(next_obs, self.q_net_target).max(dim=1).values
                self._record_target_stat("target_gap", float((plain - next_q_values).mean()))
            next_q_values = next_q_values.reshape(-1, 1)
            return replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

    def _refresh_target_body(self) -> None:
        """Copy the target network's hidden layers into their ``target_precision`` copy (if there is one)."""
        if self._target_body is not None:
            with th.no_grad():
                for low, full in zip(self._target_body.parameters(), self.q_net_target.q_net[:-1].parameters()):
                    low.copy_(full)

    def _sampled_q(self, z: th.Tensor) -> th.Tensor:
        """``Q_target`` of sampled next states, its hidden layers in ``target_precision``."""
        if self._target_body is None:
            return self.q_net_target(z)
        features = self.q_net_target.extract_features(z, self.q_net_target.features_extractor)
        hidden = self._target_body(features.to(th.bfloat16)).float()
        return self.q_net_target.q_net[-1](hidden)

    def _worst_case_q_values(self, next_obs: th.Tensor, rho: float) -> th.Tensor:
        """Per action ``a``: ``Q_target(z_a, a)`` at the point ``z_a`` of the ball of radius ``rho`` that PGD finds
        lowering it."""
        from robustrl.attacks import PGD

        attack = PGD(self.q_net_target, rho, steps=self.pgd_steps, norm=self.norm,
                     generator=self._perturbation_generator, loss="score", scale=self._scale_tensor, clip=None)
        columns = []
        for action in range(int(self.action_space.n)):  # type: ignore[attr-defined]
            labels = th.full((len(next_obs),), action, dtype=th.long, device=next_obs.device)
            columns.append(self.q_net_target(attack(next_obs, labels))[:, action])
        return th.stack(columns, dim=1)
