"""Train the regular DQN and the robust one on the nominal CartPole, then test both on a pole 50x heavier.

    python examples/quickstart.py [STEPS]    # default 50000 steps per agent (the packaged budget): ~3 min
    python examples/quickstart.py 1024       # a tiny try: seconds, too short to learn the task

Both agents use the packaged hyperparameters (robustrl/configs/dqn.yml) and seed 0, and each keeps its best
checkpoint on the nominal CartPole (scored every 2500 steps), as the reward table does. The runs are saved
under runs/quickstart/ (delete it to retrain); a second call reuses them and their seeded evaluation.
"""
import argparse

import numpy as np

from robustrl.experiments import RunSpec, evaluate_run, train_run

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("steps", type=int, nargs="?", default=50_000, help="steps per agent (default: 50000)")
steps = parser.parse_args().steps
for agent in ("regular", "robust"):  # regular: SB3's DQN; robust: RobustDQN (rho 0.05, eta 0.01, state scale)
    spec = RunSpec(agent, 0, overrides={"n_timesteps": steps}, tag=f"{steps}")  # a run folder per budget
    run = train_run(spec, "runs/quickstart", progress_bar=True)  # shows the steps trained, as robustrl train
    heavy = evaluate_run(run, ("robustrl/CartPoleHeavy-v1",), episodes=20)["returns"]["robustrl/CartPoleHeavy-v1"]
    best = np.array(heavy["best"])  # greedy returns of the best checkpoint, 20 seeded episodes
    print(f"{agent}: mean return {best.mean():.1f} +- {best.std():.1f} on the heavy pole")
