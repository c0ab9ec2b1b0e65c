"""The exact tabular robust update: soft-min = KL-penalised primal, both operators' fixed points, the eta limits,
and robust Q-learning converging to the slide-order fixed point."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy.optimize import minimize

from robustrl.tabular import (
    OPERATOR_ORDERS,
    RobustQLearning,
    grid_neighbour_kernel,
    kernel_softmin,
    mdp_arrays,
    policy_evaluation,
    robust_bellman,
    robust_value_iteration,
    slip_kernel,
)


def _mdp(seed: int, states: int = 5, actions: int = 2):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(states), size=(states, actions))
    R = rng.uniform(0, 1, size=(states, actions))
    p0 = rng.dirichlet(np.ones(states), size=states)
    p0[0] = np.eye(states)[[0, 1]].mean(axis=0)  # a row with a partial support
    return P, R, p0


def _primal(x: np.ndarray, p: np.ndarray, eta: float) -> float:
    """min_q { E_q x + eta KL(q || p) } over the simplex on p's support, solved numerically (SLSQP)."""
    support = p > 0
    xs, ps = x[support], p[support]

    def objective(q: np.ndarray) -> float:
        q = np.clip(q, 1e-300, None)
        return float(q @ xs + eta * np.sum(q * np.log(q / ps)))

    result = minimize(objective, ps, method="SLSQP", bounds=[(0, 1)] * len(ps),
                      constraints=[{"type": "eq", "fun": lambda q: q.sum() - 1}],
                      options={"ftol": 1e-15, "maxiter": 1000})
    return float(result.fun)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("eta", [0.05, 0.3, 1.0, 5.0])
def test_each_soft_min_is_the_kl_penalised_worst_case_solved_numerically(seed, eta):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=6)
    p0 = rng.dirichlet(np.ones(6) * 0.7, size=6)
    closed = kernel_softmin(x, p0, eta)
    for row in range(6):
        assert closed[row] == pytest.approx(_primal(x, p0[row], eta), abs=1e-8)


def test_the_eta_limits_are_exact_and_approached_continuously():
    P, R, p0 = _mdp(0)
    x = np.random.default_rng(1).normal(size=(5, 3))
    worst = np.stack([x[p0[row] > 0].min(axis=0) for row in range(5)])
    np.testing.assert_array_equal(kernel_softmin(x, p0, 0.0), worst)
    np.testing.assert_allclose(kernel_softmin(x, p0, np.inf), p0 @ x, rtol=0, atol=1e-15)
    np.testing.assert_allclose(kernel_softmin(x, p0, 1e-4), worst, atol=1e-3)
    np.testing.assert_allclose(kernel_softmin(x, p0, 1e6), p0 @ x, atol=1e-5)


@pytest.mark.parametrize("order", OPERATOR_ORDERS)
@pytest.mark.parametrize("eta", [0.0, 0.2, 2.0, np.inf])
def test_value_iteration_reaches_a_fixed_point_of_its_operator(order, eta):
    P, R, p0 = _mdp(2)
    result = robust_value_iteration(P, R, p0, 0.9, eta, order, tol=1e-12)
    residual = np.abs(robust_bellman(result.q, P, R, p0, 0.9, eta, order) - result.q).max()
    assert residual < 1e-11 and result.policy.tolist() == result.q.argmax(axis=1).tolist()


def test_mean_limit_is_ordinary_value_iteration_on_the_smoothed_kernel():
    P, R, p0 = _mdp(3)
    robust = robust_value_iteration(P, R, p0, 0.9, np.inf, "commit").q
    smoothed = robust_value_iteration(P @ p0, R, np.eye(5), 0.9, 1.0, "commit").q  # identity kernel: no robustness
    np.testing.assert_allclose(robust, smoothed, atol=1e-10)


