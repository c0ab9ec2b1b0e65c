"""robustrl: entropic adversarial robustness for reinforcement and supervised learning.

Wang, Gao, Xie, "Regularization for Adversarial Robust Learning" (arXiv:2408.09672).
"""

from robustrl import estimators
from robustrl.estimators import RTMLMC, SAA, SG, entropic_risk, entropic_softmin

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "estimators",
    "entropic_risk",
    "entropic_softmin",
    "SAA",
    "SG",
    "RTMLMC",
]
