"""The interface every learning agent offers the meta-train / meta-test protocol, and the
budget that sizes a run."""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.rollout import EnvCursor
from agents.rollouts.jobs import EnvSlot
from bridge.config import ConfigError
from bridge.contract import IABVectorEnvBase
from bridge.metrics import HEADLINE_METRICS
from bridge.tasks import Task, TaskDistribution

# called after every training iteration with its statistics; returning False stops training
Callback = Callable[[dict[str, float]], bool | None]

# Metrics recorded on every adaptation-curve point (headline metrics plus the return).
CURVE_METRICS: tuple[str, ...] = (*HEADLINE_METRICS, "episode_return")


@dataclass(frozen=True)
class Budget:
    """How much compute one protocol run gets (per agent and seed).

    ``meta_train_env_steps`` counts environment steps (frames summed over environments) spent
    in meta-training. Adaptation on each held-out task runs ``adapt_episodes + 1`` episodes
    on ``adapt_envs`` environments (curve points 0..K)."""

    name: str = "default"
    episode_frames: int = 100
    meta_train_env_steps: int = 300_000
    num_envs: int = 64
    meta_batch_tasks: int = 8
    adapt_episodes: int = 4
    adapt_envs: int = 8
    n_test_tasks: int = 4
    seeds: tuple[int, ...] = (0, 1, 2)
    # wall-clock cap per meta-training run (None: only the step budget); the env steps
    # actually spent are reported either way
    max_meta_train_s: float | None = 75.0
    # environments per rollout job: the unit a rollout backend runs (and a Ray worker
    # receives); the split does not depend on the backend, so local and Ray runs agree
    envs_per_job: int = 16

    def __post_init__(self) -> None:
        for name in ("episode_frames", "meta_train_env_steps", "num_envs", "meta_batch_tasks",
                     "adapt_episodes", "adapt_envs", "n_test_tasks", "envs_per_job"):
            value = getattr(self, name)
            low = 0 if name in ("adapt_episodes", "meta_train_env_steps") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"experiment.{name}={value!r}: expected an integer >= {low}")

    def replace(self, **changes: Any) -> Budget:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["seeds"] = list(self.seeds)
        return out


def quick_budget() -> Budget:
    """The whole protocol (both studies, all four agents) in about 100 s on two cores: one
    seed, three meta-learners x two studies x <= 11 s of meta-training (PPO's from-scratch
    baseline costs nothing there), the rest is baselines and adaptation."""
    return Budget(name="quick", episode_frames=40, meta_train_env_steps=60_000, num_envs=32,
                  meta_batch_tasks=4, adapt_episodes=3, adapt_envs=4, n_test_tasks=3,
                  seeds=(0,), max_meta_train_s=11.0)


def default_budget() -> Budget:
    """All four agents, both studies, three seeds in about twenty minutes on two cores
    (18 meta-training runs of at most 55 s each)."""
    return Budget(max_meta_train_s=55.0)


class WallClock:
    """Stops a training loop before it runs past ``limit_s``: :meth:`expired` is true once
    the time used plus the longest iteration so far would exceed the limit, so the overshoot
    is bounded by the variation of one iteration, not by a whole one."""

    def __init__(self, limit_s: float | None) -> None:
        self.limit_s = limit_s
        self.start = time.perf_counter()
        self.last = self.start
        self.longest = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def tick(self) -> None:
        """Mark the end of one iteration."""
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def expired(self) -> bool:
        return self.limit_s is not None and self.elapsed() + self.longest > self.limit_s


class TrainingRun:
    """The bookkeeping every training loop shares: per-iteration statistics stamped with the
    iteration, env-steps and wall time, the callback (returning False stops), the wall-clock
    cap, and the summary ``meta_train`` returns."""

    def __init__(self, callback: Callback | None, max_seconds: float | None) -> None:
        self.callback = callback
        self.clock = WallClock(max_seconds)
        self.iterations = 0
        self.last: dict[str, float] = {}

    def record(self, stats: dict[str, float], env_steps: int) -> bool:
        """Log one finished iteration; True when training must stop."""
        stats.update(iteration=float(self.iterations), env_steps=float(env_steps),
                     wall_s=self.clock.elapsed())
        self.iterations += 1
        self.last = stats
        if self.callback is not None and self.callback(stats) is False:
            return True
        self.clock.tick()
        return self.clock.expired()

    def summary(self, env_steps: int) -> dict[str, Any]:
        return {"env_steps": env_steps, "wall_s": self.clock.elapsed(),
                "iterations": self.iterations, "last": self.last}


class Agent(ABC):
    """A spectrum-allocation learner: meta-train on training tasks, adapt on a held-out task.

    ``act`` is batched: obs (N, D) float, mask (N, B*K, 1+L) bool -> action (N, B*K) int64,
    plus the memory state to pass back next step (None for memoryless agents)."""

    name: str = "agent"

    @abstractmethod
    def meta_train(self, envs: Any, tasks: TaskDistribution, budget: Budget,
                   callback: Callback | None = None) -> dict[str, Any]:
        """Train on ``tasks``' training split; returns at least ``env_steps`` and ``wall_s``.
        ``envs`` is a rollout backend (:mod:`agents.rollouts`: local or Ray) or a factory
        num_envs -> vector environment (run in this process)."""

    @abstractmethod
    def adapt(self, envs: Any, task: Task, episodes: int, instance_seed: int = 0,
              num_envs: int | None = None) -> list[dict[str, float]]:
        """Run ``episodes + 1`` episodes of ``task``'s deployment ``instance_seed`` on
        ``num_envs`` environments of ``envs`` (a rollout backend, a factory, or a vector
        environment, whose size is then the default), adapting between them; point k holds
        the mean metrics of episode k."""

    @abstractmethod
    def act(self, obs: np.ndarray, mask: np.ndarray, state: Any = None,
            deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """One batched decision."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write a checkpoint (tensors and plain data only)."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> Agent:
        """Rebuild an agent from :meth:`save`'s checkpoint."""


def pin_task(env: IABVectorEnvBase, task: Task, instance_seed: int) -> EnvCursor:
    """Point every environment of ``env`` at one deployment and start an episode."""
    return pin_tasks(env, [task], [instance_seed])


def pin_tasks(env: IABVectorEnvBase, tasks: list[Task], instance_seeds: list[int]) -> EnvCursor:
    """Environment i simulates (tasks[i // per_task], instance_seeds[i // per_task]) from a
    fresh episode; later ``EnvCursor.start(env)`` calls keep these deployments. Environment
    j of a task gets the episodes of replica j (:class:`agents.rollouts.EnvSlot`), so the
    baselines see exactly the episodes the agents' rollout jobs see."""
    per_task = env.num_envs // len(tasks)
    if per_task * len(tasks) != env.num_envs:
        raise ValueError(f"{env.num_envs} environments cannot be split evenly over "
                         f"{len(tasks)} tasks")
    # distinct episode seeds per environment: without them every environment replayed the
    # same traffic, mobility and incumbent draws, so E environments gave one sample, not E
    episode_seeds = [EnvSlot(t, int(s), j).episode_seed for t, s in zip(tasks, instance_seeds)
                     for j in range(per_task)]
    return EnvCursor.start(env, seed=episode_seeds, options={
        "tasks": [t for t in tasks for _ in range(per_task)],
        "instance_seeds": [int(s) for s in instance_seeds for _ in range(per_task)]})


def torch_threads(n: int = 2) -> None:
    """The target machine has two cores; more threads only add contention."""
    torch.set_num_threads(n)
