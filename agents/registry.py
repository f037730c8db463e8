"""The one list of learning agents: name -> agent class, hyper-parameter config and report
label. The CLI's choices, the study's agent list, the report's labels and checkpoint loading
all read it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.agent import Agent
from agents.allocation_policy import scenario_allocation
from agents.hyperparams import AgentConfig, config_from_table
from agents.maml import MAMLAgent, MAMLConfig
from agents.ppo import PPOAgent, PPOConfig, PPOFinetuneConfig
from agents.rl2 import AttentionConfig, RL2Agent, RL2Config
from bridge.config import ConfigError, ScenarioConfig
from bridge.layout import ObservationLayout


@dataclass(frozen=True)
class AgentEntry:
    """One registered agent: its class, its config type and how reports name it."""

    agent: type[Agent]
    config: type[AgentConfig]
    label: str


AGENTS: dict[str, AgentEntry] = {
    "ppo": AgentEntry(PPOAgent, PPOConfig, "PPO (from scratch)"),
    "ppo_finetune": AgentEntry(PPOAgent, PPOFinetuneConfig, "PPO (multi-task + fine-tune)"),
    "maml": AgentEntry(MAMLAgent, MAMLConfig, "MAML"),
    "rl2": AgentEntry(RL2Agent, RL2Config, "RNN (RL²)"),
    "attention": AgentEntry(RL2Agent, AttentionConfig, "RNN + attention"),
}
AGENT_NAMES: tuple[str, ...] = tuple(AGENTS)


def _entry(name: str) -> AgentEntry:
    if name not in AGENTS:
        raise ConfigError(f"agent {name!r} is unknown; expected one of {list(AGENT_NAMES)}")
    return AGENTS[name]


def agent_config(name: str, table: dict[str, Any] | None = None) -> AgentConfig:
    """``name``'s hyper-parameters: the defaults with ``table`` applied (validated; unknown
    fields refused, naming ``agents.<name>.<field>``)."""
    return config_from_table(_entry(name).config, dict(table or {}), f"agents.{name}")


def make_agent(name: str, config: ScenarioConfig, seed: int = 0,
               hyperparams: AgentConfig | dict[str, Any] | None = None) -> Agent:
    """A fresh agent for ``config``'s observation layout; ``hyperparams`` is the agent's
    config, or a dict of fields to change (e.g. ``{"meta_gradient": "first_order"}``)."""
    entry = _entry(name)
    if not isinstance(hyperparams, AgentConfig):
        hyperparams = agent_config(name, hyperparams)
    # the allocation bookkeeping turns CQI into bytes with the scenario's channel and frame
    hyperparams = dataclasses.replace(hyperparams, **scenario_allocation(config))
    return entry.agent(ObservationLayout.from_config(config), hyperparams, seed)


def load_agent(name: str, path: str | Path) -> Agent:
    """Rebuild a saved agent (checkpoints are read with ``weights_only=True``)."""
    return _entry(name).agent.load(path)
