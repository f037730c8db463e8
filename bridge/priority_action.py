"""Priority-weight action mode for any Gymnasium agent: the agent sets one weight per link,
the environment side turns the weights into an allocation with the shared channel-by-channel
bookkeeping (bridge.allocation), the way 5G-LENA's RL scheduler sets per-UE weights.

Score of link l on channel k = capacity(l, k) * exp(w_l) among the links whose backlog is not
covered yet, so all-zero weights give exactly greedy max-SINR, and a large negative weight
starves a link. Works over either backend's single environment (anything with ``config``,
``layout`` and the ``action_mask`` info of bridge.layout).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from bridge.allocation import Allocation, channel_by_channel

WEIGHT_BOUND = 4.0  # |w| <= 4: a factor exp(8) ~ 3000 between two links' capacities


class PriorityWeights(gym.Wrapper):
    """``Box(-WEIGHT_BOUND, WEIGHT_BOUND, (n_links,))`` actions over an IAB environment."""

    def __init__(self, env: gym.Env, weight_bound: float = WEIGHT_BOUND) -> None:
        super().__init__(env)
        base = env.unwrapped
        self.layout = base.layout
        self.channel_hz = base.config.radio.channel_bandwidth_hz
        self.frame_s = base.config.dynamics.frame_s
        self.weight_bound = float(weight_bound)
        self.action_space = gym.spaces.Box(-self.weight_bound, self.weight_bound,
                                           (self.layout.n_links,), dtype=np.float32)
        self._obs: np.ndarray | None = None
        self._mask: np.ndarray | None = None

    def allocation(self, weights: np.ndarray) -> np.ndarray:
        """The MultiDiscrete action (B*K,) the weights give in the current state."""
        if self._obs is None or self._mask is None:
            raise RuntimeError("call reset() before step()")
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape != (self.layout.n_links,) or not np.all(np.isfinite(w)):
            raise ValueError(f"priority weights must be {self.layout.n_links} finite floats; "
                             f"got shape {w.shape}")
        gain = np.exp(np.clip(w, -self.weight_bound, self.weight_bound))[None, :]
        alloc = Allocation.from_observation(self._obs[None], self.layout, self.channel_hz,
                                            self.frame_s)
        return channel_by_channel(alloc, self._mask[None],
                                  lambda a, k: a.capacity[:, :, k] * gain)[0]

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs, self._mask = obs, info["action_mask"]
        return obs, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        allocation = self.allocation(action)
        obs, reward, terminated, truncated, info = self.env.step(allocation)
        self._obs, self._mask = obs, info["action_mask"]
        info["allocation_action"] = allocation
        return obs, reward, terminated, truncated, info


def make_priority_env(backend: str = "fallback", **kwargs: Any) -> PriorityWeights:
    """One IAB environment on ``backend`` in the priority-weight action mode (the entry point
    of ``IABMeta/FallbackPriority-v0`` and ``IABMeta/Ns3Priority-v0``; ``kwargs`` go to
    :func:`bridge.contract.make_env`)."""
    from bridge.contract import make_env

    return PriorityWeights(make_env(backend, **kwargs))
