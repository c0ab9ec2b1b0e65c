"""Train the regular DQN and the robust one on the nominal CartPole, then test both on a pole 50x heavier.

    python examples/quickstart.py [STEPS]    # default 50000 steps per agent (the packaged budget): ~3 min

Both agents use the packaged hyperparameters (robustrl/configs/dqn.yml) and seed 0, and each keeps its best
checkpoint on the nominal CartPole (scored every 2500 steps), as the reward table does. The runs are saved
under runs/quickstart/ (delete it to retrain); a second call reuses them.
"""
import sys

import gymnasium as gym
from stable_baselines3.common.evaluation import evaluate_policy

from robustrl.experiments import RunSpec, load_run_model, train_run  # registers the robustrl/ CartPole ids

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
for agent in ("regular", "robust"):  # regular: SB3's DQN; robust: RobustDQN (rho 0.05, eta 0.01, state scale)
    run = train_run(RunSpec(agent, 0, overrides={"n_timesteps": steps}, tag=f"{steps}"), "runs/quickstart")
    model = load_run_model(run)  # the best checkpoint on the nominal CartPole
    mean, std = evaluate_policy(model, gym.make("robustrl/CartPoleHeavy-v1"), n_eval_episodes=20, warn=False)
    print(f"{agent}: mean return {mean:.1f} +- {std:.1f} on the heavy pole")
