"""Agent names -> constructors and checkpoint loaders (the names the CLI and reports use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.allocation_policy import scenario_allocation
from agents.base import Agent
from agents.maml import MAMLAgent, MAMLConfig
from agents.ppo import PPOAgent, PPOConfig
from agents.rl2 import RL2Agent, RL2Config
from bridge.config import ScenarioConfig
from bridge.layout import ObservationLayout

AGENTS: dict[str, type[Agent]] = {
    "ppo": PPOAgent, "maml": MAMLAgent, "rl2": RL2Agent, "attention": RL2Agent,
}


def make_agent(name: str, config: ScenarioConfig, seed: int = 0,
               overrides: dict[str, Any] | None = None) -> Agent:
    """A fresh agent for ``config``'s observation layout; ``overrides`` set hyperparameters
    of the agent's config dataclass (e.g. ``{"meta_gradient": "first_order"}``)."""
    layout = ObservationLayout.from_config(config)
    overrides = {**scenario_allocation(config), **(overrides or {})}
    if name == "ppo":
        return PPOAgent(layout, PPOConfig(**overrides), seed)
    if name == "maml":
        return MAMLAgent(layout, MAMLConfig(**overrides), seed)
    if name in ("rl2", "attention"):
        overrides["memory"] = "gru" if name == "rl2" else "attention"
        return RL2Agent(layout, RL2Config(**overrides), seed)
    raise ValueError(f"agent {name!r} is unknown; expected one of {sorted(AGENTS)}")


def load_agent(name: str, path: str | Path) -> Agent:
    """Rebuild a saved agent (checkpoints are read with ``weights_only=True``)."""
    if name not in AGENTS:
        raise ValueError(f"agent {name!r} is unknown; expected one of {sorted(AGENTS)}")
    return AGENTS[name].load(path)
