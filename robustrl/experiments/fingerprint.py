"""A fingerprint of training's arithmetic: a hash of every intermediate of a few gradient steps from a fixed seed.

Two machines that train a run to different bits part somewhere: in the environment's physics, in the sampled
perturbations, in a matrix product, in the soft-min, in the optimizer. :func:`update_fingerprint` collects the
transitions of a fixed seed, then takes a few gradient steps of the agent and hashes, per step, what each stage
produced:

==================  ================================================================================
``transitions``     the replay buffer after the first ``learning_starts`` steps (the env's physics)
``batch``           the sampled replay batch
``target_input``    the next states the target network sees (the m perturbed copies, for a robust agent)
``target_forward``  the target network's Q-values of them (the largest matrix products)
``target``          the TD target ``y`` (soft-min over the perturbations, max over actions, reward); ``-``
                    for SB3's own DQN, which computes it inline
``q_values``        the online network's Q-values of the batch
``loss``            the TD loss (plus any regularizer)
``gradients``       the clipped gradients
``parameters``      the weights after the optimizer step
``evaluation``      the float64 greedy Q-values of the batch (what evaluation computes; after the last step)
==================  ================================================================================

:func:`compare_fingerprints` names the first stage whose hash differs from a reference, which tells someone on
another CPU at once whether and where their run parts from the committed one.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium
import numpy as np
import stable_baselines3
import torch

from robustrl.agents import AgentConfig, load_config, make_agent
from robustrl.checks import check_int, check_seed
from robustrl.experiments.evaluation import greedy_q_network
from robustrl.experiments.training import jsonable
from robustrl.kernels import cpu_name, kernel_report

__all__ = ["FINGERPRINT_STAGES", "compare_fingerprints", "fingerprint_config", "update_fingerprint"]

#: The stages hashed per gradient step, in the order the step computes them.
FINGERPRINT_STAGES = ("batch", "target_input", "target_forward", "target", "q_values", "loss", "gradients",
                      "parameters")


def _digest(*arrays: Any) -> str:
    """The first 16 hex digits of the SHA-256 of the arrays' bytes (dtype and shape included)."""
    sha = hashlib.sha256()
    for array in arrays:
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().contiguous().numpy()
        array = np.ascontiguousarray(array)
        sha.update(f"{array.dtype}{array.shape}".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()[:16]


@contextmanager
def _recording(model: Any, step: dict[str, str]) -> Iterator[None]:
    """Hash the stages of the gradient steps taken inside the block into ``step`` (the last step's stay)."""
    sample = model.replay_buffer.sample
    compute_target = getattr(model, "_compute_target", None)  # SB3's own DQN computes its target inline
    target_calls: list[int] = []

    def hooked_sample(*args: Any, **kwargs: Any) -> Any:
        batch = sample(*args, **kwargs)
        step["batch"] = _digest(batch.observations, batch.actions, batch.next_observations, batch.dones,
                                batch.rewards)
        target_calls.clear()
        return batch

    def hooked_target(*args: Any, **kwargs: Any) -> Any:
        target = compute_target(*args, **kwargs)  # type: ignore[misc]
        step["target"] = _digest(target)
        return target

    def on_target_net(module: Any, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if not target_calls:  # the first call of a step: the (perturbed) next states
            step["target_input"] = _digest(inputs[0])
            step["target_forward"] = _digest(output)
        target_calls.append(1)

    def on_online_net(module: Any, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if torch.is_grad_enabled():
            step["q_values"] = _digest(output)

    handles = [model.q_net_target.register_forward_hook(on_target_net),
               model.q_net.register_forward_hook(on_online_net)]
    model.replay_buffer.sample = hooked_sample
    if compute_target is not None:
        model._compute_target = hooked_target
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        del model.replay_buffer.sample  # back to the class's methods
        if compute_target is not None:
            del model._compute_target


def fingerprint_config(agent: str = "robust", *, env_id: str | None = None,
                       config: dict[str, Any] | None = None) -> AgentConfig:
    """The configuration :func:`update_fingerprint` trains ``agent`` with: the agent's entry for ``env_id``
    (default: the default task's nominal id) in ``config`` (default: the packaged config), its robust target's
    radius at full value from the first step (``rho_ramp`` 0 where the agent ramps it)."""
    from robustrl.tasks import get_task

    env_id = get_task().nominal_id if env_id is None else env_id
    config = config or load_config()
    ramped = "rho_ramp" in (config.get(env_id, {}).get("agents", {}).get(agent) or {})
    return AgentConfig.resolve(config, env_id, agent, {"rho_ramp": 0.0} if ramped else {})


def update_fingerprint(agent: str = "robust", seed: int = 0, updates: int = 4, *, env_id: str | None = None,
                       config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Hashes of every stage of ``updates`` gradient steps of ``agent`` (from the packaged config) trained
    with ``seed`` on ``env_id`` (default: the default task's nominal id), after collecting ``learning_starts``
    transitions.

    One thread and the run's own seeding and code path (the agent's ``train`` step, one gradient step at a time),
    so a machine whose fingerprint equals the reference's computes what ``robustrl train`` computes there. The
    robust agent's radius is taken at its full value (no ramp), so the perturbation stages are exercised from
    the first step (:func:`fingerprint_config`). Returns ``{"agent", "seed", "env_id", "config" (the resolved
    configuration, so a reference made before a change of the agent's settings is told apart from a machine that
    computes differently), "kernels", "machine", "transitions", "steps": [{stage: hash}, ...], "evaluation"}``.
    """
    check_seed(seed)
    check_int(updates, "updates", 1)
    cfg = fingerprint_config(agent, env_id=env_id, config=config)
    env_id = cfg.env_id
    torch.set_num_threads(1)
    model = make_agent(cfg, cfg.make_training_env(), seed=seed, verbose=0, device="cpu")
    learning_starts = int(cfg.dqn_kwargs.get("learning_starts", model.learning_starts))
    model.learn(learning_starts)  # the collection phase only: DQN trains from learning_starts on
    buffer = model.replay_buffer
    size = buffer.size()
    transitions = _digest(buffer.observations[:size], buffer.actions[:size], buffer.next_observations[:size],
                          buffer.rewards[:size], buffer.dones[:size])
    steps = []
    batch_size = int(cfg.dqn_kwargs.get("batch_size", model.batch_size))
    for _ in range(updates):
        step: dict[str, str] = {}
        with _recording(model, step):
            model.train(gradient_steps=1, batch_size=batch_size)
        step["loss"] = _digest(np.float64(model.logger.name_to_value["train/loss"]))
        step["gradients"] = _digest(*(p.grad for p in model.policy.parameters() if p.grad is not None))
        step["parameters"] = _digest(*model.policy.parameters())
        steps.append({stage: step.get(stage, "-") for stage in FINGERPRINT_STAGES})
    with torch.no_grad():
        observations = torch.as_tensor(buffer.observations[:size].reshape(size, -1), dtype=torch.float64)
        evaluation = _digest(greedy_q_network(model)(observations))
    return {"agent": agent, "seed": seed, "env_id": env_id, "config": jsonable(cfg.to_dict()),
            "kernels": kernel_report(),
            "machine": {"cpu": cpu_name(), "arch": platform.machine(), "torch": torch.__version__,
                        "numpy": np.__version__, "stable_baselines3": stable_baselines3.__version__,
                        "gymnasium": gymnasium.__version__},
            "transitions": transitions, "steps": steps, "evaluation": evaluation}


def compare_fingerprints(new: dict[str, Any], reference: dict[str, Any]) -> str | None:
    """None if every hash of ``new`` equals ``reference``'s, else one line naming the first stage that differs
    (``"step 2, target_forward"``), which is where the two machines' arithmetic parts. Two fingerprints of
    different agents, seeds, environments or configurations are not comparable, and the line says so (a reference
    older than the agent's settings is rewritten, not blamed on the machine)."""
    for key in ("agent", "seed", "env_id"):
        if new.get(key) != reference.get(key):
            return f"not comparable: {key} {new.get(key)!r} vs {reference.get(key)!r}"
    if "config" in new and "config" in reference and new["config"] != reference["config"]:
        changed = sorted(key for key in {**new["config"], **reference["config"]}
                         if new["config"].get(key) != reference["config"].get(key))
        return (f"not comparable: the reference was made with another configuration of {new['agent']!r} "
                f"(differs in {', '.join(changed)}); rewrite it with --write")
    if new["transitions"] != reference["transitions"]:
        return "transitions differ: the environment's physics (numpy) already parts, before any gradient step"
    for number, (a, b) in enumerate(zip(new["steps"], reference["steps"]), start=1):
        for stage in FINGERPRINT_STAGES:
            if a.get(stage) != b.get(stage):
                return f"step {number}, {stage} differs (earlier stages agree)"
    if len(new["steps"]) != len(reference["steps"]):
        return f"{len(new['steps'])} steps vs {len(reference['steps'])}: compare with the same --updates"
    if new["evaluation"] != reference["evaluation"]:
        return "evaluation differs (training agrees): the float64 greedy Q-values part"
    return None
