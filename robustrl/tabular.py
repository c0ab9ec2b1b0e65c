"""The exact tabular form of the robust update: robust value iteration and robust Q-learning on finite MDPs.

On a finite MDP with transitions ``P[s, a, s']``, expected rewards ``R[s, a]``, discount ``gamma`` and a
neighbourhood kernel ``p0[s', t]`` (the probability that the next state ``s'`` is perturbed to ``t``), the entropic
soft-min of a function ``X`` of the perturbed state is a KL-penalised worst case (the Gibbs variational principle)::

    S_eta[X](s') = -eta log sum_t p0[s', t] exp(-X[t] / eta) = min_q { E_q X + eta KL(q || p0[s', .]) }

``eta = 0`` is the worst neighbour in the support of ``p0[s', .]``, ``eta = inf`` the mean over the kernel. Two
robust Bellman operators, both gamma-contractions in the sup norm (the soft-min is monotone and 1-Lipschitz):

- ``"commit"`` (the update of Wang, Gao and Xie's robust Q-learning, arXiv:2408.09672): the agent commits to the
  next action before the perturbation is drawn,
  ``(T Q)(s, a) = R(s, a) + gamma sum_s' P(s, a, s') max_a' S_eta[Q(., a')](s')``;
- ``"observe"``: the agent sees the perturbed state, ``(T Q)(s, a) = R + gamma sum_s' P S_eta[max_a' Q(., a')](s')``.

Since the soft-min of a maximum is at least the maximum of the soft-mins, the ``"observe"`` fixed point lies above
the ``"commit"`` one: the gap is what committing costs. :func:`robust_value_iteration` computes either fixed point
to a tolerance; :class:`RobustQLearning` learns the ``"commit"`` one from samples, the neighbours drawn from the
kernel and the soft-min estimated by the estimators of the deep agents (SAA, RT-MLMC, :mod:`robustrl.estimators`).
Terminal transitions are absorbing with zero reward (:func:`mdp_arrays` builds the arrays from Gymnasium's toy
text environments). Distributionally robust Q-learning with KL sets in the constrained form is Liu et al., "Distributionally
Robust Q-Learning", ICML 2022; this is the penalised form at a fixed eta.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robustrl.checks import check_choice, check_int, check_probability, check_seed
from robustrl.estimators import check_eta

__all__ = ["OPERATOR_ORDERS", "RobustQLearning", "ValueIterationResult", "grid_neighbour_kernel", "kernel_softmin",
           "mdp_arrays", "policy_evaluation", "robust_bellman", "robust_value_iteration", "slip_kernel"]

#: The two orders of the robust operator: commit to the next action, or observe the perturbed state first.
OPERATOR_ORDERS = ("commit", "observe")


def _check_kernel(p0: Any, n_states: int | None = None) -> np.ndarray:
    kernel = np.asarray(p0, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or (n_states is not None and len(kernel) != n_states):
        raise ValueError(f"the neighbourhood kernel p0 must be a square matrix over the {n_states or 'S'} states, "
                         f"got shape {kernel.shape}")
    if not np.isfinite(kernel).all() or (kernel < 0).any() or not np.allclose(kernel.sum(axis=1), 1.0, atol=1e-9):
        raise ValueError("every row of the neighbourhood kernel p0 must be a probability distribution")
    return kernel


def kernel_softmin(values: np.ndarray, p0: np.ndarray, eta: float) -> np.ndarray:
    """``S_eta[X](s') = -eta log sum_t p0[s', t] exp(-X[t] / eta)`` for every ``s'``, per column of ``values``.

    ``values`` has shape ``(S,)`` or ``(S, k)`` (a function of the perturbed state, k columns such as actions);
    returns ``(S,)`` or ``(S, k)``. ``eta = 0``: the minimum over the support of each row of ``p0``; ``eta = inf``:
    ``p0 @ values``. Computed with the log-sum-exp shift, exact in float64 for every eta.
    """
    eta = check_eta(eta)
    x = np.asarray(values, dtype=np.float64)
    column = x.ndim == 1
    x = x[:, None] if column else x
    support = p0 > 0
    if eta == math.inf:
        result = p0 @ x
    elif eta == 0:
        result = np.stack([x[row].min(axis=0) for row in support])
    else:
        result = np.empty((len(p0), x.shape[1]))
        for i, row in enumerate(support):
            weights, z = p0[i, row][:, None], -x[row] / eta
            top = z.max(axis=0)
            result[i] = -eta * (top + np.log((weights * np.exp(z - top)).sum(axis=0)))
    return result[:, 0] if column else result


def robust_bellman(q: np.ndarray, P: np.ndarray, R: np.ndarray, p0: np.ndarray, gamma: float, eta: float,
                   order: str = "commit") -> np.ndarray:
    """One application of the robust Bellman operator of ``order`` (:data:`OPERATOR_ORDERS`) to ``q`` (S x A)."""
    check_choice(order, OPERATOR_ORDERS, "order")
    if order == "commit":
        next_value = kernel_softmin(q, p0, eta).max(axis=1)  # max_a' S_eta[Q(., a')](s')
    else:
        next_value = kernel_softmin(q.max(axis=1), p0, eta)  # S_eta[max_a' Q(., a')](s')
    return R + gamma * P @ next_value


@dataclass
class ValueIterationResult:
    """The fixed point of a robust operator: ``q`` (S x A), its greedy ``policy`` (S), the ``iterations`` done and
    the last sup-norm change ``residual``."""

    q: np.ndarray
    policy: np.ndarray
    iterations: int
    residual: float


def _check_mdp(P: Any, R: Any, p0: Any, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    P, R = np.asarray(P, dtype=np.float64), np.asarray(R, dtype=np.float64)
    if P.ndim != 3 or P.shape[0] != P.shape[2] or R.shape != P.shape[:2]:
        raise ValueError(f"P must have shape (S, A, S) and R (S, A), got {P.shape} and {R.shape}")
    if (P < 0).any() or not np.allclose(P.sum(axis=2), 1.0, atol=1e-9):
        raise ValueError("every P[s, a, :] must be a probability distribution")
    if not (0 <= gamma < 1):
        raise ValueError(f"gamma must be in [0, 1), got gamma={gamma!r}")
    return P, R, _check_kernel(p0, P.shape[0])


def robust_value_iteration(P: Any, R: Any, p0: Any, gamma: float, eta: float, order: str = "commit",
                           tol: float = 1e-12, max_iterations: int = 100_000) -> ValueIterationResult:
    """Iterate the robust Bellman operator from ``Q = 0`` until the sup-norm change is below ``tol``.

    A gamma-contraction, so the result is within ``tol * gamma / (1 - gamma)`` of the fixed point. ``P`` is
    ``(S, A, S)``, ``R`` ``(S, A)`` (expected reward), ``p0`` the ``(S, S)`` neighbourhood kernel, ``eta`` in
    ``[0, inf]``; ``ValueError`` for bad input or no convergence within ``max_iterations``.
    """
    P, R, p0 = _check_mdp(P, R, p0, gamma)
    check_int(max_iterations, "max_iterations", 1)
    q = np.zeros_like(R)
    for iteration in range(1, max_iterations + 1):
        new = robust_bellman(q, P, R, p0, gamma, eta, order)
        residual = float(np.abs(new - q).max())
        q = new
        if residual < tol:
            return ValueIterationResult(q, q.argmax(axis=1), iteration, residual)
    raise ValueError(f"robust value iteration did not reach tol={tol} in {max_iterations} iterations "
                     f"(last change {residual:.3g})")


def policy_evaluation(P: Any, R: Any, policy: Any, gamma: float) -> np.ndarray:
    """The exact discounted value of a deterministic ``policy`` (one action per state): ``(I - gamma P_pi)^-1 R_pi``."""
    P, R = np.asarray(P, dtype=np.float64), np.asarray(R, dtype=np.float64)
    states = np.arange(P.shape[0])
    policy = np.asarray(policy)
    return np.linalg.solve(np.eye(len(states)) - gamma * P[states, policy], R[states, policy])


def mdp_arrays(env: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(P, R, terminal)`` of a Gymnasium toy-text environment with a model ``env.unwrapped.P`` (FrozenLake,
    CliffWalking, Taxi): ``P[s, a, s']``, the expected reward ``R[s, a]`` and the terminal states. A terminal
    next state is made absorbing with zero reward, so values are those of episodes that end there."""
    model = env.unwrapped.P
    n_states, n_actions = len(model), len(model[0])
    P, R = np.zeros((n_states, n_actions, n_states)), np.zeros((n_states, n_actions))
    terminal = np.zeros(n_states, dtype=bool)
    for s in range(n_states):
        for a in range(n_actions):
            for prob, nxt, reward, done in model[s][a]:
                P[s, a, nxt] += prob
                R[s, a] += prob * reward
                terminal[nxt] |= bool(done)
    for s in np.flatnonzero(terminal):
        P[s] = 0.0
        P[s, :, s] = 1.0
        R[s] = 0.0
    return P, R, terminal


