"""Compact checkpoints: what evaluation needs (the Q-network's weights and the config), nothing for training.

For SAC and TD3 the ``q_net`` entry holds the actor's and the critics' weights (``actor.*``, ``critic.*``): the
actor acts, the critics serve the critic attack; target networks and optimizer state are left out.

A checkpoint is ``torch.save`` of plain data and tensors, so ``torch.load(path, weights_only=True)`` reads it:
``{"format", "version": 1, "algo", "config" (the resolved :class:`AgentConfig` as a dict), "q_net" (the
policy's Q-network ``state_dict`` in float32)}``. Unlike a Stable-Baselines3 ``.zip`` it holds no optimizer
state, target network or replay settings: about 270 KB for a [256, 256] network instead of 1.1 MB.

A run's final model can be stored against its best one (version 2, :func:`encode_checkpoint` with a ``base``):
``{"format", "version": 2, "algo", "config", "base": {"file", "sha256"} (the best checkpoint's file, version
1), "changed": {name: the mask of entries that differ from the base, as packed bits}, "values": {name: those
entries}}``. Between a run's best and final models most weights are unchanged (units that no state of the
replay buffer activates get no gradient: about 70 % of the second hidden layer of the reward table's
networks), so such a file is about 90 KB instead of 270 KB, and it compresses to a fifth in a git pack. Reading
it gives the same tensors, bit for bit, as the full checkpoint of the same model.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robustrl.agents.factory import AgentConfig, make_agent
from robustrl.envs import check_env_id

__all__ = ["CHECKPOINT_FORMAT", "checkpoint_bytes", "encode_checkpoint", "load_checkpoint", "read_checkpoint"]

CHECKPOINT_FORMAT = "robustrl-dqn-checkpoint"
CHECKPOINT_VERSION = 1
#: The version of a checkpoint stored as the entries that differ from a base checkpoint of the same run.
DELTA_VERSION = 2


def checkpoint_bytes(model: Any, config: AgentConfig, base: str | Path | None = None) -> bytes:
    """The compact checkpoint of ``model`` (trained with ``config``) as bytes, ready to be written.

    The bytes depend only on the weights and the config (plain data, keys sorted), so equal models give
    equal files. With ``base`` (the run's best checkpoint, a full one), only the entries that differ from it
    are stored (:func:`encode_checkpoint`).
    """
    weights = {name: tensor.detach().to("cpu", torch.float32).clone()
               for name, tensor in _evaluated_weights(model).items()}
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "algo": config.algo,
             "config": json.loads(json.dumps(config.to_dict(), sort_keys=True)), "q_net": weights}
    return encode_checkpoint(state, base)


def _evaluated_weights(model: Any) -> dict[str, torch.Tensor]:
    """The weights a checkpoint keeps: DQN's Q-network; SAC's and TD3's actor and critics (``actor.*``,
    ``critic.*``), without the target networks (copies of them at evaluation) or any optimizer state."""
    if hasattr(model, "q_net"):
        return model.q_net.state_dict()
    return {**{f"actor.{k}": v for k, v in model.policy.actor.state_dict().items()},
            **{f"critic.{k}": v for k, v in model.policy.critic.state_dict().items()}}


def _load_evaluated_weights(model: Any, weights: dict[str, torch.Tensor]) -> None:
    """Load :func:`_evaluated_weights` into ``model`` and its target networks."""
    if hasattr(model, "q_net"):
        model.q_net.load_state_dict(weights)
        model.q_net_target.load_state_dict(weights)
        return
    parts = {part: {k[len(part) + 1:]: v for k, v in weights.items() if k.startswith(part + ".")}
             for part in ("actor", "critic")}
    if sum(map(len, parts.values())) != len(weights):
        raise KeyError("weights other than actor.* and critic.*")
    model.policy.actor.load_state_dict(parts["actor"])
    model.policy.critic.load_state_dict(parts["critic"])
    model.policy.critic_target.load_state_dict(parts["critic"])
    if hasattr(model.policy, "actor_target"):
        model.policy.actor_target.load_state_dict(parts["actor"])


def _save(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()  # saving to memory keeps the archive's inner names independent of the file name
    torch.save(state, buffer)
    return buffer.getvalue()


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """The float32 entries as integers, so that equality is bit equality (-0.0 differs from 0.0)."""
    return tensor.contiguous().view(torch.int32).reshape(-1)


def encode_checkpoint(state: dict[str, Any], base: str | Path | None = None) -> bytes:
    """The bytes of a checkpoint holding ``state`` (``{"algo", "config", "q_net"}``, as :func:`read_checkpoint`
    returns it): a full checkpoint (version 1), or with ``base`` the entries that differ from that full
    checkpoint of the same run (version 2, named by its file name and checksum: it must stay beside it).

    Weights equal to the base's give the base's own bytes (a run stores such a final model once); weights
    of other names or shapes than the base's give a full checkpoint. Either way the bytes depend only on
    the weights, the config and the base file.
    """
    full = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "algo": state["algo"],
            "config": state["config"], "q_net": state["q_net"]}
    if base is None:
        return _save(full)
    base = Path(base)
    base_bytes = base.read_bytes()
    reference = read_checkpoint(base)
    if reference["version"] != CHECKPOINT_VERSION:
        raise ValueError(f"model file {base} is stored against another file; a base must be a full checkpoint")
    weights, base_weights = state["q_net"], reference["q_net"]
    if weights.keys() != base_weights.keys() or any(
            weights[k].shape != base_weights[k].shape or weights[k].dtype != torch.float32 for k in weights):
        return _save(full)
    changed = {k: _bits(weights[k]) != _bits(base_weights[k]) for k in weights}
    if not any(mask.any() for mask in changed.values()) and reference["config"] == state["config"]:
        return base_bytes
    return _save({"format": CHECKPOINT_FORMAT, "version": DELTA_VERSION, "algo": state["algo"],
                  "config": state["config"],
                  "base": {"file": base.name, "sha256": hashlib.sha256(base_bytes).hexdigest()},
                  "changed": {k: torch.from_numpy(np.packbits(mask.numpy())) for k, mask in changed.items()},
                  "values": {k: weights[k].reshape(-1)[changed[k]].clone() for k in weights}})


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The contents of a compact checkpoint (a ``weights_only`` load); a ``ValueError`` names a bad file.

    A checkpoint stored against a base (version 2) is read with its base: the result holds the full
    ``q_net`` weights, bit for bit those of the model that was saved.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        state = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  arbitrary bytes fail in many ways inside the unpickler
        raise ValueError(f"model file {path} is corrupted or not a robustrl checkpoint: {err}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"model file {path} is not a robustrl checkpoint (no format {CHECKPOINT_FORMAT!r})")
    if state.get("version") == DELTA_VERSION:
        state = _apply_delta(path, state)
    if state.get("version") not in (CHECKPOINT_VERSION, DELTA_VERSION):
        raise ValueError(f"model file {path} has checkpoint version {state.get('version')!r}; "
                         f"this robustrl reads versions {CHECKPOINT_VERSION} and {DELTA_VERSION}")
    weights = state.get("q_net")
    if not isinstance(state.get("config"), dict) or not isinstance(weights, dict) or not all(
            isinstance(t, torch.Tensor) for t in weights.values()):
        raise ValueError(f"model file {path} is corrupted: it lacks the config or the q_net weights")
    return state


def _apply_delta(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    """The full weights of a checkpoint stored against a base: the base's, with the changed entries."""
    base = state.get("base")
    if not isinstance(base, dict) or not isinstance(base.get("file"), str) or Path(base["file"]).name != base["file"]:
        raise ValueError(f"model file {path} is corrupted: it does not name its base checkpoint")
    base_path = path.parent / base["file"]
    if not base_path.is_file():
        raise ValueError(f"model file {path} holds the weights that differ from {base_path}, which does not exist")
    if hashlib.sha256(base_path.read_bytes()).hexdigest() != base.get("sha256"):
        raise ValueError(f"model file {path} was saved against another {base_path} (its checksum differs)")
    reference = read_checkpoint(base_path)["q_net"]
    changed, values = state.get("changed"), state.get("values")
    if not isinstance(changed, dict) or not isinstance(values, dict) or changed.keys() != reference.keys() or \
            values.keys() != reference.keys():
        raise ValueError(f"model file {path} is corrupted: its changed entries do not match {base_path}")
    weights = {}
    for name, tensor in reference.items():
        mask = torch.from_numpy(np.unpackbits(changed[name].numpy(), count=tensor.numel()).astype(bool))
        flat = tensor.reshape(-1).clone()
        if int(mask.sum()) != values[name].numel():
            raise ValueError(f"model file {path} is corrupted: {name} has {values[name].numel()} values "
                             f"for {int(mask.sum())} changed entries")
        flat[mask] = values[name]
        weights[name] = flat.reshape(tensor.shape)
    return {"format": CHECKPOINT_FORMAT, "version": DELTA_VERSION, "algo": state.get("algo"),
            "config": state.get("config"), "base": base, "q_net": weights}


def load_checkpoint(path: str | Path, device: str = "cpu") -> Any:
    """Rebuild the agent saved at ``path`` (a compact checkpoint) for evaluation.

    The agent is made from the saved config and gets the saved Q-network weights (its target network
    too), so its greedy actions and evaluation returns equal those of the model that was saved.
    """
    state = read_checkpoint(path)
    try:
        config = AgentConfig(**state["config"])
        check_env_id(config.env_id)
        model = make_agent(config, gym.make(config.env_id), seed=0, verbose=0, device=device)
        _load_evaluated_weights(model, state["q_net"])
    except (TypeError, KeyError, RuntimeError) as err:
        raise ValueError(f"model file {path} does not match its saved config: {err}") from None
    return model
