"""Gymnasium faces of the batched simulator: a single environment and a vector environment.

Both wrap :class:`~bridge.fallback.core.BatchedIABCore` (the single one with N = 1), so a
vector of N environments equals N single environments with the same seeds. Seeding follows
Gymnasium: ``reset(seed=s)`` on the vector seeds its environments with ``s, s+1, ...``.

Which deployment an environment simulates:

* ``task_split=None`` (default): the base config's own task; the deployment is drawn from the
  reset seed.
* ``task_split="train"`` / ``"test"``: a task is sampled from that split of the task
  distribution, then a deployment, both from the reset seed.
* :meth:`IABVectorEnv.set_tasks` pins explicit (task, instance seed) pairs: meta-RL uses it to
  keep one deployment over the episodes of a trial.

Later resets without a seed keep the deployment and start a new episode (new traffic, fading,
mobility), unless ``new_deployment_each_episode=True``. ``reset(options={"episode": k})`` (an
int or one per environment) starts episode ``k`` of the deployment directly, the episode that
``k`` seedless resets after ``reset(seed=...)`` would reach: a rollout worker re-runs any
episode of a trial from its seeds alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from bridge.config import ScenarioConfig, load_config
from bridge.fallback.core import BatchedIABCore
from bridge.instance import ScenarioInstance, generate_instance
from bridge.layout import OBS_BOUND, ObservationLayout, validate_action
from bridge.tasks import Task, TaskDistribution

_SEED_MASK = (1 << 62) - 1


def as_config(config: ScenarioConfig | dict | str | None) -> ScenarioConfig:
    """Accept a config object, a dict of sections, a TOML/YAML path, or None (defaults)."""
    if config is None:
        return ScenarioConfig()
    if isinstance(config, ScenarioConfig):
        return config
    if isinstance(config, dict):
        return ScenarioConfig.from_dict(config)
    return load_config(config)


def observation_space(config: ScenarioConfig) -> spaces.Box:
    layout = ObservationLayout.from_config(config)
    return spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(layout.size,), dtype=np.float32)


def action_space(config: ScenarioConfig) -> spaces.MultiDiscrete:
    layout = ObservationLayout.from_config(config)
    return spaces.MultiDiscrete(np.full(layout.action_size, layout.n_choices, dtype=np.int64))


def per_env_seeds(seed: int | Sequence[int], num_envs: int) -> list[int]:
    """Gymnasium's convention: an int seeds environment i with ``seed + i``; a sequence gives
    each environment its own seed."""
    seeds = ([int(seed) + i for i in range(num_envs)] if isinstance(seed, (int, np.integer))
             else [int(s) for s in seed])
    if len(seeds) != num_envs:
        raise ValueError(f"reset(seed=...) got {len(seeds)} seeds for {num_envs} environments")
    return seeds


def first_seed(seed: int | Sequence[int] | None) -> int | None:
    """The seed for the vector's own ``np_random`` (the first one of a per-env list)."""
    if seed is None or isinstance(seed, (int, np.integer)):
        return None if seed is None else int(seed)
    return int(next(iter(seed)))


def _episode_seed(base: int, episode: int) -> int:
    return int((base * 1_000_003 + episode * 7_919 + 17) & _SEED_MASK)


def _episode_indices(value: Any, n: int) -> list[int]:
    """``options["episode"]``: one non-negative int for all environments or one per env."""
    if isinstance(value, Sequence) or isinstance(value, np.ndarray):
        values = list(value)
    else:
        values = [value] * n
    if len(values) != n:
        raise ValueError(f"reset option episode has {len(values)} entries for {n} environments")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"reset option episode={v!r}: expected an integer >= 0")
    return [int(v) for v in values]


