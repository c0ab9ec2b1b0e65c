"""How far a white-box attack on the observed state drops a trained agent's greedy return on CartPole.

    python examples/observation_attack.py [--agent robust] [--steps 50000] [--episodes 20] [--eps 0.05]
    python examples/observation_attack.py --steps 300 --episodes 2    # a tiny try: seconds, untrained

The agent acts on an attacked state inside the eps-ball around the true one (eps in units of the state
scale), while the env moves from the true state. On any Gymnasium env, the same attack goes into
robustrl.wrappers.ObservationAttack(env, attack); here the episodes run side by side in one vector env.
"""
import argparse

import gymnasium as gym

from robustrl.agents import AgentConfig, load_config, make_agent
from robustrl.attacks import FGM, PGD, WorstOf
from robustrl.experiments import EVALUATION_SEED, greedy_policy, greedy_rollout
from robustrl.experiments.evaluation import greedy_q_network
from robustrl.wrappers import ObservationAttackTransform

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--agent", default="robust",
                    help="an agent of robustrl/configs/dqn.yml (default: %(default)s)")
parser.add_argument("--steps", type=int, default=50_000, help="training steps (default: %(default)s)")
parser.add_argument("--episodes", type=int, default=20,
                    help="greedy episodes per attack (default: %(default)s)")
parser.add_argument("--eps", type=float, default=0.05,
                    help="attack budget, in units of the state scale (default: %(default)s)")
args = parser.parse_args()

cfg = AgentConfig.resolve(load_config(), "robustrl/CartPole-v1", args.agent)
model = make_agent(cfg, gym.make("robustrl/CartPole-v1"), seed=0).learn(args.steps)
policy = greedy_policy(model)  # batched argmax of Q, in float64 as in every evaluation of the package
q_net = greedy_q_network(model)  # observations -> Q-values, the network the attacks differentiate
scale = [2.4, 3.0, 0.21, 3.0]  # the robust agents' state_scale, for every agent alike
attacks = {  # each the worst, per state, of the margin loss and the cross-entropy; states are unbounded
    "no attack": None,
    f"FGSM, eps {args.eps}": WorstOf.over_losses(FGM, q_net, args.eps, scale=scale, clip=None),
    f"PGD, eps {args.eps}": WorstOf.over_losses(PGD, q_net, args.eps, steps=20, restarts=2,
                                                scale=scale, clip=None),
}
for name, attack in attacks.items():
    transform = None if attack is None else ObservationAttackTransform(attack, seed=0)
    returns, _ = greedy_rollout(policy, "robustrl/CartPole-v1", args.episodes, EVALUATION_SEED,
                                observation_transform=transform)
    print(f"{name}: mean greedy return {returns.mean():.1f}")
