"""Gymnasium faces of the batched simulator: a vector environment and a single environment.

Both wrap :class:`~bridge.fallback.core.BatchedIABCore` (the single one with N = 1), so a
vector of N environments equals N single environments with the same seeds. Seeding follows
Gymnasium: ``reset(seed=s)`` on the vector seeds its environments with ``s, s+1, ...``. Which
deployment and episode each environment simulates is the contract's
(:mod:`bridge.contract.deployments`), the same on both backends.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge.config import ScenarioConfig
from bridge.contract.capabilities import HiddenConditions
from bridge.contract.single_env import IABSingleEnv
from bridge.contract.vector_env import BackendStep, IABVectorEnvBase
from bridge.fallback.core import BatchedIABCore
from bridge.tasks import TaskDistribution


class IABVectorEnv(IABVectorEnvBase):
    """N IAB networks on the batched numpy core (the contract's
    :class:`~bridge.contract.vector_env.IABVectorEnvBase`).

    It supports frame replay: :meth:`frame_replay` returns the core, on which the exhaustive
    upper bound replays candidate allocations of the current frame; and
    :meth:`hidden_conditions`, read off the core's state, for the per-task oracle."""

    backend = "fallback"
    supports_frame_replay = True
    supports_hidden_conditions = True

    def __init__(self, num_envs: int = 1, config: ScenarioConfig | dict | str | None = None,
                 task_split: str | None = None, tasks: TaskDistribution | None = None,
                 new_deployment_each_episode: bool = False) -> None:
        super().__init__(num_envs, config, task_split, tasks, new_deployment_each_episode)
        self.core: BatchedIABCore | None = None

    def frame_replay(self) -> BatchedIABCore:
        if self.core is None:
            raise RuntimeError("call reset() before frame_replay()")
        return self.core

    def hidden_conditions(self) -> HiddenConditions:
        core = self.frame_replay()
        # the interferer's mean power: its received power when on, times its activity, on
        # its channels (bridge.model.external.external_interference_mw without the draw)
        ext = (core.ext_activity[:, None, None] * core.ext_rx_mw[:, :, None]
               * core.ext_channels[:, None, :])
        return HiddenConditions(
            external_mw=ext, external_channels=core.ext_channels.copy(),
            noise_mw=np.broadcast_to(core.noise_mw, (core.N, core.L)).copy(),
            incumbent=core.incumbent.copy())

    def _rebuild(self) -> None:
        """Load the deployments into a new core, unless every one is unchanged."""
        instances = self._deploy.instances()
        if self.core is not None and all(a is b for a, b in zip(instances, self._instances)):
            return
        self._instances = instances
        self.core = BatchedIABCore(self.config, self._instances)

    # -------------------------------------------------------------- contract hooks
    def _reset_backend(self, deployments_changed: bool
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        if deployments_changed or self.core is None:
            self._rebuild()
        assert self.core is not None
        self.core.reset(self._deploy.episode_seeds())
        return self.core.observation(), self.core.action_mask(), {}

    def _step_backend(self, actions: np.ndarray, resetting: np.ndarray) -> BackendStep:
        assert self.core is not None
        core = self.core
        reward, frame_info = core.step(actions, validated=True)
        truncated = core.frame >= self.config.dynamics.episode_frames
        ended = truncated & ~resetting
        metrics = core.episode_metrics() if ended.any() else None
        if resetting.any():
            self._restart(resetting)
        core = self.core
        return BackendStep(core.observation(), core.action_mask(), reward, truncated,
                           dict(frame_info), metrics)

    def _restart(self, m: np.ndarray) -> None:
        """Start the current episode of the environments in mask ``m``."""
        assert self.core is not None
        idx = np.flatnonzero(m)
        if self._deploy.new_each_episode:
            changed = False
            for i in idx:
                inst = self._deploy.instance(int(i))
                if inst.to_dict() != self._instances[i].to_dict():
                    self._instances[i] = inst
                    changed = True
            if changed:
                # new deployments: reload the static part (the others keep their state)
                old = self.core
                self.core = BatchedIABCore(self.config, self._instances)
                self.core.reset(self._deploy.episode_seeds())
                keep = np.flatnonzero(~m)
                if len(keep):
                    self.core.copy_envs_from(old, keep)
                return
        self.core.reset(np.array(self._deploy.episode_seeds()), env_mask=m)

    def _close_backend(self) -> None:
        self.core = None


class IABEnv(IABSingleEnv):
    """One IAB network (``gymnasium.Env``): the batched core with N = 1."""

    vector_class = IABVectorEnv

    def __init__(self, config: ScenarioConfig | dict | str | None = None,
                 task_split: str | None = None, tasks: TaskDistribution | None = None,
                 new_deployment_each_episode: bool = False) -> None:
        super().__init__(config, task_split, tasks, new_deployment_each_episode)

    @property
    def core(self) -> BatchedIABCore | None:
        return self._vec.core
