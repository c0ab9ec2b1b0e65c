"""Robust DQN: Stable-Baselines3 ``DQN`` with an entropic soft-min TD target."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from robustrl.agents.base import HookedDQN
from robustrl.checks import check_int, is_number
from robustrl.estimators import (
    Estimator,
    check_eta,
    check_norm,
    check_rho,
    entropic_softmin,
    make_estimator,
    perturb,
)

__all__ = ["ETA_SCALES", "PERTURBATIONS", "TARGET_ESTIMATORS", "TARGET_PRECISIONS", "RobustDQN", "check_eta_scale",
           "check_perturbation", "check_rho_ramp", "check_state_scale", "check_target_estimator",
           "check_target_precision"]

#: Estimators of the robust target: ``"saa"`` (m samples) or ``"mlmc"`` (RT-MLMC).
TARGET_ESTIMATORS = ("saa", "mlmc")
#: How the perturbed next states are found: sampled in the ball (the entropic target) or by PGD (worst case).
PERTURBATIONS = ("sample", "pgd")
#: What eta is measured in: absolute units of Q, or the spread of Q over the sampled ball (scale-free).
ETA_SCALES = ("absolute", "spread")
#: The precision of the target network's hidden layers on the sampled next states (its output layer stays float32).
TARGET_PRECISIONS = ("float32", "bfloat16")


def _check_option(value: Any, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {name}={value!r}")
    return value


def check_target_precision(target_precision: Any) -> str:
    """Validate the precision of the sampled target's hidden layers: one of :data:`TARGET_PRECISIONS`."""
    return _check_option(target_precision, TARGET_PRECISIONS, "target_precision")


def check_eta_scale(eta_scale: Any) -> str:
    """Validate the unit of eta: one of :data:`ETA_SCALES`."""
    return _check_option(eta_scale, ETA_SCALES, "eta_scale")


def check_rho_ramp(rho_ramp: Any) -> float:
    """Validate the radius schedule: a fraction of training in [0, 1] (0: no schedule)."""
    if not is_number(rho_ramp) or not 0 <= rho_ramp <= 1:
        raise ValueError(f"rho_ramp must be a fraction of training in [0, 1], got rho_ramp={rho_ramp!r}")
    return float(rho_ramp)


def check_perturbation(perturbation: Any) -> str:
    """Validate how the robust target perturbs the next state: one of :data:`PERTURBATIONS`."""
    return _check_option(perturbation, PERTURBATIONS, "perturbation")


def check_target_estimator(estimator: Any) -> str:
    """Validate the robust target's estimator: one of :data:`TARGET_ESTIMATORS`."""
    return _check_option(estimator, TARGET_ESTIMATORS, "estimator")


def check_state_scale(state_scale: Any, obs_size: int | None = None) -> list[float] | None:
    """Validate a perturbation scale: None, or a list, tuple or array of finite numbers > 0 (with ``obs_size``
    entries when it is given); returns it as a list of floats."""
    if state_scale is None:
        return None
    if not isinstance(state_scale, (list, tuple, np.ndarray)) or not all(
        is_number(s) and math.isfinite(s) and s > 0 for s in state_scale
    ):
        raise ValueError(f"state_scale entries must be finite and > 0, got state_scale={state_scale!r}")
    if obs_size is not None and len(state_scale) != obs_size:
        raise ValueError(f"state_scale must have {obs_size} entries (the observation size), "
                         f"got {len(state_scale)}")
    return [float(s) for s in state_scale]


