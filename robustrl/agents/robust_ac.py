"""Robust SAC and TD3: Stable-Baselines3's actor-critic agents with the entropic soft-min target.

:class:`HookedSAC` and :class:`HookedTD3` are SB3's ``SAC`` and ``TD3`` whose ``train`` computes the next-state value
in one hook, :meth:`~HookedSAC._next_value`; with the hook left alone they are SB3's agents, update for update.
:class:`RobustSAC` and :class:`RobustTD3` replace that value by its entropic soft-min over sampled perturbations of
the next state (:class:`~robustrl.agents.robust_target.RobustTargetMixin`, the mechanism RobustDQN uses):

- SAC's value of a state ``z``: ``min_i Q_i'(z, a) - alpha log pi(a|z)`` with ``a ~ pi(.|z)`` (Haarnoja et al.,
  "Soft Actor-Critic", 2018), the policy's action sampled at the perturbed state;
- TD3's value of ``z``: ``min_i Q_i'(z, a)`` with ``a = clip(mu'(z) + clip(noise))``, the target policy with its
  smoothing noise at the perturbed state (Fujimoto et al., "Addressing Function Approximation Error in
  Actor-Critic Methods", 2018).

``rho = 0`` gives SB3's SAC and TD3 bit for bit (the hook then runs SB3's own lines).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F

from robustrl.agents.robust_target import RobustTargetMixin

__all__ = ["HookedSAC", "HookedTD3", "PRMDPTD3", "RobustSAC", "RobustTD3"]


class HookedSAC(SAC):
    """Stable-Baselines3's ``SAC`` whose next-state value is the hook :meth:`_next_value`; otherwise SB3's ``train``
    line for line (entropy coefficient, critic and actor updates, Polyak averaging, logging)."""

    def _next_value(self, replay_data: ReplayBufferSamples, ent_coef: th.Tensor) -> th.Tensor:
        """SAC's ``min_i Q_i'(s', a') - alpha log pi(a'|s')``, ``a' ~ pi(.|s')``, shape ``(batch, 1)``."""
        next_actions, next_log_prob = self.actor.action_log_prob(replay_data.next_observations)
        next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
        next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
        return next_q_values - ent_coef * next_log_prob.reshape(-1, 1)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """SB3's ``SAC.train`` with the next-state value of :meth:`_next_value`."""
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]
        self._update_learning_rate(optimizers)

        ent_coef_losses, ent_coefs = [], []
        actor_losses, critic_losses = [], []
        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            if self.use_sde:
                self.actor.reset_noise()
            actions_pi, log_prob = self.actor.action_log_prob(replay_data.observations)
            log_prob = log_prob.reshape(-1, 1)

            ent_coef_loss = None
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef = th.exp(self.log_ent_coef.detach())
                assert isinstance(self.target_entropy, float)
                ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
                ent_coef_losses.append(ent_coef_loss.item())
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(ent_coef.item())
            if ent_coef_loss is not None and self.ent_coef_optimizer is not None:
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()

            with th.no_grad():
                next_q_values = self._next_value(replay_data, ent_coef)
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            current_q_values = self.critic(replay_data.observations, replay_data.actions)
            critic_loss = 0.5 * sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)
            critic_losses.append(critic_loss.item())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            q_values_pi = th.cat(self.critic(replay_data.observations, actions_pi), dim=1)
            min_qf_pi, _ = th.min(q_values_pi, dim=1, keepdim=True)
            actor_loss = (ent_coef * log_prob - min_qf_pi).mean()
            actor_losses.append(actor_loss.item())
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", np.mean(ent_coefs))
        self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        if len(ent_coef_losses) > 0:
            self.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))


class HookedTD3(TD3):
    """Stable-Baselines3's ``TD3`` whose next-state value is the hook :meth:`_next_value`; otherwise SB3's ``train``
    line for line (delayed policy updates, Polyak averaging, logging)."""

    def _next_value(self, replay_data: ReplayBufferSamples) -> th.Tensor:
        """TD3's ``min_i Q_i'(s', a')`` with ``a' = clip(mu'(s') + clip(noise))``, shape ``(batch, 1)``."""
        noise = replay_data.actions.clone().data.normal_(0, self.target_policy_noise)
        noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
        next_actions = (self.actor_target(replay_data.next_observations) + noise).clamp(-1, 1)
        next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
        next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
        return next_q_values

    def _delayed_update(self, replay_data: ReplayBufferSamples) -> None:
        """After each delayed actor update (and its Polyak averaging): nothing here; PR-MDP updates its adversary."""

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SB3's ``TD3.train`` with the next-state value of :meth:`_next_value` and the hook :meth:`_delayed_update`."""
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])

        actor_losses, critic_losses = [], []
        for _ in range(gradient_steps):
            self._n_updates += 1
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            with th.no_grad():
                next_q_values = self._next_value(replay_data)
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            current_q_values = self.critic(replay_data.observations, replay_data.actions)
            critic_loss = sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)
            critic_losses.append(critic_loss.item())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            if self._n_updates % self.policy_delay == 0:
                actor_loss = -self.critic.q1_forward(replay_data.observations,
                                                     self.actor(replay_data.observations)).mean()
                actor_losses.append(actor_loss.item())
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
                self.actor.optimizer.step()
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
                polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
                polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)
                self._delayed_update(replay_data)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if len(actor_losses) > 0:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))


