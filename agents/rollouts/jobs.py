"""What the rollout layer moves between a learner and its workers: environment slots, policy
snapshots, rollout jobs and the trajectories they return (plain numpy, so any process, local
or remote, can run a job and send its result back).

A job is a pure function of its contents: it pins each of its environments to its slot's
deployment, starts at episode ``first_episode`` of that deployment, runs ``episodes`` whole
episodes with the snapshot's policy and each slot's counter-based action noise, and returns
the trajectory. Running a job again, anywhere, gives the same trajectory: that is what makes a
retry after a failure safe and a distributed run equal to a local one.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from agents.networks import ActorCritic
from agents.rollouts.trajectory import EnvCursor, Rollout
from bridge.layout import ObservationLayout
from bridge.tasks import Task

# the fields of agents.rollouts.trajectory.Rollout a trajectory carries, all (T, E, ...)
ARRAY_FIELDS = ("obs", "mask", "action", "logprob", "value", "reward", "terminated",
                "truncated", "valid", "prev_action", "prev_reward", "prev_done", "reward_bs")
_SEED_LIMIT = 2**31
_job_ids = itertools.count()


class RolloutError(RuntimeError):
    """A rollout job could not be completed (it failed on every allowed attempt, or a worker
    returned something that does not match the job)."""


def job_steps(episodes: int, frames: int) -> int:
    """Env steps of ``episodes`` consecutive episodes: their frames plus the next-step
    autoreset steps between them."""
    return episodes * frames + (episodes - 1)


@dataclass(frozen=True)
class EnvSlot:
    """One environment of a job: its deployment (task, instance seed), which replica of that
    deployment it is (replicas differ in traffic, fading and mobility draws), and the seed of
    its action noise."""

    task: Task
    instance_seed: int
    replica: int = 0
    sample_seed: int = 0

    @property
    def episode_seed(self) -> int:
        """The environment's reset seed, from which every episode's seed follows."""
        return (int(self.instance_seed) * 1_000_003 + int(self.replica)) % _SEED_LIMIT


def task_slots(task: Task, instance_seed: int, sample_seeds: Sequence[int]) -> list[EnvSlot]:
    """``len(sample_seeds)`` replicas of one deployment (replica j gets sample_seeds[j])."""
    return [EnvSlot(task, int(instance_seed), j, int(s)) for j, s in enumerate(sample_seeds)]


def draw_sample_seeds(n: int) -> list[int]:
    """``n`` action-noise seeds from torch's global generator (which the agents and the study
    runner seed), so a seeded run draws the same noise on every backend."""
    return [int(s) for s in torch.randint(0, 2**62, (n,), dtype=torch.int64)]


def _weights(tensors: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in tensors.items()}


@dataclass(frozen=True, eq=False)
class PolicySnapshot:
    """Everything a worker needs to act as the learner's policy does: the network
    architecture, its weights (numpy) and whether to act greedily. The trajectory's values
    are the network's own value head (a learner with a separate critic evaluates it on the
    returned observations, in one batch)."""

    layout: ObservationLayout
    arch: dict[str, Any]
    weights: dict[str, np.ndarray]
    deterministic: bool = False

    @classmethod
    def capture(cls, model: ActorCritic, params: Mapping[str, torch.Tensor] | None = None,
                deterministic: bool = False) -> PolicySnapshot:
        """Snapshot ``model``, with ``params`` in place of its own parameters when given
        (MAML's adapted ones)."""
        weights = _weights(params if params is not None else model.state_dict())
        return cls(model.layout, dict(model.arch), weights, deterministic)

    @property
    def recurrent(self) -> bool:
        return self.arch.get("memory", "none") != "none"

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.weights.values())


