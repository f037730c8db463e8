"""The rollout layer under the agents: jobs, trajectories and the backends that run them.

* :class:`LocalRollouts`: in this process (fallback batch, or ns-3 processes stepped
  concurrently).
* :class:`agents.rollouts.ray_pool.RayRollouts`: Ray actors that own their environments
  (optional extra ``iabmeta[ray]``; imported only when asked for).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from agents.rollouts.base import DEFAULT_ENVS_PER_JOB, ENV_FAILURES, RolloutBackend
from agents.rollouts.jobs import (
    ARRAY_FIELDS,
    EnvSlot,
    PolicySnapshot,
    RolloutError,
    RolloutJob,
    RolloutStats,
    Trajectory,
    draw_sample_seeds,
    job_steps,
    pin_tasks,
    plan_jobs,
    task_slots,
    to_rollout,
)
from agents.rollouts.local import LocalRollouts
from agents.rollouts.runner import PolicyCache, run_jobs

__all__ = ["ARRAY_FIELDS", "DEFAULT_ENVS_PER_JOB", "ENV_FAILURES", "EnvSlot", "LocalRollouts",
           "PolicyCache", "PolicySnapshot", "RolloutBackend", "RolloutError", "RolloutJob",
           "RolloutStats", "Trajectory", "draw_sample_seeds", "job_steps", "opened",
           "pin_tasks", "plan_jobs", "run_jobs", "source_envs", "task_slots", "to_rollout"]

# what an agent accepts as its environments: a backend, a vector environment, or a factory
# num_envs -> vector environment
EnvSource = RolloutBackend | Any | Callable[[int], Any]


@contextmanager
def opened(source: EnvSource, envs_per_job: int | None = None) -> Iterator[RolloutBackend]:
    """``source`` as a rollout backend: a backend as it is (its owner closes it), a vector
    environment run in place (one job over all of it unless ``envs_per_job``), or a factory
    wrapped in a :class:`LocalRollouts` that is closed on exit."""
    if isinstance(source, RolloutBackend):
        yield source
    elif hasattr(source, "num_envs") and hasattr(source, "step"):
        yield LocalRollouts.from_env(source, envs_per_job)
    elif callable(source):
        backend = LocalRollouts(source, envs_per_job=envs_per_job or DEFAULT_ENVS_PER_JOB)
        try:
            yield backend
        finally:
            backend.close()
    else:
        raise TypeError(f"expected a RolloutBackend, a vector environment or a factory "
                        f"num_envs -> vector environment, got {type(source).__name__}")


def source_envs(source: EnvSource, num_envs: int | None) -> int:
    """How many environments an adaptation runs: ``num_envs``, or the vector env's size."""
    if num_envs is not None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r}: expected an integer >= 1")
        return num_envs
    if hasattr(source, "num_envs") and not isinstance(source, RolloutBackend):
        return int(source.num_envs)
    raise ValueError("num_envs is required when adapting through a rollout backend or factory")