class _RobustActorCritic(RobustTargetMixin):
    """What RobustSAC and RobustTD3 share: the robust target's keyword arguments, its set-up, the attributes not
    saved and the statistics around ``train``; each defines only its ``_next_value``."""

    def __init__(self, policy: Any, env: Any, rho: float = 0.05, eta: float = 1.0, n_samples: int = 16,
                 norm: str = "linf", state_scale: Sequence[float] | str | None = None, estimator: str = "saa",
                 mlmc_level: int = 4, rho_ramp: float = 0.0, eta_scale: str = "absolute",
                 state_scale_steps: int = 10_000, **kwargs: Any) -> None:
        self._init_robust_target(rho, eta, n_samples, norm, state_scale, estimator, mlmc_level, rho_ramp, eta_scale,
                                 state_scale_steps=state_scale_steps)
        super().__init__(policy=policy, env=env, **kwargs)  # type: ignore[call-arg]

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        self._setup_robust_target()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), *self._ROBUST_EXCLUDED]  # type: ignore[misc]

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """The hooked agent's ``train``, logging the target's statistics (``train/q_spread``, ``train/target_gap``,
        ``train/samples_per_update``) and keeping them in :attr:`target_history`."""
        self._begin_target_stats()
        super().train(gradient_steps, batch_size)  # type: ignore[misc]
        self._end_target_stats()


_ROBUST_DOC = """
    :param rho: radius of the perturbation ball (>= 0), in units of ``state_scale``; 0 gives SB3's agent exactly.
    :param eta: temperature in [0, inf]: inf the mean over the ball, 0 the worst sample.
    :param n_samples: m, perturbations per next state for the ``"saa"`` estimator (>= 1).
    :param norm: ``"linf"`` or ``"l2"``.
    :param state_scale: per-dimension scale of the perturbation (default all ones), or ``"auto"``: estimated from the
        replay buffer after ``state_scale_steps`` steps and frozen (the plain target until then).
    :param state_scale_steps: when ``state_scale="auto"`` is estimated (environment steps, >= 1).
    :param estimator: ``"saa"``, ``"mlmc"`` (RT-MLMC over levels 0..``mlmc_level``) or ``"linear"`` (the closed form
        of the value's first-order expansion around the next state: one evaluation and one input gradient, no samples).
    :param mlmc_level: L for RT-MLMC (>= 0).
    :param rho_ramp: fraction of training over which the radius grows from 0 to ``rho`` (0: from the start).
    :param eta_scale: ``"absolute"`` or ``"spread"`` (eta times the spread of the value over the sampled ball, or of
        its linearization over the ball for ``estimator="linear"``).
    :param kwargs: passed unchanged to SB3's agent (``seed`` also seeds the perturbation generator).
"""


class RobustSAC(_RobustActorCritic, HookedSAC):
    """SAC whose next-state value is its entropic soft-min over sampled perturbations of the next state.

    ``y = r + gamma (1 - done) S_eta[V](s')``, ``V(z) = min_i Q_i'(z, a) - alpha log pi(a|z)``, ``a ~ pi(.|z)``
    at each perturbed state ``z`` (Wang, Gao, Xie, arXiv:2408.09672; the mechanism of
    :class:`~robustrl.agents.robust_target.RobustTargetMixin`).
    """ + _ROBUST_DOC

    def _next_value(self, replay_data: ReplayBufferSamples, ent_coef: th.Tensor) -> th.Tensor:
        rho = self.current_rho()
        if rho == 0:
            self._samples_per_update.append(0)
            return super()._next_value(replay_data, ent_coef)
        next_obs = replay_data.next_observations.float()

        def value(states: th.Tensor) -> th.Tensor:
            actions, log_prob = self.actor.action_log_prob(states)
            q_values, _ = th.min(th.cat(self.critic_target(states, actions), dim=1), dim=1, keepdim=True)
            return q_values - ent_coef * log_prob.reshape(-1, 1)

        robust = self._robust_value(next_obs, value, rho)
        self._record_target_stat("target_gap", float((self._plain_value(next_obs, value) - robust).mean()))
        return robust


