"""Entropic adversarial training (Entropic-AT) against plain training (ERM) on scikit-learn's 8x8 digits.

    python examples/supervised_digits.py [--epochs 7] [--train-size N] [--test-size N]    # about a minute
    python examples/supervised_digits.py --epochs 1 --train-size 128 --test-size 30    # a tiny try: seconds

Each model is scored by clean test accuracy and robust accuracy under the attack ensemble (cross-entropy
and margin-loss PGD, 50 steps x 3 restarts each, then targeted APGD at every other class; l-inf, pixels in
[0, 1]; a point counts as robust only if every run fails).
The digits ship with scikit-learn: nothing is downloaded.
"""
import argparse

import torch

from robustrl.supervised import (
    AttackSpec,
    MethodConfig,
    TrainConfig,
    evaluate,
    load_dataset,
    make_method,
    make_model,
    train,
)

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--epochs", type=int, default=7, help="training epochs (default: %(default)s)")
parser.add_argument("--train-size", type=int, default=None, help="train on the first N images (default: all)")
parser.add_argument("--test-size", type=int, default=None, help="test on the first N images (default: all)")
args = parser.parse_args()

data = load_dataset("digits")  # 1347 training and 450 test images, shape (1, 8, 8)
x, y = data.x_train[:args.train_size], data.y_train[:args.train_size]
x_test, y_test = data.x_test[:args.test_size], data.y_test[:args.test_size]
# The packaged digits preset's settings. Entropic-AT's loss: eta * log E exp(loss / eta) over m = 4 points
# of the rho-ball around a 2-step PGD point of the (eps - rho)-ball, so every sample stays in the eps-ball
# the adversarial-training baselines train in (match_budget)
config = MethodConfig(eps=0.15, steps=5, rho=0.05, eta=0.5, m=4, center_steps=2, match_budget=True)
attack = AttackSpec("ensemble", "linf", eps=0.1, steps=50, restarts=3)
for name in ("erm", "entropic-saa"):
    model = make_model("small-cnn", data.num_classes, seed=0)
    train(model, make_method(name, config), x, y, TrainConfig(epochs=args.epochs, lr=2e-3),
          generator=torch.Generator().manual_seed(0), progress=False)
    scores = evaluate(model, x_test, y_test, [attack], progress=False)
    print(f"{name}: clean accuracy {scores['clean']:.3f}, under the ensemble at eps 0.1 "
          f"{scores[attack.key]:.3f}")
