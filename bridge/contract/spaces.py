"""The observation and action spaces of the IAB environment, single and batched, for every backend.

Both backends and every vector size take their spaces from here, so a policy written against
one backend's spaces runs unchanged on the other: the observation is a float32 Box bounded by
:data:`bridge.layout.OBS_BOUND` (the layout clips every feature to it), the action a
MultiDiscrete of ``1 + L`` choices per (base station, channel) entry.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from bridge.config import ScenarioConfig, load_config
from bridge.layout import OBS_BOUND, ObservationLayout


def as_config(config: ScenarioConfig | dict | str | None) -> ScenarioConfig:
    """Accept a config object, a dict of sections, a TOML/YAML path, or None (defaults)."""
    if config is None:
        return ScenarioConfig()
    if isinstance(config, ScenarioConfig):
        return config
    if isinstance(config, dict):
        return ScenarioConfig.from_dict(config)
    return load_config(config)


def observation_space(config: ScenarioConfig, num_envs: int | None = None) -> spaces.Box:
    """One environment's observation space, or a batch's (``num_envs`` rows) if given."""
    layout = ObservationLayout.from_config(config)
    shape = (layout.size,) if num_envs is None else (int(num_envs), layout.size)
    return spaces.Box(-OBS_BOUND, OBS_BOUND, shape=shape, dtype=np.float32)


def action_space(config: ScenarioConfig, num_envs: int | None = None) -> spaces.MultiDiscrete:
    """One environment's action space, or a batch's (``num_envs`` rows) if given."""
    layout = ObservationLayout.from_config(config)
    shape = (layout.action_size,) if num_envs is None else (int(num_envs), layout.action_size)
    return spaces.MultiDiscrete(np.full(shape, layout.n_choices, dtype=np.int64))


def bind_spaces(env: object, config: ScenarioConfig | dict | str | None, num_envs: int
                ) -> None:
    """Give a vector environment its config, batch size, layout and the four spaces of the
    contract (the base vector env and the sharded one set them up the same way)."""
    cfg = as_config(config)
    env.config = cfg  # type: ignore[attr-defined]
    env.num_envs = int(num_envs)  # type: ignore[attr-defined]
    env.layout = ObservationLayout.from_config(cfg)  # type: ignore[attr-defined]
    env.single_observation_space = observation_space(cfg)  # type: ignore[attr-defined]
    env.single_action_space = action_space(cfg)  # type: ignore[attr-defined]
    env.observation_space = observation_space(cfg, int(num_envs))  # type: ignore[attr-defined]
    env.action_space = action_space(cfg, int(num_envs))  # type: ignore[attr-defined]
