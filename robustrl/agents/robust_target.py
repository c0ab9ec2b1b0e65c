"""The robust next-state value, one implementation for every TD agent: RobustDQN, RobustSAC and RobustTD3.

A TD agent bootstraps from a value of the next state ``s'``: DQN from ``Q_target(s', .)`` per action, SAC from
``min_i Q_i'(s', a') - alpha log pi(a'|s')`` with ``a' ~ pi(.|s')``, TD3 from ``min_i Q_i'(s', a')`` with ``a'`` the
target policy's action plus clipped noise. The robust target replaces that value ``V(s')`` by its entropic
soft-min over perturbations of the next state (Wang, Gao, Xie, "Regularization for Adversarial Robust Learning",
arXiv:2408.09672)::

    S_eta[V](s') = -eta log E_{z ~ Uniform(B_rho(s'))} exp(-V(z) / eta),   B_rho(s') = s' + rho * state_scale * ball

estimated with m samples (``saa``), RT-MLMC (``mlmc``) or in closed form for the first-order expansion of the value
around ``s'`` (``linear``: one evaluation and one input gradient per value column, no sampling) by
:mod:`robustrl.estimators`. ``eta = inf`` is the mean
over the ball, ``eta = 0`` the worst sample, ``rho = 0`` the agent's own target exactly (the agent then does not
call this at all). :class:`RobustTargetMixin` holds the hyperparameters, their checks, the perturbation generator,
the radius ramp and the statistics that explain the target; each agent passes the function that evaluates its own
next-state value at a batch of states.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch as th

from robustrl.checks import check_int, check_option, is_number
from robustrl.estimators import Estimator, check_eta, check_norm, check_rho, entropic_softmin, make_estimator, perturb

__all__ = ["ETA_SCALES", "ROBUST_TARGET_KEYS", "TARGET_ESTIMATORS", "RobustTargetMixin", "check_eta_scale",
           "check_rho_ramp", "check_state_scale", "check_target_estimator", "estimate_state_scale",
           "seeded_generator"]

#: Estimators of the robust target: ``"saa"`` (m samples), ``"mlmc"`` (RT-MLMC) or ``"linear"`` (the closed form of
#: the value's first-order expansion, :class:`robustrl.estimators.Linearized`).
TARGET_ESTIMATORS = ("saa", "mlmc", "linear")
#: What eta is measured in: absolute units of the value, or its spread over the sampled ball (scale-free).
ETA_SCALES = ("absolute", "spread")
#: The keyword arguments of the robust target, shared by every robust agent.
ROBUST_TARGET_KEYS = ("rho", "eta", "n_samples", "norm", "state_scale", "estimator", "mlmc_level", "rho_ramp",
                      "eta_scale", "state_scale_steps")


def check_eta_scale(eta_scale: Any) -> str:
    """Validate the unit of eta: one of :data:`ETA_SCALES`."""
    return check_option(eta_scale, ETA_SCALES, "eta_scale")


def check_rho_ramp(rho_ramp: Any) -> float:
    """Validate the radius schedule: a fraction of training in [0, 1] (0: no schedule)."""
    if not is_number(rho_ramp) or not 0 <= rho_ramp <= 1:
        raise ValueError(f"rho_ramp must be a fraction of training in [0, 1], got rho_ramp={rho_ramp!r}")
    return float(rho_ramp)


def check_target_estimator(estimator: Any) -> str:
    """Validate the robust target's estimator: one of :data:`TARGET_ESTIMATORS`."""
    return check_option(estimator, TARGET_ESTIMATORS, "estimator")


