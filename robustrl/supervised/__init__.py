"""Supervised robust learning on the shared entropic estimators.

Wang, Gao, Xie, "Regularization for Adversarial Robust Learning" (arXiv:2408.09672). Data with no download
at run time (:mod:`~robustrl.supervised.data`), the paper's CNN and a digits CNN
(:mod:`~robustrl.supervised.models`), torchattacks-style attacks (:mod:`~robustrl.supervised.attacks`),
training methods selectable by name (:mod:`~robustrl.supervised.methods`), exact adversarial logistic
regression (:mod:`~robustrl.supervised.linear`), the worst-case distribution
(:mod:`~robustrl.supervised.worst_case`) and accuracy-versus-budget benchmarks
(:mod:`~robustrl.supervised.benchmark`). Entropic values always come from :mod:`robustrl.estimators`.

The names are imported on first use; the names a user picks on the command line (datasets, methods,
attacks, ...) are in the torch-free :mod:`~robustrl.supervised.names`, so ``robustrl supervised --help``
starts without torch.
"""

from typing import TYPE_CHECKING

from robustrl.lazy import lazy_attributes

if TYPE_CHECKING:
    from robustrl.supervised.attacks import ATTACKS, FGM, PGD, Attack, RandomNoise, attack_ensemble, make_attack
    from robustrl.supervised.benchmark import PRESETS, BenchmarkConfig, load_runs, make_table, run_benchmark
    from robustrl.supervised.data import DATASETS, Dataset, load_dataset
    from robustrl.supervised.linear import (
        LINEAR_NORMS,
        adversarial_logistic_loss,
        dual_norm,
        train_logistic,
        worst_case_linf,
    )
    from robustrl.supervised.methods import (
        ADTEXP,
        ERM,
        METHODS,
        AdversarialTraining,
        EntropicAT,
        MethodConfig,
        MMCLoss,
        make_method,
    )
    from robustrl.supervised.models import BinaryLogistic, MMCNet, PaperCNN, SmallCNN, make_model
    from robustrl.supervised.training import AttackSpec, NonFiniteLossError, TrainConfig, evaluate, train

__all__ = [
    "ADTEXP",
    "ATTACKS",
    "DATASETS",
    "ERM",
    "FGM",
    "LINEAR_NORMS",
    "METHODS",
    "PGD",
    "PRESETS",
    "AdversarialTraining",
    "Attack",
    "AttackSpec",
    "BenchmarkConfig",
    "BinaryLogistic",
    "Dataset",
    "EntropicAT",
    "MMCLoss",
    "MMCNet",
    "MethodConfig",
    "NonFiniteLossError",
    "PaperCNN",
    "RandomNoise",
    "SmallCNN",
    "TrainConfig",
    "adversarial_logistic_loss",
    "attack_ensemble",
    "dual_norm",
    "evaluate",
    "load_dataset",
    "load_runs",
    "make_attack",
    "make_method",
    "make_model",
    "make_table",
    "run_benchmark",
    "train",
    "train_logistic",
    "worst_case_linf",
]

__getattr__, __dir__ = lazy_attributes(globals(), {
    "robustrl.supervised.attacks": ["ATTACKS", "FGM", "PGD", "Attack", "RandomNoise", "attack_ensemble",
                                    "make_attack"],
    "robustrl.supervised.benchmark": ["PRESETS", "BenchmarkConfig", "load_runs", "make_table", "run_benchmark"],
    "robustrl.supervised.data": ["DATASETS", "Dataset", "load_dataset"],
    "robustrl.supervised.linear": ["LINEAR_NORMS", "adversarial_logistic_loss", "dual_norm", "train_logistic",
                                   "worst_case_linf"],
    "robustrl.supervised.methods": ["ADTEXP", "ERM", "METHODS", "AdversarialTraining", "EntropicAT",
                                    "MethodConfig", "MMCLoss", "make_method"],
    "robustrl.supervised.models": ["BinaryLogistic", "MMCNet", "PaperCNN", "SmallCNN", "make_model"],
    "robustrl.supervised.training": ["AttackSpec", "NonFiniteLossError", "TrainConfig", "evaluate", "train"],
})
