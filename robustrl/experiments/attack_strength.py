"""Has the robustness suite's attack converged? A stronger attack, the flip rate on visited states, and the
returns of the suite's attack against the stronger one (``scripts/attack_convergence.py`` drives them).

The returns move with an attack's random starts as well as with its strength (another perturbation sends an
episode down another path), so the strength is measured directly too: the fraction of the states a clean greedy
policy visits whose greedy action the attack flips (:func:`flip_rates`). Torch is imported on use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustrl.checks import check_int
from robustrl.experiments.suite import CHANNELS, Suite
from robustrl.experiments.suite_table import SuiteResults

__all__ = ["action_margins", "boundary_distances", "convergence_rows", "flip_rates", "strengthened",
           "visited_states"]


def strengthened(suite: Suite, factor: int = 2) -> Suite:
    """The PGD channels of ``suite`` with ``factor`` times the steps and the restarts (and nothing else): the
    stronger attack that tells whether the suite's attack has converged (``scripts/attack_convergence.py``)."""
    factor = check_int(factor, "factor", 2)
    channels = {c: levels for c, levels in suite.channels.items() if CHANNELS[c].method == "pgd"}
    if not channels:
        raise ValueError(f"suite {suite.name} has no PGD channel to strengthen")
    attack = {**suite.attack, "steps": suite.attack["steps"] * factor, "restarts": suite.attack["restarts"] * factor}
    return Suite(f"{suite.name}-x{factor}", channels, suite.episodes, suite.state_scale, attack, [], suite.set_episodes,
                 suite.source)


def visited_states(model: Any, episodes: int = 10, steps: int = 200, seed: int | None = None,
                   env_id: str | None = None) -> np.ndarray:
    """States the greedy policy of ``model`` visits on the nominal env ``env_id`` (default: the default task's):
    the first ``steps`` steps of ``episodes`` episodes side by side (finished ones auto-reset), shape
    ``(episodes * steps, obs_dim)``."""
    from robustrl.tasks import get_task

    from robustrl.envs import make_vector_env
    from robustrl.experiments.evaluation import EVALUATION_PRECISION, EVALUATION_SEED, greedy_policy

    check_int(episodes, "episodes", 1)
    check_int(steps, "steps", 1)
    policy = greedy_policy(model, EVALUATION_PRECISION)
    venv = make_vector_env(get_task().nominal_id if env_id is None else env_id, episodes)
    obs, _ = venv.reset(seed=EVALUATION_SEED if seed is None else seed)
    states = []
    for _ in range(steps):
        states.append(obs.copy())
        obs, *_ = venv.step(policy(obs.astype(np.float32)))
    venv.close()
    return np.concatenate(states)


def _states_and_q_network(model: Any, states: np.ndarray) -> tuple[np.ndarray, Any]:
    """``states`` as a checked float64 ``(n, obs_dim)`` array, and ``model``'s Q-network in float64."""
    from robustrl.experiments.evaluation import greedy_q_network

    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 2 or len(states) == 0:
        raise ValueError(f"states must be a non-empty (n, obs_dim) array, got shape {states.shape}")
    return states, greedy_q_network(model, "float64")