class Deployments:
    """Chooses the task and the deployment of each environment from its seeds.

    Generated deployments are kept (up to ``CACHE_SIZE``), so pinning the same (task, seed)
    again returns the very same :class:`ScenarioInstance` object: the environments compare
    by identity and skip rebuilding what did not change."""

    CACHE_SIZE = 512

    def __init__(self, config: ScenarioConfig, n: int, task_split: str | None,
                 tasks: TaskDistribution | None, new_each_episode: bool) -> None:
        if task_split not in (None, "train", "test"):
            raise ValueError(f"task_split={task_split!r}: expected None, 'train' or 'test'")
        self.config = config
        self.task_split = task_split
        self.distribution = tasks or TaskDistribution.for_config(config)
        self.new_each_episode = new_each_episode
        self.pinned: list[tuple[Task, int] | None] = [None] * n
        self.base_seed = [0] * n
        self.episode = [0] * n
        self._cache: OrderedDict[tuple[Task | None, int], ScenarioInstance] = OrderedDict()

    def on_reset(self, seed: int | Sequence[int] | None, options: dict[str, Any] | None,
                 started: bool) -> bool:
        """Apply ``reset(seed=..., options=...)`` (both backends): a seed restarts the episode
        count, a seedless reset of a started environment moves to the next episode, options
        ``tasks``/``instance_seeds`` pin deployments and ``episode`` (an int, or one per
        environment) picks the episode index. Returns True if the deployments may change."""
        n = len(self.pinned)
        options = options or {}
        unknown = sorted(set(options) - {"tasks", "instance_seeds", "episode"})
        if unknown:
            raise ValueError(f"reset options {unknown} are unknown; expected 'tasks', "
                             "'instance_seeds' and 'episode'")
        if seed is not None:
            self.base_seed = per_env_seeds(seed, n)
            self.episode = [0] * n
        elif started:
            self.episode = [e + 1 for e in self.episode]
        if "tasks" in options:
            self.pin(options["tasks"], options.get("instance_seeds", self.base_seed))
        if "episode" in options:
            self.episode = _episode_indices(options["episode"], n)
        return seed is not None or "tasks" in options or self.new_each_episode

    def _generate(self, task: Task | None, seed: int) -> ScenarioInstance:
        key = (task, int(seed))
        inst = self._cache.get(key)
        if inst is None:
            inst = generate_instance(self.config, seed, task)
            self._cache[key] = inst
            if len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return inst

    def pin(self, tasks: Sequence[Task | None], instance_seeds: Sequence[int]) -> None:
        """Environment i simulates ``generate_instance(config, instance_seeds[i], tasks[i])``
        (``None``: the config's own task) until pinned again."""
        n = len(self.pinned)
        if len(tasks) != n or len(instance_seeds) != n:
            raise ValueError(f"set_tasks needs {n} tasks and seeds, got {len(tasks)} and "
                             f"{len(instance_seeds)}")
        self.pinned = [(t if t is not None else Task.from_config(self.config), int(s))
                       for t, s in zip(tasks, instance_seeds)]

    def instance(self, i: int) -> ScenarioInstance:
        pinned = self.pinned[i]
        if pinned is not None:
            task, inst_seed = pinned
            return self._generate(task, inst_seed)
        seed = self.base_seed[i]
        if self.new_each_episode:
            seed = _episode_seed(seed, self.episode[i]) ^ 0x5A5A
        task = None
        if self.task_split is not None:
            task = self.distribution.sample(self.task_split, seed)[0]
        return self._generate(task, seed)

    def episode_seed(self, i: int, episode: int | None = None) -> int:
        """Seed of environment i's current episode (or of its episode ``episode``)."""
        return _episode_seed(self.base_seed[i], self.episode[i] if episode is None else episode)


class PinnedDeployments:
    """The deployment API both backends' vector environments share (``self._deploy`` is a
    :class:`Deployments`, ``self._instances`` the deployments of the running episodes)."""

    _deploy: Deployments
    _instances: list[ScenarioInstance]

    def set_tasks(self, tasks: Sequence[Task | None], instance_seeds: Sequence[int]) -> None:
        """Pin environment i to deployment ``generate_instance(config, instance_seeds[i],
        tasks[i])`` until changed; takes effect at the next reset."""
        self._deploy.pin(tasks, instance_seeds)

    @property
    def instances(self) -> list[ScenarioInstance]:
        """The deployment each environment currently simulates."""
        return list(self._instances)