def check_state_scale(state_scale: Any, obs_size: int | None = None,
                      allow_auto: bool = False) -> list[float] | str | None:
    """Validate a perturbation scale: None, or a list, tuple or array of finite numbers > 0 (with ``obs_size``
    entries when it is given), returned as a list of floats; with ``allow_auto`` also ``"auto"`` (estimated from
    the observations, :func:`estimate_state_scale`)."""
    if state_scale is None:
        return None
    if isinstance(state_scale, str) and state_scale == "auto":
        if not allow_auto:
            raise ValueError("state_scale='auto' is for the entropic robust target (RobustDQN, RobustSAC, "
                             "RobustTD3); give this agent a list of numbers")
        return "auto"
    if not isinstance(state_scale, (list, tuple, np.ndarray)) or not all(
        is_number(s) and math.isfinite(s) and s > 0 for s in state_scale
    ):
        raise ValueError(f"state_scale entries must be finite and > 0, got state_scale={state_scale!r}")
    if obs_size is not None and len(state_scale) != obs_size:
        raise ValueError(f"state_scale must have {obs_size} entries (the observation size), "
                         f"got {len(state_scale)}")
    return [float(s) for s in state_scale]


def seeded_generator(device: Any, seed: int | None) -> th.Generator:
    """A torch generator of an agent's own draws (perturbations, attack starts), seeded by ``seed`` (fresh entropy
    for None), separate from the global RNGs that SB3 seeds."""
    generator = th.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


def estimate_state_scale(observations: Any) -> list[float]:
    """A per-dimension scale of observations: half the distance between their 1st and 99th percentiles, each
    dimension at least 1e-3 times the largest (so none is zero). The estimator of ``state_scale="auto"`` and of
    the task calibration (``scripts/calibrate_task.py``)."""
    states = np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)
    if len(states) < 2:
        raise ValueError(f"a state scale needs at least 2 observations, got {len(states)}")
    half = (np.percentile(states, 99, axis=0) - np.percentile(states, 1, axis=0)) / 2
    largest = float(half.max())
    if not largest > 0:
        raise ValueError("the observations do not vary: no state scale can be estimated from them")
    return [float(v) for v in np.maximum(half, 1e-3 * largest)]


