"""Train the regular DQN and the robust one on the nominal CartPole, then test both on a pole 50x heavier.

    python examples/quickstart.py [STEPS]    # default 50000 steps per agent (the packaged budget): ~5 min

Both agents use the packaged hyperparameters (robustrl/configs/dqn.yml); one seed and the final models,
so the two numbers vary from seed to seed (the reward table keeps each run's best nominal checkpoint).
"""
import sys

import gymnasium as gym
from stable_baselines3.common.evaluation import evaluate_policy

from robustrl.agents import AgentConfig, load_config, make_agent  # registers the robustrl/ CartPole ids

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
for agent in ("regular", "robust"):  # regular: SB3's DQN; robust: RobustDQN (rho 0.05, eta 0.01, state scale)
    cfg = AgentConfig.resolve(load_config(), "robustrl/CartPole-v1", agent)
    model = make_agent(cfg, gym.make("robustrl/CartPole-v1"), seed=0).learn(steps)
    mean, std = evaluate_policy(model, gym.make("robustrl/CartPoleHeavy-v1"), n_eval_episodes=20, warn=False)
    print(f"{agent}: mean return {mean:.1f} +- {std:.1f} on the heavy pole")
