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
    from robustrl.agents import RobustDQN, load_agent, make_agent
    from robustrl.estimators import RTMLMC, SAA, SG, entropic_risk, entropic_softmin, perturb, sample_unit_ball

#: The package version.
__version__ = "0.1.0"

__all__ = [
    "__version__",
    "ENV_IDS",
    "PerturbedCartPoleEnv",
    "PerturbedCartPoleVectorEnv",
    "RTMLMC",
    "RobustDQN",
    "SAA",
    "SG",
    "entropic_risk",
    "entropic_softmin",
    "envs",
    "estimators",
    "load_agent",
    "make_agent",
    "make_vector_env",
    "perturb",
    "sample_unit_ball",
]

__getattr__, __dir__ = lazy_attributes(globals(), {
    "robustrl.estimators": ["estimators", "RTMLMC", "SAA", "SG", "entropic_risk", "entropic_softmin", "perturb",
                            "sample_unit_ball"],
    "robustrl.agents": ["RobustDQN", "load_agent", "make_agent"],
})
