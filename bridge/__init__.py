"""Environment side of iabmeta: scenario config, tasks, instances, wire protocol, both backends.

Importing it registers the Gymnasium environments:

* ``IABMeta/Fallback-v0``: the numpy simulator (``gymnasium.make`` and, with
  ``vectorization_mode="vector_entry_point"``, ``gymnasium.make_vec``).
"""

from __future__ import annotations

import gymnasium

from bridge.config import ConfigError, ScenarioConfig, load_config
from bridge.tasks import Task, TaskDistribution

__all__ = ["ConfigError", "ScenarioConfig", "Task", "TaskDistribution", "load_config"]

FALLBACK_ENV_ID = "IABMeta/Fallback-v0"

if FALLBACK_ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=FALLBACK_ENV_ID,
        entry_point="bridge.fallback.env:IABEnv",
        vector_entry_point="bridge.fallback.env:IABVectorEnv",
        disable_env_checker=False,
    )
