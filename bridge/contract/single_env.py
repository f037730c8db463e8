"""One IAB network as a ``gymnasium.Env``: any backend's vector environment with N = 1."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from bridge.config import ScenarioConfig
from bridge.contract.spaces import as_config
from bridge.contract.vector_env import IABVectorEnvBase
from bridge.instance import ScenarioInstance
from bridge.layout import validate_action
from bridge.tasks import Task, TaskDistribution


class IABSingleEnv(gym.Env):
    """One IAB network over a vector environment of one (``vector_class``).

    ``info["action_mask"]`` (B*K, 1+L) comes with every reset and step; at the end of an
    episode ``info["episode_metrics"]`` holds the metrics of bridge.metrics (floats). After
    the last frame, step() refuses until reset(): the vector's autoreset stays hidden.
    Extra keyword arguments go to the vector environment (e.g. ns-3's ``binary``).
    """

    metadata = {"render_modes": []}
    vector_class: ClassVar[type[IABVectorEnvBase]]

    def __init__(self, config: ScenarioConfig | dict | str | None = None,
                 task_split: str | None = None, tasks: TaskDistribution | None = None,
                 new_deployment_each_episode: bool = False, **backend_options: Any) -> None:
        self.config = as_config(config)
        self._vec = self.vector_class(1, self.config, task_split, tasks,
                                      new_deployment_each_episode, **backend_options)
        self.layout = self._vec.layout
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self._mask: np.ndarray | None = None
        self._done = False

    @property
    def backend(self) -> str:
        return self._vec.backend

    @property
    def instance(self) -> ScenarioInstance:
        return self._vec.instances[0]

    def action_masks(self) -> np.ndarray:
        """The current action mask flattened to (B*K*(1+L),): the form sb3-contrib's
        MaskablePPO asks for with a MultiDiscrete action space."""
        if self._mask is None:
            raise RuntimeError("call reset() before action_masks()")
        return self._mask.reshape(-1)

    def set_task(self, task: Task | None, instance_seed: int) -> None:
        self._vec.set_tasks([task], [instance_seed])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self._vec.reset(seed=seed, options=options)
        self._done = False
        self._mask = info["action_mask"][0]
        return obs[0], {"action_mask": self._mask}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._mask is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended: call reset() before step()")
        batch = validate_action(action, self.layout)
        obs, reward, term, trunc, infos = self._vec.step(batch)
        info: dict[str, Any] = {k: v[0] for k, v in infos.items()
                                if isinstance(v, np.ndarray) and v.dtype != object
                                and not k.startswith("_")}
        if "episode_metrics" in infos:
            info["episode_metrics"] = {k: float(v[0])
                                       for k, v in infos["episode_metrics"].items()}
        self._mask = info["action_mask"]
        self._done = bool(term[0] or trunc[0])
        return obs[0], float(reward[0]), bool(term[0]), bool(trunc[0]), info

    def close(self) -> None:
        self._vec.close()
        self._mask = None
        super().close()
