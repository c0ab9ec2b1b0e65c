"""SB3's DQN gradient step with its two parts named, so that a robust agent changes one and says which."""

from __future__ import annotations

import numpy as np
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch.nn import functional as F

__all__ = ["HookedDQN"]


class HookedDQN(DQN):
    """Stable-Baselines3's ``DQN`` whose ``train`` calls two hooks; with neither overridden it is ``DQN``.

    - :meth:`_compute_target` (``replay_data, discounts -> y``): the TD target, DQN's by default
      (:class:`~robustrl.agents.RobustDQN` replaces it by the robust target);
    - :meth:`_regularizer` (``replay_data, q_values -> loss term or None``): added to the TD loss, none by
      default (:class:`~robustrl.agents.SADQN` adds the SA-DQN hinge).

    Everything else is SB3's ``DQN.train`` (smooth L1 TD loss, gradient clipping, the same logging).
    """

    def _seeded_generator(self) -> th.Generator:
        """A torch generator of the agent's own draws (perturbations, attack starts), seeded by ``seed`` (fresh
        entropy without one), separate from the global RNGs that SB3 seeds."""
        from robustrl.agents.robust_target import seeded_generator

        return seeded_generator(self.device, self.seed)

    def _compute_target(self, replay_data: ReplayBufferSamples, discounts: th.Tensor | float) -> th.Tensor:
        """DQN's target ``r + gamma (1 - done) max_a Q_target(s', a)``."""
        with th.no_grad():
            next_q_values, _ = self.q_net_target(replay_data.next_observations).max(dim=1)
            return replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values.reshape(-1, 1)

    def _regularizer(self, replay_data: ReplayBufferSamples, q_values: th.Tensor) -> th.Tensor | None:
        """A term added to the TD loss, from the batch and the online Q-values of its states (none here)."""
        return None

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SB3's ``DQN.train`` with the target of :meth:`_compute_target` and the term of :meth:`_regularizer`."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)

        losses = []
        for _ in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            target_q_values = self._compute_target(replay_data, discounts)

            q_values = self.q_net(replay_data.observations)
            current_q_values = th.gather(q_values, dim=1, index=replay_data.actions.long())
            loss = F.smooth_l1_loss(current_q_values, target_q_values)
            extra = self._regularizer(replay_data, q_values)
            if extra is not None:
                loss = loss + extra
            losses.append(loss.item())

            self.policy.optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", np.mean(losses))