@dataclass(frozen=True, eq=False)
class RolloutJob:
    """``episodes`` whole episodes on ``slots`` with ``policy``, from episode ``first_episode``
    of every slot's deployment. ``trial`` runs a recurrent policy whose memory spans the
    job's episodes (RL^2); otherwise the policy is memoryless and the last value is
    bootstrapped. ``policy`` is None only while a job travels without its (shared) snapshot."""

    job_id: int
    slots: tuple[EnvSlot, ...]
    policy: PolicySnapshot | None
    episodes: int = 1
    first_episode: int = 0
    trial: bool = False

    def __post_init__(self) -> None:
        if not self.slots or not all(isinstance(s, EnvSlot) for s in self.slots):
            raise ValueError(f"job {self.job_id}: slots must be a non-empty sequence of EnvSlot")
        for name in ("episodes", "first_episode"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value < (1 if name == "episodes" else 0):
                raise ValueError(f"job {self.job_id}: {name}={value!r}; expected an integer "
                                 f">= {1 if name == 'episodes' else 0}")
        if self.policy is not None and self.policy.recurrent != self.trial:
            raise ValueError(f"job {self.job_id}: trial={self.trial} but the policy is "
                             f"{'recurrent' if self.policy.recurrent else 'memoryless'}; a "
                             "recurrent policy runs trials, a memoryless one does not")

    @property
    def num_envs(self) -> int:
        return len(self.slots)

    def steps(self, frames: int) -> int:
        return job_steps(self.episodes, frames)

    def without_policy(self) -> RolloutJob:
        return dataclasses.replace(self, policy=None)

    def with_policy(self, policy: PolicySnapshot) -> RolloutJob:
        return dataclasses.replace(self, policy=policy)


def plan_jobs(groups: Sequence[tuple[Sequence[EnvSlot], PolicySnapshot]], envs_per_job: int,
              episodes: int = 1, first_episode: int = 0, trial: bool = False
              ) -> list[RolloutJob]:
    """Split every (slots, policy) group into jobs of at most ``envs_per_job`` consecutive
    slots. The split depends only on these arguments, never on the backend, so a job means
    the same work wherever it runs."""
    if isinstance(envs_per_job, bool) or not isinstance(envs_per_job, int) or envs_per_job < 1:
        raise ValueError(f"envs_per_job={envs_per_job!r}: expected an integer >= 1")
    jobs = []
    for slots, policy in groups:
        slots = tuple(slots)
        for start in range(0, len(slots), envs_per_job):
            jobs.append(RolloutJob(next(_job_ids), slots[start:start + envs_per_job], policy,
                                   episodes, first_episode, trial))
    return jobs


@dataclass
class Trajectory:
    """A job's result: ``arrays`` holds :data:`ARRAY_FIELDS` (T, E, ...), ``next_value``
    (E,) and ``final_obs`` (E, D), the observation after the last step; ``episode_records``
    the metrics of every finished episode (``env`` counts within the job). ``attempt`` says
    which attempt produced it, ``worker`` where it ran."""

    job_id: int
    arrays: dict[str, np.ndarray]
    episode_records: list[dict[str, float]] = field(default_factory=list)
    attempt: int = 1
    worker: str = "local"

    @property
    def steps(self) -> int:
        return int(self.arrays["obs"].shape[0])

    @property
    def num_envs(self) -> int:
        return int(self.arrays["obs"].shape[1])

    @classmethod
    def from_rollout(cls, rollout: Rollout, envs: slice, job_id: int) -> Trajectory:
        """The environments ``envs`` of ``rollout`` (records renumbered from 0)."""
        arrays = {k: np.ascontiguousarray(getattr(rollout, k)[:, envs].numpy())
                  for k in ARRAY_FIELDS}
        arrays["next_value"] = np.ascontiguousarray(rollout.next_value[envs].numpy())
        arrays["final_obs"] = np.ascontiguousarray(rollout.final_obs[envs].numpy())
        lo, hi = envs.start or 0, envs.stop
        records = [dict(r, env=int(r["env"]) - lo) for r in rollout.episode_records
                   if lo <= int(r["env"]) < hi]
        return cls(job_id, arrays, records)

    def check(self, job: RolloutJob, frames: int) -> None:
        """Raise RolloutError unless this is a complete trajectory of ``job``."""
        expected = (job.steps(frames), job.num_envs)
        if self.job_id != job.job_id:
            raise RolloutError(f"a worker returned job {self.job_id} for job {job.job_id}")
        missing = [k for k in (*ARRAY_FIELDS, "next_value", "final_obs")
                   if k not in self.arrays]
        if missing:
            raise RolloutError(f"job {job.job_id}: the trajectory lacks {missing}")
        for k in ARRAY_FIELDS:
            if self.arrays[k].shape[:2] != expected:
                raise RolloutError(f"job {job.job_id}: {k} has shape {self.arrays[k].shape}, "
                                   f"expected (steps, envs) = {expected}")


def to_rollout(trajectories: Sequence[Trajectory]) -> Rollout:
    """Trajectories side by side (environment axis) as one torch :class:`Rollout`."""
    if not trajectories:
        raise ValueError("to_rollout needs at least one trajectory")
    tensors = {k: torch.from_numpy(np.concatenate([t.arrays[k] for t in trajectories], axis=1))
               for k in ARRAY_FIELDS}
    next_value, final_obs = (torch.from_numpy(np.concatenate([t.arrays[k] for t in
                                                               trajectories]))
                             for k in ("next_value", "final_obs"))
    records, offset = [], 0
    for t in trajectories:
        records += [dict(r, env=int(r["env"]) + offset) for r in t.episode_records]
        offset += t.num_envs
    return Rollout(**tensors, next_value=next_value, final_obs=final_obs,
                   episode_records=records)


@dataclass
class RolloutStats:
    """What a rollout backend did: jobs completed (each exactly once), env-steps in them,
    job attempts that failed and were re-run, workers replaced."""

    jobs: int = 0
    env_steps: int = 0
    retries: int = 0
    worker_replacements: int = 0
    failures: list[str] = field(default_factory=list)

    MAX_FAILURES_KEPT = 20

    def completed(self, trajectories: Sequence[Trajectory]) -> None:
        self.jobs += len(trajectories)
        self.env_steps += sum(t.steps * t.num_envs for t in trajectories)

    def failed(self, message: str) -> None:
        self.failures.append(message)
        del self.failures[:-self.MAX_FAILURES_KEPT]

    def to_dict(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "env_steps": self.env_steps, "retries": self.retries,
                "worker_replacements": self.worker_replacements,
                "failures": list(self.failures)}


def pin_tasks(env: Any, tasks: list[Task], instance_seeds: list[int]) -> EnvCursor:
    """Environment i of the vector env ``env`` simulates (tasks[i // per_task],
    instance_seeds[i // per_task]) from a fresh episode; later ``EnvCursor.start(env)`` calls
    keep these deployments. Environment j of a task gets the episodes of replica j
    (:class:`EnvSlot`), so the baselines see exactly the episodes the agents' rollout jobs
    see."""
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
