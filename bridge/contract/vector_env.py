"""The base vector environment both backends implement: spaces, deployments, next-step
autoreset bookkeeping and the info schema.

A backend supplies three hooks: :meth:`IABVectorEnvBase._reset_backend` (start the current
episode of every environment), :meth:`IABVectorEnvBase._step_backend` (advance one frame; the
environments flagged ``resetting`` start their next episode instead) and
:meth:`IABVectorEnvBase._close_backend`. Everything that must not differ between backends is
done here once: action validation, the episode counting of :class:`Deployments`, which
environments autoreset, zero reward and empty frame statistics on an autoreset step, and the
layout of ``infos``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from bridge.config import ScenarioConfig
from bridge.contract.capabilities import HiddenConditions
from bridge.contract.deployments import Deployments, first_seed
from bridge.contract.errors import CapabilityUnavailable
from bridge.contract.spaces import bind_spaces
from bridge.instance import ScenarioInstance
from bridge.layout import validate_action
from bridge.tasks import Task, TaskDistribution

# Per-frame counters in ``infos`` (int64, one per environment).
STEP_COUNTERS = ("delivered_bytes", "dropped_bytes", "sinr_violations", "half_duplex_conflicts",
                 "invalid_actions", "incumbent_collisions")
# Per-frame counters per base station (int64, (N, B)): who did what, for credit assignment
# (bytes a base station's access links delivered, its SINR violations, its scheduled
# choices); each adds up over base stations to the frame's total.
STEP_BS_COUNTERS = ("delivered_bytes_bs", "sinr_violations_bs", "scheduled_bs")
# The frame's reward split over base stations (float64, (N, B)): each one's own throughput
# and SINR-violation terms plus an equal share of the rest over the deployment's base
# stations (0 on padding ones); it adds up to the reward.
REWARD_BS = "reward_bs"
# Keys of ``infos`` after every step (``episode_metrics`` and ``_episode_metrics`` also when an
# episode ended; a backend may add its own keys, e.g. ns-3's ``startup``).
STEP_INFO_KEYS = ("action_mask", "sinr_db", "allocation", *STEP_COUNTERS, *STEP_BS_COUNTERS,
                  REWARD_BS)
RESET_INFO_KEYS = ("action_mask",)


@dataclass
class BackendStep:
    """What a backend's :meth:`IABVectorEnvBase._step_backend` returns for the whole batch.

    ``truncated`` may be True for resetting environments (the base ignores those);
    ``episode_metrics`` holds bridge.metrics' episode metrics, shape (N,) each, for the
    environments whose episode ended this step (any value elsewhere), or None if none did.
    ``frame_info`` has the per-step keys of :data:`STEP_INFO_KEYS` except ``action_mask``,
    plus any backend extras."""

    obs: np.ndarray
    mask: np.ndarray
    reward: np.ndarray
    truncated: np.ndarray
    frame_info: dict[str, Any]
    episode_metrics: dict[str, np.ndarray] | None


class IABVectorEnvBase(VectorEnv):
    """N IAB networks stepped together (Gymnasium 1.x ``VectorEnv``, next-step autoreset).

    ``infos`` carries ``action_mask`` (N, B*K, 1+L) after every reset and step; after every
    step also ``sinr_db`` (N, B, K; -inf where nothing was scheduled), ``allocation``
    (N, B, K; the link served or -1), the counters of :data:`STEP_COUNTERS` (N,) and
    :data:`STEP_BS_COUNTERS` (N, B) and, for
    environments whose episode ended, ``episode_metrics`` (dict of (N,) arrays) with
    ``_episode_metrics`` the mask. The step after an episode's last one (the autoreset step)
    ignores that environment's action, returns its first observation of the next episode,
    reward 0 and an empty frame (zero counters).

    Optional capabilities: ``supports_frame_replay`` / :meth:`frame_replay`, the simulator
    state the exhaustive upper bound replays candidate allocations on;
    ``supports_hidden_conditions`` / :meth:`hidden_conditions`, the deployment's hidden
    conditions the per-task oracle knows.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}
    backend: ClassVar[str] = ""
    supports_frame_replay: ClassVar[bool] = False
    supports_hidden_conditions: ClassVar[bool] = False

    def __init__(self, num_envs: int = 1, config: ScenarioConfig | dict | str | None = None,
                 task_split: str | None = None, tasks: TaskDistribution | None = None,
                 new_deployment_each_episode: bool = False) -> None:
        if isinstance(num_envs, bool) or int(num_envs) < 1:
            raise ValueError(f"num_envs={num_envs!r}: expected an integer >= 1")
        bind_spaces(self, config, num_envs)
        self._deploy = Deployments(self.config, self.num_envs, task_split, tasks,
                                   new_deployment_each_episode)
        self._instances: list[ScenarioInstance] = []
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._started = False

    # -------------------------------------------------------------- deployments
    def set_tasks(self, tasks: Sequence[Task | None], instance_seeds: Sequence[int]) -> None:
        """Pin environment i to deployment ``generate_instance(config, instance_seeds[i],
        tasks[i])`` until changed; takes effect at the next reset."""
        self._deploy.pin(tasks, instance_seeds)

    @property
    def instances(self) -> list[ScenarioInstance]:
        """The deployment each environment currently simulates."""
        return list(self._instances)

    # -------------------------------------------------------------- capabilities
    def frame_replay(self) -> Any:
        """The simulator state of the current frame, to replay candidate allocations on
        (``take``/``step`` of :class:`bridge.fallback.core.BatchedIABCore`) without advancing
        this environment. Only backends with ``supports_frame_replay``."""
        raise CapabilityUnavailable(
            f"backend {self.backend!r} ({type(self).__name__}) cannot replay a frame: the "
            "exhaustive upper bound needs the simulator state, which only the 'fallback' "
            "backend exposes")

    def hidden_conditions(self) -> HiddenConditions:
        """The hidden deployment conditions of every environment at the current frame (the
        per-task oracle's knowledge). Only backends with ``supports_hidden_conditions``."""
        raise CapabilityUnavailable(
            f"backend {self.backend!r} ({type(self).__name__}) cannot report the hidden "
            "deployment conditions: the per-task oracle needs the simulator state, which only "
            "the 'fallback' backend exposes")

    # -------------------------------------------------------------- gym API
    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=first_seed(seed))
        changed = self._deploy.on_reset(seed, options, started=self._started)
        obs, mask, extra = self._reset_backend(changed or not self._instances)
        self._started = True
        self._needs_reset[:] = False
        return obs, {**extra, "action_mask": mask}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        resetting = self._needs_reset.copy()
        actions = np.asarray(actions)
        if resetting.any() and actions.ndim == 2:
            # next-step autoreset: these environments ignore their action and start anew
            actions = np.where(resetting[:, None], 0, actions)
        batch = validate_action(actions, self.layout, batch=self.num_envs)
        for i in np.flatnonzero(resetting):
            self._deploy.next_episode(int(i))
        out = self._step_backend(batch, resetting)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.asarray(out.truncated, dtype=bool) & ~resetting
        reward = np.where(resetting, 0.0, out.reward).astype(np.float64)
        infos: dict[str, Any] = dict(out.frame_info)
        if resetting.any():
            _empty_frame(infos, resetting)
        if truncated.any():
            assert out.episode_metrics is not None
            infos["episode_metrics"] = out.episode_metrics
            infos["_episode_metrics"] = truncated.copy()
        self._needs_reset = truncated | terminated
        infos["action_mask"] = out.mask
        return out.obs, reward, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        self._close_backend()
        self._started = False

    # -------------------------------------------------------------- backend hooks
    def _reset_backend(self, deployments_changed: bool
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Start the current episode (``self._deploy``) of every environment, reloading the
        deployments if ``deployments_changed``; return observations, action masks and extra
        reset infos."""
        raise NotImplementedError

    def _step_backend(self, actions: np.ndarray, resetting: np.ndarray) -> BackendStep:
        """Advance every environment one frame with ``actions`` (validated, (N, B*K) int64),
        except where ``resetting``: those start their current episode of ``self._deploy``
        (already counted) and return its first observation."""
        raise NotImplementedError

    def _close_backend(self) -> None:
        """Release the simulator (processes, state); a later reset starts afresh."""
        raise NotImplementedError


def _empty_frame(infos: dict[str, Any], rows: np.ndarray) -> None:
    """An autoreset step simulates no frame for ``rows``: nothing scheduled, zero counters."""
    if "sinr_db" in infos:
        infos["sinr_db"] = np.where(rows[:, None, None], -np.inf, infos["sinr_db"])
    if "allocation" in infos:
        infos["allocation"] = np.where(rows[:, None, None], -1, infos["allocation"])
    for key in STEP_COUNTERS:
        if key in infos:
            infos[key] = np.where(rows, 0, infos[key])
    for key in (*STEP_BS_COUNTERS, REWARD_BS):
        if key in infos:
            infos[key] = np.where(rows[:, None], 0, infos[key])
