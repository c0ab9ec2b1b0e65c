"""The robustness suite: how a trained agent holds up on every channel the robust-RL literature uses.

A suite is a YAML file (the packaged one is ``robustrl/configs/suites/default.yml``)::

    name: default
    episodes: 10                      # greedy episodes per level and run
    state_scale: [2.4, 3.0, 0.21, 3.0]  # units of eps, the same for every agent (the robust agents' rho units)
    attack: {steps: 20, restarts: 2, precision: float64}
    channels:
      pgd-linf: [0.01, 0.02, 0.05, 0.1, 0.2]
      random-action: [0.05, 0.1, 0.2, 0.3]
      ...
    sets: {names: [moderate, wide], episodes: 10}

The channels (:data:`CHANNELS`) are data: a name, what its level means and how it perturbs a batch.

- ``fgsm-linf``, ``pgd-linf``, ``pgd-l2``: white-box attacks on the observed state (SA-DQN's threat model,
  Zhang et al., NeurIPS 2020): the agent acts greedily on ``Q(s~, .)`` with ``s~`` in the ``eps``-ball
  around the true ``s`` (scaled per dimension by ``state_scale``), while the environment moves from ``s``.
  Each is the worst, per state, of the same attack with the SA-DQN margin loss and with cross-entropy on
  softmax(Q) (:class:`robustrl.attacks.WorstOf`); PGD has a random start, ``steps`` steps and ``restarts``
  restarts, and stops moving a state once its greedy action has flipped. With two actions the
  cross-entropy is a monotone function of the margin, so its steps are the margin's and it acts as more
  random restarts.
- ``mad-linf``, ``critic-linf``: the same threat model for actor-critic agents (SAC, TD3;
  :class:`robustrl.attacks.ActorAttack`): PGD (one random start, ``steps`` steps) on the observed state that
  maximises the change of the deterministic action (MAD) or minimises the agent's critic at the true state and
  the attacked action, as SA-DDPG evaluates (Zhang et al., NeurIPS 2020). A Q-network channel refuses an
  actor-critic agent and these refuse a DQN, each naming the channels that fit.
- ``noise-uniform``, ``noise-gaussian``: the agent sees ``s + eps * scale * u``, ``u`` uniform in the unit
  ℓ∞ ball or standard normal (Robust-Gymnasium's observation noise).
- ``random-action``: with probability ``p`` the environment executes a uniformly random action (RFQI).
- ``action-noise``: continuous actions only; the environment executes ``clip(a + std * half-width * z)``, ``z``
  standard normal, ``std`` in units of the action space's half-width (Robust-Gymnasium's action noise).
- ``sets``: uncertainty sets over the physics (:mod:`robustrl.experiments.uncertainty`), summarized by
  the mean, the worst case and CVaR 10 % (:mod:`robustrl.experiments.set_stats`).

:func:`suite_run` evaluates one checkpoint of one run on every channel, one batched rollout per channel
(all its levels side by side in one vector env; the attack runs on the batch of running episodes with a
budget per row), and caches the returns in the run's ``suite.json``::

    {"run": NAME, "layout": 1, "entries": [{"channel", "levels", "episodes", "seed", "state_scale",
     "attack", "checkpoint", "precision", "returns"}, ...], "models": {CHECKPOINT: {"file", "sha256"}}}

An entry is reused while its key and the model file's checksum are unchanged (the uncertainty sets are
cached in ``uncertainty.json`` the same way). This module imports neither torch nor Stable-Baselines3
until a channel has to be computed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from robustrl.checks import (
    check_choice,
    check_eps,
    check_int,
    check_mapping,
    check_probability,
    file_error,
    is_number,
)
from robustrl.experiments.io import atomic_write_json, read_json, read_packaged_yaml, remove_temporaries
from robustrl.experiments.run_files import (
    run_task,
    check_checkpoint,
    checkpoint_files,
    find_entry,
    is_trained,
    renew_models,
)
from robustrl.experiments.uncertainty import (
    UncertaintySet,
    load_uncertainty_set,
    packaged_uncertainty_sets,
    uncertainty_run,
)
from robustrl.tasks import Task, get_task

__all__ = [
    "ACTOR_CRITIC_SUITE",
    "CHANNELS",
    "DEFAULT_SUITE",
    "Q_NETWORK_ALGOS",
    "SUITE_CACHE",
    "Channel",
    "Suite",
    "channel_returns",
    "default_suite_name",
    "load_suite",
    "parse_suite",
    "suite_run",
    "suite_runs",
    "suite_worker",
]

#: The file, in each run folder, that caches the returns of the suite's channels.
SUITE_CACHE = "suite.json"
LAYOUT = 1
#: The packaged suite of Q-network agents, used when no file is named.
DEFAULT_SUITE = "default"
#: The packaged suite of actor-critic agents (SAC, TD3), used when no file is named and every run is one.
ACTOR_CRITIC_SUITE = "actor-critic"
#: The algorithms (``meta.json``'s ``algo``) whose agents act through a Q-network: the default suite's attacks fit
#: them; every other algorithm of :data:`robustrl.agents.AGENT_CLASSES` is an actor-critic one.
Q_NETWORK_ALGOS = ("DQN", "RobustDQN", "SADQN", "RobustSADQN")
_PACKAGE_FOLDER = "configs/suites"
ATTACK_PRECISIONS = ("float32", "float64")


class Channel(NamedTuple):
    """One way of perturbing an agent: its name, what a level is, and how a level perturbs it.

    ``kind`` is ``"attack"`` (an attack of :mod:`robustrl.attacks` on the observed state), ``"noise"``
    (observation noise of :mod:`robustrl.wrappers`) or ``"action"`` (random actions, action noise); ``level``
    names the level (``"eps"``, in units of ``state_scale``; ``"p"``, a probability; ``"std"``, in units of the
    action space's half-width); ``method`` is the attack (``"fgm"``, ``"pgd"``, ``"mad"``, ``"critic"``) or the
    noise distribution (``"uniform"``, ``"gaussian"``); ``norm`` its ball.
    """

    name: str
    kind: str
    level: str
    method: str
    norm: str
    description: str


#: Every channel of the suite, by name.
CHANNELS: dict[str, Channel] = {c.name: c for c in (
    Channel("fgsm-linf", "attack", "eps", "fgm", "linf", "FGSM on the observed state (one signed step)"),
    Channel("pgd-linf", "attack", "eps", "pgd", "linf", "PGD on the observed state, l-inf ball"),
    Channel("pgd-l2", "attack", "eps", "pgd", "l2", "PGD on the observed state, l2 ball"),
    Channel("mad-linf", "attack", "eps", "mad", "linf", "actor-critic agents: the largest change of the action "
            "(MAD), l-inf ball"),
    Channel("critic-linf", "attack", "eps", "critic", "linf", "actor-critic agents: the lowest critic value of "
            "the true state at the attacked action, l-inf ball"),
    Channel("noise-uniform", "noise", "eps", "uniform", "linf", "uniform noise in the l-inf ball"),
    Channel("noise-gaussian", "noise", "eps", "gaussian", "linf", "Gaussian noise, std eps * scale"),
    Channel("random-action", "action", "p", "", "", "a uniformly random action with probability p"),
    Channel("action-noise", "action", "std", "gaussian", "", "continuous actions: Gaussian noise of std "
            "std * the action space's half-width, clipped to the space"),
)}


@dataclass(frozen=True)
class Suite:
    """A validated robustness suite (see the module docstring for the file format).

    :param name: the suite's name.
    :param channels: channel name -> its levels (eps or p).
    :param episodes: greedy episodes per level and run.
    :param state_scale: per-dimension units of eps, the same for every agent.
    :param attack: ``{"steps", "restarts", "precision"}`` of the PGD channels (FGSM uses the precision).
    :param sets: the uncertainty sets.
    :param set_episodes: episodes per setting of a set.
    :param source: where the suite was read from.
    """

    name: str
    channels: dict[str, list[float]]
    episodes: int
    state_scale: list[float]
    attack: dict[str, Any]
    sets: list[UncertaintySet] = field(default_factory=list)
    set_episodes: int = 10
    source: str = ""


def _int(source: str, path: str, value: Any, minimum: int) -> int:
    try:
        return check_int(value, path.rsplit(".", 1)[-1], minimum)
    except ValueError as err:
        raise file_error(source, path, str(err)) from None


def _levels(source: str, name: str, channel: Channel, values: Any) -> list[float]:
    path = f"channels.{name}"
    if not isinstance(values, list) or not values:
        raise file_error(source, path, f"expected a non-empty list of levels ({channel.level}), got {values!r}")
    check = check_probability if channel.level == "p" else check_eps
    levels = []
    for i, value in enumerate(values):
        try:
            levels.append(check(value, channel.level))
        except ValueError as err:
            raise file_error(source, f"{path}[{i}]", str(err)) from None
    if len(set(levels)) != len(levels):
        raise file_error(source, path, f"repeated level in {values}")
    return levels


def parse_suite(data: Any, source: str, task: Task | str | None = None) -> Suite:
    """Validate a parsed suite mapping for ``task`` (default :data:`robustrl.tasks.DEFAULT_TASK`); errors read
    ``source: key.path: problem`` and name the bad value (an unknown channel, eps < 0 or NaN, p outside [0, 1], a
    bad uncertainty set). Without ``state_scale`` the task's is used; a ``sets`` mapping without ``names`` means
    every uncertainty set packaged for the task."""
    task = get_task(task)
    data = check_mapping(source, "", data, ("name", "description", "episodes", "state_scale", "attack", "channels",
                                       "sets"))
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise file_error(source, "name", f"expected a non-empty string, got {name!r}")
    episodes = _int(source, "episodes", data.get("episodes", 10), 1)
    if "state_scale" not in data and not task.state_scale:
        raise file_error(source, "state_scale", f"missing, and task {task.name!r} has none to lend: give the suite a "
                                                "state_scale (the units of eps, one number per observation dimension)")
    scale = data.get("state_scale", list(task.state_scale))
    if not (isinstance(scale, list) and scale and all(is_number(v) and np.isfinite(v) and v > 0 for v in scale)):
        raise file_error(source, "state_scale", f"expected a list of finite numbers > 0, got {scale!r}")
    attack = check_mapping(source, "attack", data.get("attack", {}), ("steps", "restarts", "precision"))
    attack = {"steps": _int(source, "attack.steps", attack.get("steps", 20), 1),
              "restarts": _int(source, "attack.restarts", attack.get("restarts", 2), 1),
              "precision": attack.get("precision", "float64")}
    try:
        check_choice(attack["precision"], ATTACK_PRECISIONS, "precision")
    except ValueError as err:
        raise file_error(source, "attack.precision", str(err)) from None
    channels = check_mapping(source, "channels", data.get("channels", {}), tuple(CHANNELS))
    sets = check_mapping(source, "sets", data.get("sets", {}), ("names", "episodes"))
    names = sets.get("names", packaged_uncertainty_sets(task) if "sets" in data else [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise file_error(source, "sets.names", f"expected a list of set names or files, got {names!r}")
    if not channels and not names:
        raise file_error(source, "channels", "the suite names no channel and no uncertainty set")
    loaded = []
    for i, set_name in enumerate(names):
        try:
            loaded.append(load_uncertainty_set(set_name, task))
        except FileNotFoundError as err:
            raise file_error(source, f"sets.names[{i}]", str(err)) from None
    return Suite(name, {c: _levels(source, c, CHANNELS[c], v) for c, v in channels.items()}, episodes,
                 [float(v) for v in scale], attack, loaded, _int(source, "sets.episodes", sets.get("episodes", 10), 1),
                 source)


def load_suite(name_or_path: str | Path | None = None, task: Task | str | None = None) -> Suite:
    """A packaged suite by name (default ``"default"``; ``"actor-critic"`` for SAC and TD3 agents, see
    :func:`default_suite_name`) or a user's YAML file by path, for ``task`` (its state
    scale and uncertainty sets where the file names none; default :data:`robustrl.tasks.DEFAULT_TASK`).

    ``FileNotFoundError`` for a missing file; ``ValueError`` naming the file, the key path and the value.
    """
    data, source = read_packaged_yaml(DEFAULT_SUITE if name_or_path is None else name_or_path, _PACKAGE_FOLDER,
                                      "suite")
    return parse_suite(data, source, task)


def default_suite_name(run_dirs: list[Path], task: Task | str | None = None) -> str:
    """The packaged suite that fits ``run_dirs``: the suite ``task`` names (its ``suite`` key) if it names one,
    else :data:`DEFAULT_SUITE` for Q-network agents (and for no run), :data:`ACTOR_CRITIC_SUITE` for actor-critic
    ones; ``ValueError`` if the runs mix the two (their attacks differ: name a suite that fits both, e.g. one
    without attack channels)."""
    from robustrl.experiments.records import read_meta

    if task is not None and (own := get_task(task).suite):
        return own

    algos = {Path(d).name: read_meta(d, ("algo",))["algo"] for d in run_dirs}
    q_network = sorted(name for name, algo in algos.items() if algo in Q_NETWORK_ALGOS)
    actor_critic = sorted(name for name, algo in algos.items() if algo not in Q_NETWORK_ALGOS)
    if q_network and actor_critic:
        raise ValueError(f"the runs mix Q-network agents ({q_network[0]}, ...) and actor-critic agents "
                         f"({actor_critic[0]}, ...), whose attack channels differ: name a suite with --suite")
    return ACTOR_CRITIC_SUITE if actor_critic else DEFAULT_SUITE


class _Blocks:
    """A batched transform made of one transform per block of consecutive rows (one block per level)."""

    def __init__(self, transforms: list[Any], rows_per_block: int) -> None:
        self.transforms, self.rows = transforms, rows_per_block

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = np.array(batch, copy=True)
        for k, transform in enumerate(self.transforms):
            part = slice(k * self.rows, (k + 1) * self.rows)
            out[part] = transform(batch[part])
        return out


def _stream(seed: int, channel: str, block: int = 0) -> list[int]:
    return [int(seed), zlib.crc32(channel.encode()), block]


def channel_returns(model: Any, channel: str, levels: list[float], episodes: int, seed: int,
                    state_scale: list[float], attack: dict[str, Any], env_id: str | None = None) -> np.ndarray:
    """Greedy returns of an SB3 DQN ``model`` on one channel, shape ``(len(levels), episodes)``.

    One batched rollout on the nominal env ``env_id`` (default: the default task's), ``episodes`` sub-environments
    per level; initial states from ``seed`` (:func:`~robustrl.experiments.evaluation.greedy_rollout`: each level
    has its own initial states, the same for every agent), every perturbation's randomness from streams derived
    from ``seed`` and the channel's name.
    The agent acts in the evaluation precision (float64); the attacks search in ``attack["precision"]``.
    """
    from robustrl.attacks import ACTOR_OBJECTIVES, FGM, PGDEnsemble, WorstOf
    from robustrl.experiments.evaluation import EVALUATION_PRECISION, greedy_policy, greedy_q_network, greedy_rollout
    from robustrl.wrappers import (
        ActionNoiseTransform,
        ObservationAttackTransform,
        ObservationNoiseTransform,
        RandomActionTransform,
    )

    spec = CHANNELS[channel]
    policy = greedy_policy(model, EVALUATION_PRECISION)
    rows = len(levels) * episodes
    kwargs: dict[str, Any] = {}
    actor_critic = not hasattr(model.policy, "q_net")
    if spec.kind == "attack" and actor_critic != (spec.method in ACTOR_OBJECTIVES):
        raise ValueError(f"channel {channel!r} attacks " + ("an actor-critic agent's actor" if spec.method in
                         ACTOR_OBJECTIVES else "a Q-network's greedy action") + f"; {type(model).__name__} has "
                         + ("a Q-network: use fgsm-linf, pgd-linf or pgd-l2" if not actor_critic
                            else "an actor: use mad-linf or critic-linf"))
    if spec.kind == "attack" and actor_critic:
        from robustrl.attacks import ActorAttack
        from robustrl.experiments.evaluation import greedy_actor_network, greedy_critic

        worst = ActorAttack(greedy_actor_network(model, attack["precision"]), 1.0, spec.method,
                            critic=greedy_critic(model, attack["precision"]), steps=attack["steps"], norm=spec.norm,
                            scale=state_scale)
        kwargs = dict(observation_transform=ObservationAttackTransform(worst, _stream(seed, channel),
                                                                       eps=np.repeat(levels, episodes)),
                      transform_running_only=True)
    elif spec.kind == "attack":
        q_net = greedy_q_network(model, attack["precision"])
        common = dict(norm=spec.norm, scale=state_scale, clip=None)
        if spec.method == "fgm":
            worst = WorstOf.over_losses(FGM, q_net, 1.0, **common)
        else:
            worst = PGDEnsemble(q_net, 1.0, steps=attack["steps"], restarts=attack["restarts"], **common)
        kwargs = dict(observation_transform=ObservationAttackTransform(worst, _stream(seed, channel),
                                                                       eps=np.repeat(levels, episodes)),
                      transform_running_only=True)
    elif spec.kind == "noise":
        kwargs["observation_transform"] = _Blocks(
            [ObservationNoiseTransform(level, state_scale, spec.method, spec.norm, seed=_stream(seed, channel, k))
             for k, level in enumerate(levels)], episodes)
    else:
        space = model.action_space
        make = ActionNoiseTransform if spec.method == "gaussian" else RandomActionTransform
        kwargs["action_transform"] = _Blocks(
            [make(level, space, seed=_stream(seed, channel, k)) for k, level in enumerate(levels)], episodes)
    returns, _ = greedy_rollout(policy, env_id or get_task().nominal_id, rows, seed, **kwargs)
    return returns.reshape(len(levels), episodes)


def _empty(run_dir: Path) -> dict[str, Any]:
    return {"run": run_dir.name, "layout": LAYOUT, "entries": [], "models": {}}


def _read_cache(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUITE_CACHE
    if not path.is_file():
        return _empty(run_dir)
    try:
        cache = read_json(path)
    except ValueError:
        return _empty(run_dir)  # a malformed cache is computed again
    if not isinstance(cache, dict) or cache.get("layout") != LAYOUT or not isinstance(cache.get("entries"), list):
        return _empty(run_dir)
    return cache


def _key(suite: Suite, channel: str, checkpoint: str, seed: int) -> dict[str, Any]:
    from robustrl.experiments.evaluation import EVALUATION_PRECISION

    attack = suite.attack if CHANNELS[channel].kind == "attack" else None
    if attack is not None and CHANNELS[channel].method == "fgm":
        attack = {"precision": attack["precision"]}
    return {"channel": channel, "levels": suite.channels[channel], "episodes": suite.episodes, "seed": seed,
            "state_scale": suite.state_scale, "attack": attack, "checkpoint": checkpoint,
            "precision": EVALUATION_PRECISION}


def suite_run(run_dir: str | Path, suite: Suite, checkpoint: str = "best", seed: int | None = None) -> dict[str, Any]:
    """One checkpoint of one run on every channel and uncertainty set of ``suite``; cached per run.

    :returns: ``{"channels": {channel: returns (levels x episodes)}, "sets": {set name: mean return per
        setting}}`` as lists. When the run's final model is its best one (stored once), the best checkpoint's entries are reused.
    """
    from robustrl.experiments.evaluation import EVALUATION_SEED

    run_dir = Path(run_dir)
    check_checkpoint(checkpoint)
    seed = EVALUATION_SEED if seed is None else check_int(seed, "seed", 0)
    if not is_trained(run_dir):
        raise ValueError(f"{run_dir} is not a complete run (meta.json or a model file is missing)")
    files = checkpoint_files(run_dir, weights=False)  # a weightless run's cached entries can still be read
    same_model = files["final"] == files["best"]
    cache = _read_cache(run_dir)
    models = {c: renew_models(cache, run_dir, c, ("entries",)) for c in ("best", "final")}
    results: dict[str, Any] = {"channels": {}, "sets": {}}
    model, added = None, False
    for channel in suite.channels:
        key = _key(suite, channel, checkpoint, seed)
        entry = find_entry(cache["entries"], key)
        if entry is None and same_model:
            twin = find_entry(cache["entries"], {**key, "checkpoint": "best" if checkpoint == "final" else "final"})
            if twin is not None:
                entry = {**twin, "checkpoint": checkpoint}
                cache["entries"].append(entry)
                added = True
        if entry is None:
            if model is None:
                from robustrl.experiments.training import load_run_model

                remove_temporaries(run_dir)
                model = load_run_model(run_dir, checkpoint)
            returns = channel_returns(model, channel, key["levels"], suite.episodes, seed, suite.state_scale,
                                      suite.attack, run_task(run_dir).nominal_id)
            entry = {**key, "returns": returns.tolist()}
            cache["entries"].append(entry)
            added = True
        results["channels"][channel] = entry["returns"]
    if added:
        cache["models"] = {**cache.get("models", {}), **models}
        atomic_write_json(run_dir / SUITE_CACHE, cache)
    for uncertainty_set in suite.sets:
        results["sets"][uncertainty_set.name] = uncertainty_run(run_dir, uncertainty_set, suite.set_episodes, seed,
                                                                checkpoint)["mean_returns"]
    return results



def suite_runs(run_dirs: list[Path], suite: Suite, jobs: int = 1,
               checkpoints: tuple[str, ...] = ("best", "final")) -> dict[Path, dict[str, dict[str, Any]]]:
    """:func:`suite_run` for every checkpoint of every run, ``jobs`` runs at a time (one process per run, so
    that no two processes write one run's caches), with a progress bar; ``{run_dir: {checkpoint: result}}``."""
    from tqdm.auto import tqdm

    from robustrl.experiments.parallel import run_calls

    check_int(jobs, "jobs", 1)
    for checkpoint in checkpoints:
        check_checkpoint(checkpoint)
    results: dict[Path, dict[str, dict[str, Any]]] = {}
    with tqdm(total=len(run_dirs), desc=f"robustness suite {suite.name}", unit="run") as bar:
        def done(result: tuple[Path, dict[str, dict[str, Any]]]) -> None:
            results[result[0]] = result[1]
            bar.update()

        run_calls(suite_worker, [(run_dir, suite, checkpoints) for run_dir in run_dirs], jobs, done=done)
    return {run_dir: results[run_dir] for run_dir in run_dirs}


def suite_worker(run_dir: Path, suite: Suite, checkpoints: tuple[str, ...]) -> tuple[Path, dict[str, dict[str, Any]]]:
    """One run's checkpoints on the suite, in one process with one torch thread (the unit of :func:`suite_runs`)."""
    import torch

    torch.set_num_threads(1)
    return run_dir, {checkpoint: suite_run(run_dir, suite, checkpoint) for checkpoint in checkpoints}