class IABVectorEnv(PinnedDeployments, VectorEnv):
    """N IAB networks stepped together (Gymnasium 1.x ``VectorEnv``, next-step autoreset).

    ``infos`` carries ``action_mask`` (N, B*K, 1+L) every step and, for environments whose
    episode ended, ``episode_metrics`` (dict of (N,) arrays with ``_episode_metrics`` the
    mask), plus per-step ``sinr_db`` (N, B, K), ``delivered_bytes`` and rule counters.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, config: ScenarioConfig | dict | str | None = None,
                 task_split: str | None = None, tasks: TaskDistribution | None = None,
                 new_deployment_each_episode: bool = False) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs={num_envs!r}: expected an integer >= 1")
        self.config = as_config(config)
        self.num_envs = int(num_envs)
        self.layout = ObservationLayout.from_config(self.config)
        self.single_observation_space = observation_space(self.config)
        self.single_action_space = action_space(self.config)
        self.observation_space = spaces.Box(-OBS_BOUND, OBS_BOUND,
                                            shape=(self.num_envs, self.layout.size),
                                            dtype=np.float32)
        self.action_space = spaces.MultiDiscrete(
            np.full((self.num_envs, self.layout.action_size), self.layout.n_choices,
                    dtype=np.int64))
        self._deploy = Deployments(self.config, self.num_envs, task_split, tasks,
                                    new_deployment_each_episode)
        self.core: BatchedIABCore | None = None
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._instances: list[ScenarioInstance] = []


    def _rebuild(self) -> None:
        """Load the deployments into a new core, unless every one is unchanged."""
        instances = [self._deploy.instance(i) for i in range(self.num_envs)]
        if self.core is not None and all(a is b for a, b in zip(instances, self._instances)):
            return
        self._instances = instances
        self.core = BatchedIABCore(self.config, self._instances)

    # -------------------------------------------------------------- gym API
    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=first_seed(seed))
        if self._deploy.on_reset(seed, options, started=self.core is not None) \
                or self.core is None:
            self._rebuild()
        assert self.core is not None
        self.core.reset([self._deploy.episode_seed(i) for i in range(self.num_envs)])
        self._needs_reset[:] = False
        return self.core.observation(), {"action_mask": self.core.action_mask()}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray, dict[str, Any]]:
        if self.core is None:
            raise RuntimeError("call reset() before step()")
        core = self.core
        actions = np.asarray(actions)
        resetting = self._needs_reset.copy()
        if resetting.any():
            # next-step autoreset: these environments ignore their action and start anew
            actions = np.where(resetting[:, None], 0, actions) if actions.ndim == 2 else actions
        reward, frame_info = core.step(actions)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = core.frame >= self.config.dynamics.episode_frames
        truncated &= ~resetting
        infos: dict[str, Any] = {k: v for k, v in frame_info.items()}
        if truncated.any():
            metrics = core.episode_metrics()
            infos["episode_metrics"] = metrics
            infos["_episode_metrics"] = truncated.copy()
        if resetting.any():
            self._restart(resetting)
            reward = np.where(resetting, 0.0, reward)
        self._needs_reset = truncated | terminated
        infos["action_mask"] = core.action_mask()
        return (core.observation(), reward.astype(np.float64), terminated, truncated, infos)

    def _restart(self, m: np.ndarray) -> None:
        assert self.core is not None
        idx = np.flatnonzero(m)
        for i in idx:
            self._deploy.episode[i] += 1
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
                self.core.reset([self._deploy.episode_seed(i) for i in range(self.num_envs)])
                keep = np.flatnonzero(~m)
                if len(keep):
                    self.core.copy_envs_from(old, keep)
                return
        seeds = np.array([self._deploy.episode_seed(i) for i in range(self.num_envs)])
        self.core.reset(seeds, env_mask=m)

    def close_extras(self, **kwargs: Any) -> None:
        self.core = None


class IABEnv(gym.Env):
    """One IAB network (``gymnasium.Env``): the batched core with N = 1.

    ``info["action_mask"]`` (B*K, 1+L) comes with every reset and step; at the end of an
    episode ``info["episode_metrics"]`` holds the metrics of bridge.metrics.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: ScenarioConfig | dict | str | None = None,
                 task_split: str | None = None,
                 tasks: TaskDistribution | None = None,
                 new_deployment_each_episode: bool = False) -> None:
        self.config = as_config(config)
        self._vec = IABVectorEnv(1, self.config, task_split, tasks, new_deployment_each_episode)
        self.layout = self._vec.layout
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self._done = False

    @property
    def core(self) -> BatchedIABCore | None:
        return self._vec.core

    @property
    def instance(self) -> ScenarioInstance:
        return self._vec.instances[0]

    def action_masks(self) -> np.ndarray:
        """The current action mask flattened to (B*K*(1+L),): the form sb3-contrib's
        MaskablePPO asks for with a MultiDiscrete action space."""
        if self._vec.core is None:
            raise RuntimeError("call reset() before action_masks()")
        return self._vec.core.action_mask()[0].reshape(-1)

    def set_task(self, task: Task | None, instance_seed: int) -> None:
        self._vec.set_tasks([task], [instance_seed])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self._vec.reset(seed=seed, options=options)
        self._done = False
        return obs[0], {"action_mask": info["action_mask"][0]}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._vec.core is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended: call reset() before step()")
        batch = validate_action(action, self.layout)
        obs, reward, term, trunc, infos = self._vec.step(batch)
        info: dict[str, Any] = {k: v[0] for k, v in infos.items()
                                if isinstance(v, np.ndarray) and not k.startswith("_")}
        if "episode_metrics" in infos:
            info["episode_metrics"] = {k: float(v[0])
                                       for k, v in infos["episode_metrics"].items()}
        self._done = bool(term[0] or trunc[0])
        return obs[0], float(reward[0]), bool(term[0]), bool(trunc[0]), info
