"""The environment contract both backends implement: spaces, deployments, the base vector env
(autoreset bookkeeping, info schema), the single env, one error hierarchy, the backend selector.

Code that is not a backend (agents, rollouts, the instance generator) depends on this package,
never on ``bridge.fallback`` or ``bridge.ns3`` directly; see docs/architecture.md.
"""

from bridge.contract.backends import (
    BACKENDS,
    DEFAULT_BACKEND,
    backend_classes,
    check_backend,
    make_env,
    make_vector_env,
    supports_frame_replay,
    supports_hidden_conditions,
)
from bridge.contract.capabilities import HiddenConditions
from bridge.contract.deployments import Deployments, episode_seed, first_seed, per_env_seeds
from bridge.contract.errors import CapabilityUnavailable, EnvironmentFailure
from bridge.contract.single_env import IABSingleEnv
from bridge.contract.spaces import action_space, as_config, observation_space
from bridge.contract.vector_env import (
    RESET_INFO_KEYS,
    REWARD_BS,
    STEP_BS_COUNTERS,
    STEP_COUNTERS,
    STEP_INFO_KEYS,
    BackendStep,
    IABVectorEnvBase,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "RESET_INFO_KEYS",
    "REWARD_BS",
    "STEP_BS_COUNTERS",
    "STEP_COUNTERS",
    "STEP_INFO_KEYS",
    "BackendStep",
    "CapabilityUnavailable",
    "Deployments",
    "EnvironmentFailure",
    "HiddenConditions",
    "IABSingleEnv",
    "IABVectorEnvBase",
    "action_space",
    "as_config",
    "backend_classes",
    "check_backend",
    "episode_seed",
    "first_seed",
    "make_env",
    "make_vector_env",
    "observation_space",
    "per_env_seeds",
    "supports_frame_replay",
    "supports_hidden_conditions",
]