class RobustTD3(_RobustActorCritic, HookedTD3):
    """TD3 whose next-state value is its entropic soft-min over sampled perturbations of the next state.

    ``y = r + gamma (1 - done) S_eta[V](s')``, ``V(z) = min_i Q_i'(z, clip(mu'(z) + clip(noise)))`` at each
    perturbed state ``z``, the smoothing noise drawn per sample (Wang, Gao, Xie, arXiv:2408.09672; the mechanism of
    :class:`~robustrl.agents.robust_target.RobustTargetMixin`).
    """ + _ROBUST_DOC

    def _next_value(self, replay_data: ReplayBufferSamples) -> th.Tensor:
        rho = self.current_rho()
        if rho == 0:
            self._samples_per_update.append(0)
            return super()._next_value(replay_data)
        next_obs = replay_data.next_observations.float()
        action_shape = replay_data.actions.shape[1:]

        def value(states: th.Tensor) -> th.Tensor:
            noise = th.empty((len(states), *action_shape), device=states.device).normal_(0, self.target_policy_noise)
            noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
            actions = (self.actor_target(states) + noise).clamp(-1, 1)
            q_values, _ = th.min(th.cat(self.critic_target(states, actions), dim=1), dim=1, keepdim=True)
            return q_values

        robust = self._robust_value(next_obs, value, rho)
        self._record_target_stat("target_gap", float((self._plain_value(next_obs, value) - robust).mean()))
        return robust


class PRMDPTD3(HookedTD3):
    """The probabilistic action-robust TD3 (PR-MDP; Tessler, Efroni, Mannor, "Action Robust Reinforcement Learning
    and Applications in Continuous Control", ICML 2019), a baseline from RRLS's family of adversarial methods.

    With probability ``alpha`` the action executed is an adversary's instead of the agent's (both deterministic actors,
    the agent's with its exploration noise); the critic learns the value of that mixture,
    ``y = r + gamma ((1 - alpha) min_i Q_i'(s', a'(s')) + alpha min_i Q_i'(s', abar'(s')))`` with TD3's target
    smoothing on both actions, the agent's actor ascends ``Q_1(s, mu(s))`` and the adversary's descends
    ``Q_1(s, mubar(s))`` at each delayed update. The reference implementation (tesslerc/ActionRobustRL, on DDPG)
    evaluates both actors at the next states inside the critic of the current ones; here both are evaluated at the
    current states, as TD3 does. ``alpha = 0`` is SB3's TD3 update for update. Evaluation uses the agent's actor.

    :param alpha: the probability of the adversary's action, in [0, 1].
    :param kwargs: passed unchanged to SB3's ``TD3`` (``seed`` also seeds the coin of each step).
    """

    def __init__(self, policy: Any, env: Any, alpha: float = 0.1, **kwargs: Any) -> None:
        from robustrl.checks import check_probability

        self.pr_alpha = check_probability(alpha, "alpha")
        super().__init__(policy=policy, env=env, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        with th.random.fork_rng():  # the adversary's initial weights leave SB3's random stream as it was
            th.manual_seed(0 if self.seed is None else int(self.seed) + 1)
            self.adversary = self.policy.make_actor(features_extractor=None)
            self.adversary_target = self.policy.make_actor(features_extractor=None)
        self.adversary_target.load_state_dict(self.adversary.state_dict())
        self.adversary_target.set_training_mode(False)
        self.adversary.optimizer = self.policy.optimizer_class(self.adversary.parameters(),
                                                               lr=self.lr_schedule(1),
                                                               **self.policy.optimizer_kwargs)
        self._coin = np.random.default_rng(self.seed)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "adversary", "adversary_target", "_coin"]

    def _sample_action(self, learning_starts: int, action_noise: Any = None, n_envs: int = 1) -> Any:
        action, buffer_action = super()._sample_action(learning_starts, action_noise, n_envs)
        if self.pr_alpha == 0 or self.num_timesteps < learning_starts:
            return action, buffer_action
        adversarial = self._coin.random(n_envs) < self.pr_alpha
        if adversarial.any():
            with th.no_grad():
                obs, _ = self.policy.obs_to_tensor(self._last_obs)
                scaled = self.adversary(obs).clamp(-1, 1).cpu().numpy()
            buffer_action = np.where(adversarial[:, None], scaled, buffer_action)
            action = self.policy.unscale_action(buffer_action)
        return action, buffer_action

    def _next_value(self, replay_data: ReplayBufferSamples) -> th.Tensor:
        agent = super()._next_value(replay_data)
        if self.pr_alpha == 0:
            return agent
        noise = replay_data.actions.clone().data.normal_(0, self.target_policy_noise)
        noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
        actions = (self.adversary_target(replay_data.next_observations) + noise).clamp(-1, 1)
        adversary, _ = th.min(th.cat(self.critic_target(replay_data.next_observations, actions), dim=1), dim=1,
                              keepdim=True)
        return (1 - self.pr_alpha) * agent + self.pr_alpha * adversary

    def _delayed_update(self, replay_data: ReplayBufferSamples) -> None:
        if self.pr_alpha == 0:
            return
        adversary_loss = self.critic.q1_forward(replay_data.observations,
                                                self.adversary(replay_data.observations)).mean()
        self.adversary.optimizer.zero_grad()
        adversary_loss.backward()
        self.adversary.optimizer.step()
        polyak_update(self.adversary.parameters(), self.adversary_target.parameters(), self.tau)