class RobustTargetMixin:
    """The entropic soft-min of an agent's next-state value over sampled perturbations of the next state.

    Mixed into an SB3 off-policy algorithm (before it in the bases). The agent calls :meth:`_init_robust_target`
    before SB3's constructor, :meth:`_setup_robust_target` after SB3's ``_setup_model``, :meth:`_begin_target_stats`
    and :meth:`_end_target_stats` around its ``train``, and :meth:`_robust_value` where it bootstraps.

    Statistics: ``train/q_spread`` (the max - min of the value over the sampled ball, averaged over next states and
    columns), ``train/target_gap`` (the plain next-state value minus the robust one, recorded by the agent) and
    ``train/samples_per_update`` (perturbed next states evaluated per transition); the first two are appended per
    ``train`` call to :attr:`target_history`.
    """

    rho: float
    eta: float
    n_samples: int
    norm: str
    state_scale: list[float] | None
    estimator: str
    mlmc_level: int
    rho_ramp: float
    eta_scale: str

    def _init_robust_target(self, rho: float = 0.05, eta: float = 1.0, n_samples: int = 16, norm: str = "linf",
                            state_scale: Sequence[float] | str | None = None, estimator: str = "saa",
                            mlmc_level: int = 4, rho_ramp: float = 0.0, eta_scale: str = "absolute",
                            sampled: bool = True, state_scale_steps: int = 10_000) -> None:
        """Check and store the robust target's hyperparameters (``ValueError`` naming a bad one). ``sampled`` is
        False for a target that does not sample the ball (RobustDQN's PGD), where ``eta_scale="spread"`` has no
        meaning.

        ``state_scale="auto"``: the scale is estimated (:func:`estimate_state_scale`) from every observation in the
        replay buffer at the first gradient step after ``state_scale_steps`` environment steps, then frozen, so the
        target stays stationary; until then the target is the agent's plain one (radius 0). The estimate is
        :attr:`state_scale_estimate`."""
        check_int(state_scale_steps, "state_scale_steps", 1)
        self.state_scale_steps = int(state_scale_steps)
        self.rho = check_rho(rho)
        self.eta = check_eta(eta)
        check_int(n_samples, "n_samples", 1)
        check_norm(norm)
        check_target_estimator(estimator)
        check_int(mlmc_level, "mlmc_level", 0)
        self.rho_ramp = check_rho_ramp(rho_ramp)
        self.eta_scale = check_eta_scale(eta_scale)
        if self.eta_scale == "spread" and (estimator == "mlmc" or not sampled):
            raise ValueError("eta_scale='spread' needs the sampled target with the saa or linear estimator, got "
                             f"estimator={estimator!r}" + ("" if sampled else ", perturbation='pgd'"))
        self.n_samples = n_samples
        self.norm = norm
        self.state_scale = check_state_scale(state_scale, allow_auto=True)  # type: ignore[assignment]
        self.estimator = estimator
        self.mlmc_level = mlmc_level

    def _setup_robust_target(self) -> None:
        """After SB3's ``_setup_model``: the state scale against the observation size, the generator of the
        perturbations (seeded by the agent's ``seed``), the estimator and the statistics."""
        check_state_scale(self.state_scale, int(np.prod(self.observation_space.shape)),  # type: ignore[attr-defined]
                          allow_auto=True)
        #: the scale ``state_scale="auto"`` estimated and froze (None before it did, or with a given scale), and
        #: the environment steps (= replay transitions stored) it was estimated from
        self.state_scale_estimate: list[float] | None = None
        self.state_scale_frozen_at: int | None = None
        self._perturbation_generator = seeded_generator(self.device, self.seed)  # type: ignore[attr-defined]
        self._target_stats: dict[str, list[float]] = {}
        #: one row per ``train`` call: ``{"timesteps", "q_spread", "target_gap"}``
        self.target_history: list[dict[str, float]] = []
        #: per target computed in the current ``train`` call, the next states it evaluated per transition
        self._samples_per_update: list[int] = []
        #: the linear estimator's own value at the next states, from the last :meth:`_robust_value` (else None)
        self._center_value: th.Tensor | None = None
        self._target_estimator: Estimator = make_estimator(self.estimator, m=self.n_samples, L=self.mlmc_level,
                                                           relative=self.eta_scale == "spread")
        self._scale_tensor = (None if self.state_scale is None or self.state_scale == "auto" else
                              th.as_tensor(self.state_scale, dtype=th.float32, device=self.device))  # type: ignore[attr-defined]

    #: the attributes of the mechanism that are not saved with the model
    _ROBUST_EXCLUDED = ["_perturbation_generator", "_target_estimator", "_scale_tensor", "_target_stats",
                        "target_history", "_samples_per_update", "_center_value"]

    def current_rho(self) -> float:
        """The radius now: ``rho``, or with ``rho_ramp`` the fraction of the ramp done so far times ``rho``; 0 while
        ``state_scale="auto"`` has no estimate yet."""
        if self.state_scale == "auto" and self.state_scale_estimate is None:
            return 0.0
        if self.rho_ramp == 0:
            return self.rho
        done = 1.0 - float(self._current_progress_remaining)  # type: ignore[attr-defined]
        return self.rho * min(1.0, done / self.rho_ramp)

    def _begin_target_stats(self) -> None:
        """Start the statistics of one ``train`` call (and freeze an ``"auto"`` state scale when it is time)."""
        self._target_stats = {}
        self._samples_per_update = []
        if (self.state_scale == "auto" and self.state_scale_estimate is None
                and self.num_timesteps >= self.state_scale_steps):  # type: ignore[attr-defined]
            buffer = self.replay_buffer  # type: ignore[attr-defined]
            stored = buffer.buffer_size if buffer.full else buffer.pos
            observations = buffer.observations[:stored].reshape(stored * buffer.n_envs, -1)
            self.state_scale_estimate = estimate_state_scale(observations)
            self.state_scale_frozen_at = int(self.num_timesteps)  # type: ignore[attr-defined]
            self._scale_tensor = th.as_tensor(self.state_scale_estimate, dtype=th.float32,
                                              device=self.device)  # type: ignore[attr-defined]

    def _record_target_stat(self, name: str, value: float) -> None:
        self._target_stats.setdefault(name, []).append(value)

    def _end_target_stats(self) -> None:
        """Log the means over the ``train`` call's gradient steps and append them to :attr:`target_history`."""
        row = {name: float(np.mean(values)) for name, values in self._target_stats.items() if values}
        for name, value in row.items():
            self.logger.record(f"train/{name}", value)  # type: ignore[attr-defined]
        if self._samples_per_update:
            self.logger.record("train/samples_per_update", float(np.mean(self._samples_per_update)))  # type: ignore[attr-defined]
        if row:
            self.target_history.append({"timesteps": int(self.num_timesteps), **row})  # type: ignore[attr-defined]

    def _robust_value(self, next_obs: th.Tensor, value: Callable[[th.Tensor], th.Tensor], rho: float) -> th.Tensor:
        """The entropic soft-min over the ball of radius ``rho`` around each next state of ``value``, per column.

        ``value`` maps a batch of states ``(N, d)`` to values ``(N, k)`` (DQN: one column per action; SAC and TD3:
        one column). Returns ``(B, k)`` for ``next_obs`` of shape ``(B, d)``: ``S_eta`` over m sampled perturbations
        (``saa``), RT-MLMC (``mlmc``) or the closed form of its first-order expansion (``linear``); with
        ``eta_scale="spread"`` the temperature of each next state and column is ``eta`` times the spread of the value
        over its samples (``saa``) or of its linearization over the ball (``linear``).
        """
        spreads: list[th.Tensor] = []
        self._center_value = None

        def negative_value(z: th.Tensor) -> th.Tensor:
            self._samples_per_update.append(int(z.shape[1]))  # m for saa, the 2**level drawn for mlmc, 1 for linear
            q = value(z.flatten(0, 1)).view(*z.shape[:2], -1)
            if self.estimator == "linear":  # z is the next state itself
                self._center_value = q[:, 0].detach()
            if z.shape[1] > 1:  # how much the value varies across the sampled ball, per next state and column
                spreads.append((q.amax(dim=1) - q.amin(dim=1)).mean())
            return -q

        if self.eta_scale == "spread" and 0 < self.eta < math.inf and self.estimator == "saa":
            z = perturb(next_obs, rho, self.n_samples, norm=self.norm, scale=self._scale_tensor,
                        generator=self._perturbation_generator)
            self._samples_per_update.append(self.n_samples)
            q = value(z.flatten(0, 1)).view(*z.shape[:2], -1)
            spread = q.amax(dim=1, keepdim=True) - q.amin(dim=1, keepdim=True)
            spreads.append(spread.mean())
            result = entropic_softmin(q, self.eta * spread.clamp_min(th.finfo(q.dtype).tiny), dim=1)
        else:  # the adversary minimizes value: S_eta(V) = -R_eta(-V), per column
            result = -self._target_estimator.estimate(
                negative_value, next_obs, rho=rho, eta=self.eta, norm=self.norm,  # type: ignore[arg-type]
                scale=self._scale_tensor, generator=self._perturbation_generator,
            )
        if spreads:
            self._record_target_stat("q_spread", float(th.stack(spreads).mean()))
        return result

    def _plain_value(self, next_obs: th.Tensor, value: Callable[[th.Tensor], th.Tensor]) -> th.Tensor:
        """``value(next_obs)``, the unperturbed next-state value that ``train/target_gap`` compares the robust one
        with: the linear estimator's own evaluation at the next state when the last :meth:`_robust_value` made one
        (no second forward pass, and the same sampled action for SAC and smoothing noise for TD3)."""
        return self._center_value if self._center_value is not None else value(next_obs)