def test_seeing_the_perturbed_state_is_worth_at_least_committing_and_more_pessimism_costs_value():
    P, R, p0 = _mdp(4)
    for eta in (0.0, 0.5, np.inf):
        commit = robust_value_iteration(P, R, p0, 0.9, eta, "commit").q
        observe = robust_value_iteration(P, R, p0, 0.9, eta, "observe").q
        assert (observe >= commit - 1e-10).all()
    values = [robust_value_iteration(P, R, p0, 0.9, eta).q for eta in (0.0, 0.1, 1.0, np.inf)]
    assert all((a <= b + 1e-10).all() for a, b in zip(values, values[1:]))  # S_eta increases with eta


def test_robust_q_learning_reaches_the_slide_order_fixed_point():
    """SAA with m = 32 at eta = 1: within 0.05 (sup norm) of the commit-order fixed point after 1000 synchronous
    sweeps of sampled transitions (8000 updates); measured 0.024 at 1000 sweeps, 0.004 at 3000."""
    P, R, p0 = _mdp(0, states=4)
    exact = robust_value_iteration(P, R, p0, 0.8, 1.0).q
    learner = RobustQLearning(4, 2, p0, gamma=0.8, eta=1.0, n_samples=32, seed=1)
    rng = np.random.default_rng(2)
    for _ in range(1000):
        for s in range(4):
            for a in range(2):
                learner.update(s, a, R[s, a], int(rng.choice(4, p=P[s, a])), False)
    assert np.abs(learner.q - exact).max() < 0.05
    assert np.abs(learner.q - robust_value_iteration(P, R, p0, 0.8, np.inf).q).max() > 0.1  # not the mean's


def test_frozenlake_arrays_and_a_learner_on_the_environment():
    env = gym.make("FrozenLake-v1", is_slippery=False)
    P, R, terminal = mdp_arrays(env)
    assert P.shape == (16, 4, 16) and np.allclose(P.sum(axis=2), 1) and terminal.sum() == 5
    assert (P[terminal][:, :, terminal].sum() == 4 * 5) and R[14, 2] == 1.0  # absorbing; the goal pays 1
    kernel = grid_neighbour_kernel((4, 4))
    assert np.allclose(kernel.sum(axis=1), 1) and kernel[0].tolist().count(0.5) == 2
    learner = RobustQLearning(16, 4, kernel, gamma=0.95, eta=0.5, n_samples=4, epsilon=0.3, seed=0).learn(env, 30)
    assert learner.visits.sum() > 0 and learner.policy.shape == (16,)
    slipped = slip_kernel(P, kernel, 0.2, terminal)
    assert np.allclose(slipped.sum(axis=2), 1)
    value = policy_evaluation(slipped, R, np.zeros(16, dtype=int), 0.95)
    assert value.shape == (16,) and np.isfinite(value).all()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"p0": np.ones((4, 4))}, "probability distribution"),
    ({"p0": np.eye(3)}, "square matrix over the 4 states"),
    ({"gamma": 1.0}, "gamma"),
    ({"eta": -1.0}, "eta"),
    ({"n_samples": 0}, "n_samples"),
    ({"estimator": "best"}, "estimator"),
    ({"estimator": "linear"}, "a tabular state has no gradient"),
    ({"alpha_power": 0.5}, "alpha_power"),
])
def test_bad_input_is_refused_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RobustQLearning(**{"n_states": 4, "n_actions": 2, "p0": np.eye(4), **kwargs})


def test_value_iteration_refuses_bad_arrays_and_orders():
    P, R, p0 = _mdp(0)
    with pytest.raises(ValueError, match="order"):
        robust_value_iteration(P, R, p0, 0.9, 1.0, "peek")
    with pytest.raises(ValueError, match="P must have shape"):
        robust_value_iteration(P[:, :, :3], R, p0, 0.9, 1.0)
    with pytest.raises(ValueError, match="continuous|discrete"):
        RobustQLearning(3, 2, np.eye(3)).learn(gym.make("CartPole-v1"), 1)
