"""robustrl: entropic adversarial robustness for reinforcement and supervised learning.

Wang, Gao, Xie, "Regularization for Adversarial Robust Learning" (arXiv:2408.09672).
Importing the package registers the perturbed CartPole ids with Gymnasium; the names that need torch or
Stable-Baselines3 (the estimators and the agents) are imported on first use.
"""

from typing import TYPE_CHECKING

from robustrl.kernels import pin_kernels

pin_kernels()  # before anything imports numpy or torch: see robustrl.kernels

from robustrl import envs  # noqa: E402
from robustrl.envs import ENV_IDS, PerturbedCartPoleEnv, PerturbedCartPoleVectorEnv, make_vector_env  # noqa: E402
from robustrl.lazy import lazy_attributes  # noqa: E402

if TYPE_CHECKING:
    from robustrl import estimators
    from robustrl.agents import RobustDQN, RobustSAC, RobustTD3, load_agent, make_agent
    from robustrl.tabular import RobustQLearning, robust_value_iteration
    from robustrl.tasks import get_task
    from robustrl.estimators import (RTMLMC, SAA, SG, Linearized, entropic_risk, entropic_softmin, perturb,
                                     sample_unit_ball)

#: The package version.
__version__ = "0.1.0"

__all__ = [
    "__version__",
    "ENV_IDS",
    "Linearized",
    "PerturbedCartPoleEnv",
    "PerturbedCartPoleVectorEnv",
    "RTMLMC",
    "RobustDQN",
    "RobustQLearning",
    "RobustSAC",
    "RobustTD3",
    "SAA",
    "SG",
    "entropic_risk",
    "entropic_softmin",
    "envs",
    "estimators",
    "get_task",
    "load_agent",
    "make_agent",
    "make_vector_env",
    "perturb",
    "robust_value_iteration",
    "sample_unit_ball",
]

__getattr__, __dir__ = lazy_attributes(globals(), {
    "robustrl.estimators": ["estimators", "Linearized", "RTMLMC", "SAA", "SG", "entropic_risk", "entropic_softmin",
                            "perturb", "sample_unit_ball"],
    "robustrl.agents": ["RobustDQN", "RobustSAC", "RobustTD3", "load_agent", "make_agent"],
    "robustrl.tabular": ["RobustQLearning", "robust_value_iteration"],
    "robustrl.tasks": ["get_task"],
})