def action_margins(model: Any, states: np.ndarray) -> np.ndarray:
    """Per state, the greedy action's lead over the runner-up, ``Q(s, a*) - max_{a != a*} Q(s, a)`` (in float64):
    how far an observation attack has to move Q before the greedy action flips. Shape ``(len(states),)``;
    needs at least two actions."""
    import torch

    states, q_net = _states_and_q_network(model, states)
    with torch.no_grad():
        q = q_net(torch.as_tensor(states)).numpy()
    if q.shape[1] < 2:
        raise ValueError(f"action margins need at least two actions, the model has {q.shape[1]}")
    top2 = np.sort(q, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def boundary_distances(model: Any, states: np.ndarray, state_scale: list[float], norm: str = "linf") -> np.ndarray:
    """Per state, the first-order distance to the greedy action's decision boundary, in units of ``state_scale``:
    the margin ``Q(s, a*) - Q(s, a2)`` over the dual norm of its input gradient, ``||scale * grad||_1`` for an
    ``"linf"`` ball and ``||scale * grad||_2`` for ``"l2"`` (``a2`` the runner-up action). Unlike the margin it
    does not grow with Q's scale: it estimates the smallest eps at which an attack flips the action (exactly so
    where Q is linear). Shape ``(len(states),)``, in float64."""
    import torch

    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got norm={norm!r}")
    states, q_net = _states_and_q_network(model, states)
    scale = torch.as_tensor(np.broadcast_to(np.asarray(state_scale, dtype=np.float64), states.shape[1:]).copy())
    if not (torch.isfinite(scale).all() and (scale > 0).all()):
        raise ValueError(f"state_scale must be finite and > 0, got {list(state_scale)}")
    x = torch.as_tensor(states).requires_grad_(True)
    q = q_net(x)
    if q.shape[1] < 2:
        raise ValueError(f"decision boundaries need at least two actions, the model has {q.shape[1]}")
    top2 = q.topk(2, dim=1)
    margin = top2.values[:, 0] - top2.values[:, 1]
    (grad,) = torch.autograd.grad(margin.sum(), x)
    dual = (grad * scale).abs().sum(1) if norm == "linf" else (grad * scale).norm(dim=1)
    return (margin / dual.clamp_min(1e-300)).detach().numpy()


def flip_rates(model: Any, channel: str, levels: list[float], states: np.ndarray, state_scale: list[float],
               attack: dict[str, Any], seed: int = 0) -> np.ndarray:
    """Fraction of ``states`` whose greedy action the attack of ``channel`` flips, at each level: the direct
    measure of an attack's strength (no rollout noise), used to tell whether more steps and restarts help."""
    import torch

    from robustrl.attacks import FGM, PGDEnsemble, WorstOf
    from robustrl.experiments.evaluation import greedy_q_network

    spec = CHANNELS[channel]
    if spec.kind != "attack":
        raise ValueError(f"channel {channel!r} is not an attack")
    q_net = greedy_q_network(model, attack["precision"])
    dtype = next(q_net.parameters()).dtype
    batch = torch.as_tensor(np.tile(states, (len(levels), 1)), dtype=dtype)
    eps = torch.as_tensor(np.repeat(levels, len(states)), dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    common = dict(norm=spec.norm, scale=state_scale, clip=None, generator=generator)
    if spec.method == "fgm":
        worst = WorstOf.over_losses(FGM, q_net, 1.0, **common)
    else:
        worst = PGDEnsemble(q_net, 1.0, steps=attack["steps"], restarts=attack["restarts"], **common)
    with torch.no_grad():
        clean = q_net(batch).argmax(1)
    attacked = worst(batch, clean, eps=eps)
    with torch.no_grad():
        flipped = (q_net(attacked).argmax(1) != clean).reshape(len(levels), len(states))
    return flipped.double().mean(1).numpy()


def convergence_rows(base: SuiteResults, strong: SuiteResults, suite: Any,
                     checkpoint: str = "best") -> list[dict[str, Any]]:
    """Per agent, channel and level of the stronger suite: the mean return under the suite's attack and under
    the stronger one (same runs, same initial states), the change and the drop relative to the first
    (positive when the stronger attack lowers the return)."""
    rows = []
    for agent in sorted(strong, key=lambda a: (a != "regular", a)):
        for channel, levels in suite.channels.items():
            weak = base.get(agent, {}).get(checkpoint, {}).get("channels", {}).get(channel)
            hard = strong[agent].get(checkpoint, {}).get("channels", {}).get(channel)
            if weak is None or hard is None:
                continue
            for k, level in enumerate(levels):
                before, after = float(weak[:, k].mean()), float(hard[:, k].mean())
                rows.append({"agent": agent, "channel": channel, "level": level, "seeds": len(hard),
                             "mean": before, "stronger": after, "change": after - before,
                             "drop": (before - after) / before if before > 0 else 0.0})
    return rows
