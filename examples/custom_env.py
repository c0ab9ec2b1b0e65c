"""The robust agent on an environment of your own: Gymnasium's Acrobot, tested with a heavier second link.

    python examples/custom_env.py [--steps 50000] [--episodes 10]    # a few minutes
    python examples/custom_env.py --steps 1010 --episodes 1          # a tiny try: seconds, learns nothing yet

RobustDQN needs nothing CartPole-specific: its TD target takes the entropic soft-min over next states drawn
from a ball of radius rho, stretched per dimension by `state_scale`, here half the range of each observation.
"""
import argparse

import gymnasium as gym
from stable_baselines3.common.evaluation import evaluate_policy

from robustrl.agents import RobustDQN

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--steps", type=int, default=50_000, help="training steps (default: %(default)s)")
parser.add_argument("--episodes", type=int, default=10,
                    help="evaluation episodes per setting (default: %(default)s)")
args = parser.parse_args()

env = gym.make("Acrobot-v1")
space = env.observation_space
state_scale = (space.high - space.low) / 2  # 1 for the cosines and sines, the speed limits for the velocities
# DQN settings near rl-baselines3-zoo's for Acrobot-v1 (fewer gradient steps); the robust ones as for CartPole
model = RobustDQN("MlpPolicy", env, rho=0.05, eta=0.01, n_samples=8, state_scale=state_scale,
                  learning_rate=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=1000,
                  target_update_interval=250, train_freq=16, gradient_steps=8, exploration_fraction=0.12,
                  exploration_final_eps=0.1, policy_kwargs={"net_arch": [256, 256]}, seed=0)
model.learn(args.steps)

for mass in (1.0, 2.0):  # the nominal second link, then one twice as heavy
    test_env = gym.make("Acrobot-v1")
    test_env.unwrapped.LINK_MASS_2 = mass
    mean, std = evaluate_policy(model, test_env, n_eval_episodes=args.episodes, warn=False)
    print(f"link 2 mass {mass}: mean return {mean:.1f} +- {std:.1f}")