def grid_neighbour_kernel(shape: tuple[int, int], stay: float = 0.0) -> np.ndarray:
    """A kernel over the cells of a ``rows x cols`` grid (row-major states): the next cell stays with probability
    ``stay``, else moves to one of its 4-neighbours inside the grid, uniformly."""
    rows, cols = shape
    check_probability(stay, "stay")
    kernel = np.zeros((rows * cols, rows * cols))
    for r in range(rows):
        for c in range(cols):
            cell = r * cols + c
            near = [(r + dr) * cols + c + dc for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                    if 0 <= r + dr < rows and 0 <= c + dc < cols]
            kernel[cell, cell] = stay
            kernel[cell, near] += (1 - stay) / len(near)
    return kernel


def slip_kernel(P: np.ndarray, p0: np.ndarray, slip: float, terminal: np.ndarray | None = None) -> np.ndarray:
    """Transitions of an environment that really slips: after each step the next state moves to a neighbour drawn
    from ``p0`` with probability ``slip`` (terminal states do not move and are not slipped out of)."""
    check_probability(slip, "slip")
    moved = (1 - slip) * np.eye(len(p0)) + slip * p0
    if terminal is not None:
        moved[terminal] = np.eye(len(p0))[terminal]
    return P @ moved


@dataclass
class RobustQLearning:
    """Tabular Q-learning with the robust target of Wang, Gao and Xie (the ``"commit"`` order, arXiv:2408.09672).

    ``Q(s, a) += alpha_n (r + gamma (1 - done) max_a' S_eta[Q(., a')](s') - Q(s, a))``, the soft-min estimated
    from neighbours of ``s'`` drawn from ``p0[s', .]``, with the deep agents' estimators (``"saa"``: m samples,
    ``"mlmc"``: RT-MLMC over levels 0..``mlmc_level``; :mod:`robustrl.estimators`) and their checks of ``eta`` and
    ``m``. The step size of a pair visited ``n`` times is ``n ** -alpha_power``. :meth:`learn` runs epsilon-greedy
    episodes on a Gymnasium env with discrete observations and actions; :meth:`update` is one transition.

    :param n_states, n_actions: the sizes of the tables.
    :param p0: the ``(S, S)`` neighbourhood kernel.
    :param gamma: discount in [0, 1).
    :param eta: temperature in [0, inf].
    :param n_samples: m for ``"saa"``.
    :param estimator: ``"saa"`` or ``"mlmc"``.
    :param epsilon: exploration probability of :meth:`learn`.
    :param alpha_power: the step size decays as ``n ** -alpha_power`` (in (0.5, 1] for convergence).
    :param seed: seeds the neighbour draws, the estimator's levels and the exploration.
    """

    n_states: int
    n_actions: int
    p0: Any
    gamma: float = 0.95
    eta: float = 1.0
    n_samples: int = 16
    estimator: str = "saa"
    mlmc_level: int = 4
    epsilon: float = 0.1
    alpha_power: float = 0.7
    seed: int = 0
    q: np.ndarray = field(init=False)
    visits: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        import torch

        from robustrl.agents.robust_target import check_target_estimator
        from robustrl.estimators import make_estimator

        check_int(self.n_states, "n_states", 1)
        check_int(self.n_actions, "n_actions", 1)
        self.p0 = _check_kernel(self.p0, self.n_states)
        if not (0 <= self.gamma < 1):
            raise ValueError(f"gamma must be in [0, 1), got gamma={self.gamma!r}")
        self.eta = check_eta(self.eta)
        check_int(self.n_samples, "n_samples", 1)
        if check_target_estimator(self.estimator) == "linear":
            raise ValueError("estimator='linear' expands a value around a continuous state; a tabular state has no "
                             "gradient: use 'saa' or 'mlmc'")
        check_probability(self.epsilon, "epsilon")
        if not (0.5 < self.alpha_power <= 1):
            raise ValueError(f"alpha_power must be in (0.5, 1], got alpha_power={self.alpha_power!r}")
        check_seed(self.seed)
        self.q = np.zeros((self.n_states, self.n_actions))
        self.visits = np.zeros((self.n_states, self.n_actions), dtype=np.int64)
        self._estimator = make_estimator(self.estimator, m=self.n_samples, L=self.mlmc_level)
        self._generator = torch.Generator().manual_seed(int(self.seed))
        self._rng = np.random.default_rng(self.seed)
        self._cumulative = torch.as_tensor(np.cumsum(self.p0, axis=1), dtype=torch.float64)

    def _neighbours(self, states: Any, m: int, generator: Any) -> Any:
        """``m`` neighbours of each state (a float tensor of indices ``(B, 1)``) drawn from ``p0``: ``(B, m, 1)``."""
        import torch

        rows = self._cumulative[states[:, 0].long()]
        u = torch.rand((len(states), m), generator=generator, dtype=torch.float64)
        index = torch.searchsorted(rows, u.contiguous(), right=True).clamp(max=self.n_states - 1)
        return index.to(states.dtype).unsqueeze(-1)

    def robust_next_values(self, next_states: Any) -> np.ndarray:
        """``max_a' S_eta[Q(., a')]`` at each next state, estimated from sampled neighbours."""
        import torch

        table = torch.as_tensor(self.q)
        x = torch.as_tensor(np.asarray(next_states, dtype=np.float64)).reshape(-1, 1)

        def negative_q(z: Any) -> Any:
            return -table[z[..., 0].long()]

        softmin = -self._estimator.estimate(negative_q, x, rho=0.0, eta=self.eta, generator=self._generator,
                                            sampler=self._neighbours)
        return softmin.max(dim=1).values.numpy()

    def update(self, state: int, action: int, reward: float, next_state: int, terminated: bool) -> None:
        """One robust Q-learning step on the transition ``(s, a, r, s', done)``."""
        self.visits[state, action] += 1
        alpha = self.visits[state, action] ** -self.alpha_power
        target = reward + (0.0 if terminated else self.gamma * float(self.robust_next_values([next_state])[0]))
        self.q[state, action] += alpha * (target - self.q[state, action])

    def learn(self, env: Any, episodes: int, max_steps: int = 200) -> RobustQLearning:
        """``episodes`` epsilon-greedy episodes on ``env`` (discrete observations and actions), seeded by ``seed``."""
        import gymnasium as gym

        check_int(episodes, "episodes", 1)
        if not (isinstance(env.observation_space, gym.spaces.Discrete)
                and isinstance(env.action_space, gym.spaces.Discrete)):
            raise ValueError("robust Q-learning needs discrete observations and actions, got "
                             f"{env.observation_space} and {env.action_space}")
        for episode in range(episodes):
            state, _ = env.reset(seed=int(self._rng.integers(2**31)) if episode == 0 else None)
            for _ in range(max_steps):
                explore = self._rng.random() < self.epsilon
                action = int(self._rng.integers(self.n_actions)) if explore else int(self.q[state].argmax())
                next_state, reward, terminated, truncated, _ = env.step(action)
                self.update(int(state), action, float(reward), int(next_state), bool(terminated))
                state = next_state
                if terminated or truncated:
                    break
        return self

    @property
    def policy(self) -> np.ndarray:
        """The greedy action of every state."""
        return self.q.argmax(axis=1)
