"""Environment side of iabmeta: scenario config, tasks, instances, wire protocol, both backends.

Importing it registers the Gymnasium environments:

* ``IABMeta/Fallback-v0``: the numpy simulator (``gymnasium.make`` and, with
  ``vectorization_mode="vector_entry_point"``, ``gymnasium.make_vec``).
* ``IABMeta/Ns3-v0``: the same environment simulated by the compiled ns-3 scenario.

:func:`make_env` / :func:`make_vector_env` pick the backend from one value.
"""

from __future__ import annotations

import gymnasium

from bridge.config import ConfigError, ScenarioConfig, load_config
from bridge.tasks import Task, TaskDistribution

__all__ = ["ConfigError", "ScenarioConfig", "Task", "TaskDistribution", "load_config",
           "make_env", "make_vector_env"]


def make_env(backend: str = "fallback", *args: object, **kwargs: object) -> gymnasium.Env:
    """One IAB environment on ``backend`` ("fallback" or "ns3"), same spaces either way."""
    from bridge.ns3.iab_env import make_env as _make

    return _make(backend, *args, **kwargs)


def make_vector_env(backend: str = "fallback", *args: object, **kwargs: object
                    ) -> gymnasium.vector.VectorEnv:
    """``num_envs`` IAB environments on ``backend``, stepped together."""
    from bridge.ns3.iab_env import make_vector_env as _make

    return _make(backend, *args, **kwargs)

FALLBACK_ENV_ID = "IABMeta/Fallback-v0"

NS3_ENV_ID = "IABMeta/Ns3-v0"

if NS3_ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=NS3_ENV_ID,
        entry_point="bridge.ns3.iab_env:Ns3IABEnv",
        vector_entry_point="bridge.ns3.iab_env:Ns3IABVectorEnv",
        disable_env_checker=False,
    )

if FALLBACK_ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=FALLBACK_ENV_ID,
        entry_point="bridge.fallback.env:IABEnv",
        vector_entry_point="bridge.fallback.env:IABVectorEnv",
        disable_env_checker=False,
    )