class RobustDQN(HookedDQN):
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
    :param state_scale: per-dimension scale s of the perturbation (default all ones).
    :param estimator: ``"saa"`` (m samples) or ``"mlmc"`` (RT-MLMC over levels 0..``mlmc_level``).
    :param mlmc_level: L for RT-MLMC (>= 0).
    :param perturbation: ``"sample"`` (the entropic target) or ``"pgd"`` (the worst case found by PGD).
    :param pgd_steps: PGD steps per action for ``perturbation="pgd"`` (>= 1).
    :param eta_scale: ``"absolute"`` (eta in units of Q) or ``"spread"``: the temperature of each next state and
        action is ``eta`` times the spread (max - min) of ``Q_target`` over its m samples, so the target does not
        change when Q is rescaled, and one eta means the same at every stage of training and on every task
        (saa estimator only; ``eta`` 0 and inf mean the same in both).
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
        state_scale: Sequence[float] | None = None,
        estimator: str = "saa",
        mlmc_level: int = 4,
        perturbation: str = "sample",
        pgd_steps: int = 10,
        rho_ramp: float = 0.0,
        eta_scale: str = "absolute",
        target_precision: str = "float32",
        **kwargs: Any,
    ) -> None:
        self.rho = check_rho(rho)
        self.eta = check_eta(eta)
        check_int(n_samples, "n_samples", 1)
        check_norm(norm)
        check_target_estimator(estimator)
        check_int(mlmc_level, "mlmc_level", 0)
        self.perturbation = check_perturbation(perturbation)
        self.pgd_steps = check_int(pgd_steps, "pgd_steps", 1)
        self.rho_ramp = check_rho_ramp(rho_ramp)
        self.eta_scale = check_eta_scale(eta_scale)
        self.target_precision = check_target_precision(target_precision)
        if self.eta_scale == "spread" and (estimator != "saa" or perturbation != "sample"):
            raise ValueError("eta_scale='spread' needs the sampled target with the saa estimator, got "
                             f"estimator={estimator!r}, perturbation={perturbation!r}")
        self.n_samples = n_samples
        self.norm = norm
        self.state_scale = check_state_scale(state_scale)
        self.estimator = estimator
        self.mlmc_level = mlmc_level
        super().__init__(policy=policy, env=env, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        check_state_scale(self.state_scale, int(np.prod(self.observation_space.shape)))
        self._perturbation_generator = self._seeded_generator()
        self._target_stats: dict[str, list[float]] = {}
        #: one row per ``train`` call: ``{"timesteps", "q_spread", "target_gap"}`` (see :meth:`train`)
        self.target_history: list[dict[str, float]] = []
        #: per target computed in the current ``train`` call, the next states it evaluated per transition
        self._samples_per_update: list[int] = []
        self._target_estimator: Estimator = make_estimator(
            self.estimator, m=self.n_samples, L=self.mlmc_level
        )
        self._scale_tensor = (
            None if self.state_scale is None
            else th.as_tensor(self.state_scale, dtype=th.float32, device=self.device)
        )
        self._target_body: th.nn.Module | None = None
        if self.target_precision == "bfloat16":
            self._target_body = copy.deepcopy(self.q_net_target.q_net[:-1]).to(th.bfloat16).requires_grad_(False)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_perturbation_generator", "_target_estimator", "_scale_tensor",
                "_target_stats", "target_history", "_target_body", "_samples_per_update"]

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """:class:`~robustrl.agents.base.HookedDQN`'s ``train``; afterwards the means over its gradient steps of
        what explains the robust target are logged (``train/q_spread``: the max - min of ``Q_target`` over the
        sampled ball, averaged over next states and actions; ``train/target_gap``: the plain DQN target minus the
        robust one, before the discount) and appended to :attr:`target_history` (the training loop saves it).
        ``train/samples_per_update`` is logged too, not kept in the history: the perturbed next states the
        target evaluated per replay transition (``n_samples`` for the saa estimator, the ``2**level`` drawn for
        mlmc, ``pgd_steps`` for PGD, 0 while the radius is 0), the mean over the gradient steps."""
        self._target_stats: dict[str, list[float]] = {}
        self._samples_per_update = []
        self._refresh_target_body()  # the target network is fixed within one call
        super().train(gradient_steps, batch_size)
        row = {name: float(np.mean(values)) for name, values in self._target_stats.items() if values}
        for name, value in row.items():
            self.logger.record(f"train/{name}", value)
        if self._samples_per_update:
            self.logger.record("train/samples_per_update", float(np.mean(self._samples_per_update)))
        if row:
            self.target_history.append({"timesteps": int(self.num_timesteps), **row})

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
                spreads: list[th.Tensor] = []

                def negative_q(z: th.Tensor) -> th.Tensor:
                    self._samples_per_update.append(int(z.shape[1]))  # m for saa, the 2**level drawn for mlmc
                    q = self._sampled_q(z.flatten(0, 1)).view(*z.shape[:2], -1)
                    if z.shape[1] > 1:  # how much Q varies across the sampled ball, per next state and action
                        spreads.append((q.amax(dim=1) - q.amin(dim=1)).mean())
                    return -q

                if self.eta_scale == "spread" and 0 < self.eta < math.inf:
                    next_q_values = self._spread_softmin(next_obs, rho, spreads)
                else:  # the adversary minimizes value: S_eta(Q) = -R_eta(-Q), per action
                    next_q_values = -self._target_estimator.estimate(
                        negative_q, next_obs, rho=rho, eta=self.eta, norm=self.norm,  # type: ignore[arg-type]
                        scale=self._scale_tensor, generator=self._perturbation_generator,
                    )
                if spreads:
                    self._target_stats.setdefault("q_spread", []).append(float(th.stack(spreads).mean()))
            next_q_values, _ = next_q_values.max(dim=1)
            if rho > 0:  # how far below the plain DQN target the robust one sits
                plain = self.q_net_target(next_obs).max(dim=1).values
                self._target_stats.setdefault("target_gap", []).append(float((plain - next_q_values).mean()))
            next_q_values = next_q_values.reshape(-1, 1)
            return replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

    def _spread_softmin(self, next_obs: th.Tensor, rho: float, spreads: list[th.Tensor]) -> th.Tensor:
        """Per action, ``S_{eta * spread}`` of ``Q_target`` over m sampled next states, the spread (max - min over
        the samples) taken per next state and action: the scale-free temperature of ``eta_scale="spread"``."""
        z = perturb(next_obs, rho, self.n_samples, norm=self.norm, scale=self._scale_tensor,
                    generator=self._perturbation_generator)
        self._samples_per_update.append(self.n_samples)
        q = self._sampled_q(z.flatten(0, 1)).view(*z.shape[:2], -1)
        spread = q.amax(dim=1, keepdim=True) - q.amin(dim=1, keepdim=True)
        spreads.append(spread.mean())
        return entropic_softmin(q, self.eta * spread.clamp_min(th.finfo(q.dtype).tiny), dim=1)

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

    def current_rho(self) -> float:
        """The radius now: ``rho``, or with ``rho_ramp`` the fraction of the ramp done so far times ``rho``."""
        if self.rho_ramp == 0:
            return self.rho
        done = 1.0 - float(self._current_progress_remaining)
        return self.rho * min(1.0, done / self.rho_ramp)

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
