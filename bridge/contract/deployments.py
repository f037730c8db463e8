"""Which deployment and which episode seed every environment of a batch simulates.

Both backends choose them here, from the reset seeds and options alone, so the same seeds give
the same network, traffic, incumbents and mobility on either backend:

* ``task_split=None`` (default): the base config's own task; the deployment is drawn from the
  reset seed.
* ``task_split="train"`` / ``"test"``: a task is sampled from that split of the task
  distribution, then a deployment, both from the reset seed.
* :meth:`Deployments.pin` (the vector envs' ``set_tasks``) pins explicit (task, instance
  seed) pairs: meta-RL uses it to keep one deployment over the episodes of a trial.

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

import numpy as np

from bridge.config import ScenarioConfig
from bridge.instance import ScenarioInstance, generate_instance
from bridge.tasks import Task, TaskDistribution

_SEED_MASK = (1 << 62) - 1
RESET_OPTIONS = ("tasks", "instance_seeds", "episode")


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


def episode_seed(base_seed: int, episode: int) -> int:
    """Seed of episode ``episode`` of an environment reset with ``base_seed``."""
    return int((base_seed * 1_000_003 + episode * 7_919 + 17) & _SEED_MASK)


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
    """Chooses the task and the deployment of each environment from its seeds, and counts
    each environment's episodes (its lineage: reset seed and episode index).

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
        self.new_each_episode = bool(new_each_episode)
        self._pinned: list[tuple[Task, int] | None] = [None] * n
        self._base_seed = [0] * n
        self._episode = [0] * n
        self._cache: OrderedDict[tuple[Task | None, int], ScenarioInstance] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pinned)

    def on_reset(self, seed: int | Sequence[int] | None, options: dict[str, Any] | None,
                 started: bool) -> bool:
        """Apply ``reset(seed=..., options=...)``: a seed restarts the episode count, a
        seedless reset of a started environment moves to the next episode, options
        ``tasks``/``instance_seeds`` pin deployments and ``episode`` (an int, or one per
        environment) picks the episode index. Returns True if the deployments may change."""
        n = len(self)
        options = options or {}
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"reset options {unknown} are unknown; expected 'tasks', "
                             "'instance_seeds' and 'episode'")
        if seed is not None:
            self._base_seed = per_env_seeds(seed, n)
            self._episode = [0] * n
        elif started:
            self._episode = [e + 1 for e in self._episode]
        if "tasks" in options:
            self.pin(options["tasks"], options.get("instance_seeds", self._base_seed))
        if "episode" in options:
            self._episode = _episode_indices(options["episode"], n)
        return seed is not None or "tasks" in options or self.new_each_episode

    def next_episode(self, i: int) -> None:
        """Environment i moves on to its next episode (a next-step autoreset)."""
        self._episode[i] += 1

    def pin(self, tasks: Sequence[Task | None], instance_seeds: Sequence[int]) -> None:
        """Environment i simulates ``generate_instance(config, instance_seeds[i], tasks[i])``
        (``None``: the config's own task) until pinned again."""
        n = len(self)
        if len(tasks) != n or len(instance_seeds) != n:
            raise ValueError(f"set_tasks needs {n} tasks and seeds, got {len(tasks)} and "
                             f"{len(instance_seeds)}")
        self._pinned = [(t if t is not None else Task.from_config(self.config), int(s))
                        for t, s in zip(tasks, instance_seeds)]

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

    def instance(self, i: int) -> ScenarioInstance:
        """The deployment environment i simulates in its current episode."""
        pinned = self._pinned[i]
        if pinned is not None:
            task, inst_seed = pinned
            return self._generate(task, inst_seed)
        seed = self._base_seed[i]
        if self.new_each_episode:
            seed = episode_seed(seed, self._episode[i]) ^ 0x5A5A
        task = None
        if self.task_split is not None:
            task = self.distribution.sample(self.task_split, seed)[0]
        return self._generate(task, seed)

    def instances(self) -> list[ScenarioInstance]:
        """Every environment's current deployment."""
        return [self.instance(i) for i in range(len(self))]

    def base_seed(self, i: int) -> int:
        """Reset seed of environment i's lineage."""
        return self._base_seed[i]

    def episode(self, i: int) -> int:
        """Index of environment i's current episode since its seeded reset."""
        return self._episode[i]

    def episode_seed(self, i: int, episode: int | None = None) -> int:
        """Seed of environment i's current episode (or of its episode ``episode``)."""
        return episode_seed(self._base_seed[i], self._episode[i] if episode is None else episode)

    def episode_seeds(self) -> list[int]:
        """Every environment's current episode seed."""
        return [self.episode_seed(i) for i in range(len(self))]
