"""Regular and robust agents on Stable-Baselines3: the entropic RobustDQN, its PGD worst-case variant, SA-DQN,
RobustSADQN (the entropic target with SA-DQN's observation hinge), and the entropic RobustSAC and RobustTD3 (one robust-target mechanism for all three), built from the YAML config.

The names are imported on first use, so that ``import robustrl.agents`` does not load Stable-Baselines3.
"""

from typing import TYPE_CHECKING

from robustrl.lazy import lazy_attributes

if TYPE_CHECKING:
    from robustrl.agents.checkpoint import checkpoint_bytes, encode_checkpoint, load_checkpoint, read_checkpoint
    from robustrl.agents.factory import (
        AGENT_CLASSES,
        AgentConfig,
        available_agents,
        load_agent,
        load_config,
        make_agent,
    )
    from robustrl.agents.base import HookedDQN
    from robustrl.agents.robust_ac import PRMDPTD3, HookedSAC, HookedTD3, RobustSAC, RobustTD3
    from robustrl.agents.robust_dqn import RobustDQN
    from robustrl.agents.robust_target import RobustTargetMixin
    from robustrl.agents.sa_dqn import SADQN, RobustSADQN

__all__ = [
    "AGENT_CLASSES",
    "AgentConfig",
    "HookedDQN",
    "HookedSAC",
    "HookedTD3",
    "PRMDPTD3",
    "RobustDQN",
    "RobustSADQN",
    "RobustSAC",
    "RobustTD3",
    "RobustTargetMixin",
    "SADQN",
    "available_agents",
    "checkpoint_bytes",
    "encode_checkpoint",
    "load_agent",
    "load_checkpoint",
    "load_config",
    "make_agent",
    "read_checkpoint",
]

__getattr__, __dir__ = lazy_attributes(globals(), {
    "robustrl.agents.factory": ["AGENT_CLASSES", "AgentConfig", "available_agents", "load_agent", "load_config",
                                "make_agent"],
    "robustrl.agents.base": ["HookedDQN"],
    "robustrl.agents.robust_ac": ["HookedSAC", "HookedTD3", "PRMDPTD3", "RobustSAC", "RobustTD3"],
    "robustrl.agents.robust_dqn": ["RobustDQN"],
    "robustrl.agents.robust_target": ["RobustTargetMixin"],
    "robustrl.agents.sa_dqn": ["RobustSADQN", "SADQN"],
    "robustrl.agents.checkpoint": ["checkpoint_bytes", "encode_checkpoint", "load_checkpoint", "read_checkpoint"],
})
