"""Train the regular DQN and the robust one on the nominal CartPole, then test both on a pole 50x heavier.

    python examples/quickstart.py [STEPS]    # default 50000 steps per agent (the packaged budget): ~3 min

Both agents use the packaged hyperparameters (robustrl/configs/dqn.yml) and seed 0, and each keeps its best
checkpoint on the nominal CartPole (scored every 2500 steps), as the reward table does. The runs are saved
under runs/quickstart/ (delete it to retrain); a second call reuses them and their seeded evaluation.
"""
import sys

import numpy as np

from robustrl.experiments import RunSpec, evaluate_run, train_run

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
for agent in ("regular", "robust"):  # regular: SB3's DQN; robust: RobustDQN (rho 0.05, eta 0.01, state scale)
    run = train_run(RunSpec(agent, 0, overrides={"n_timesteps": steps}, tag=f"{steps}"), "runs/quickstart")
    heavy = evaluate_run(run, ("robustrl/CartPoleHeavy-v1",), episodes=20)["returns"]["robustrl/CartPoleHeavy-v1"]
    best = np.array(heavy["best"])  # greedy returns of the best checkpoint, 20 seeded episodes
    print(f"{agent}: mean return {best.mean():.1f} +- {best.std():.1f} on the heavy pole")
