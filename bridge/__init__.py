"""Environment side of iabmeta: scenario config, tasks, instances, wire protocol, both backends.

Importing it registers the Gymnasium environments (both through the contract's one backend
selector, :func:`bridge.contract.make_env` / :func:`bridge.contract.make_vector_env`):

* ``IABMeta/Fallback-v0``: the numpy simulator (``gymnasium.make`` and, with
  ``vectorization_mode="vector_entry_point"``, ``gymnasium.make_vec``).
* ``IABMeta/Ns3-v0``: the same environment simulated by the compiled ns-3 scenario.
"""

from __future__ import annotations

import gymnasium

from bridge.config import ConfigError, ScenarioConfig, load_config
from bridge.contract import BACKENDS, EnvironmentFailure, make_env, make_vector_env
from bridge.tasks import Task, TaskDistribution

__all__ = ["BACKENDS", "ConfigError", "EnvironmentFailure", "ScenarioConfig", "Task",
           "TaskDistribution", "load_config", "make_env", "make_vector_env"]

FALLBACK_ENV_ID = "IABMeta/Fallback-v0"
NS3_ENV_ID = "IABMeta/Ns3-v0"

for _env_id, _backend in ((FALLBACK_ENV_ID, "fallback"), (NS3_ENV_ID, "ns3")):
    if _env_id not in gymnasium.registry:
        gymnasium.register(
            id=_env_id,
            entry_point="bridge.contract.backends:make_env",
            vector_entry_point="bridge.contract.backends:make_vector_env",
            kwargs={"backend": _backend},
            disable_env_checker=False,
        )

# the same environments in the priority-weight action mode (bridge.priority_action): a Box of
# per-link weights that the environment side turns into an allocation (zero = greedy)
FALLBACK_PRIORITY_ENV_ID = "IABMeta/FallbackPriority-v0"
NS3_PRIORITY_ENV_ID = "IABMeta/Ns3Priority-v0"

for _env_id, _backend in ((FALLBACK_PRIORITY_ENV_ID, "fallback"), (NS3_PRIORITY_ENV_ID, "ns3")):
    if _env_id not in gymnasium.registry:
        gymnasium.register(id=_env_id, entry_point="bridge.priority_action:make_priority_env",
                           kwargs={"backend": _backend}, disable_env_checker=False)
