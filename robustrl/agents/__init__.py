"""Regular and robust DQN agents on Stable-Baselines3, built from the YAML config."""

from robustrl.agents.factory import (
    AGENT_CLASSES,
    AgentConfig,
    available_agents,
    load_agent,
    load_config,
    make_agent,
)
from robustrl.agents.robust_dqn import RobustDQN

__all__ = [
    "AGENT_CLASSES",
    "AgentConfig",
    "RobustDQN",
    "available_agents",
    "load_agent",
    "load_config",
    "make_agent",
]
