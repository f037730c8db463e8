"""The interface of a rollout backend: run jobs, return their trajectories, keep statistics.

Agents never step environments themselves: they describe the work as (slots, policy) groups
and call :meth:`RolloutBackend.collect`, which splits it into jobs (``envs_per_job`` slots
each, the same split on every backend), runs them and returns one torch ``Rollout``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from agents.rollouts.jobs import (
    EnvSlot,
    PolicySnapshot,
    RolloutError,
    RolloutJob,
    RolloutStats,
    Trajectory,
    plan_jobs,
    to_rollout,
)
from agents.rollouts.trajectory import Rollout
from bridge.config import ScenarioConfig
from bridge.contract.errors import EnvironmentFailure

# Failures of an environment (a simulator process that died, hung or spoke garbage, a shard
# worker that died), as opposed to bad input or a bug: the job is re-run on a fresh one.
# Every backend's failure derives from the contract's one class.
ENV_FAILURES: type[EnvironmentFailure] = EnvironmentFailure

DEFAULT_ENVS_PER_JOB = 16


def check_jobs(jobs: Sequence[RolloutJob]) -> None:
    """Refuse a batch with repeated job ids (results are matched to jobs by id)."""
    ids = [job.job_id for job in jobs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"job id {dup} appears more than once in one batch")


class RolloutBackend(ABC):
    """Runs rollout jobs on environments of one scenario config."""

    def __init__(self, envs_per_job: int = DEFAULT_ENVS_PER_JOB, max_attempts: int = 3) -> None:
        for name, value in (("envs_per_job", envs_per_job), ("max_attempts", max_attempts)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: expected an integer >= 1")
        self.envs_per_job = envs_per_job
        self.max_attempts = max_attempts
        self.stats = RolloutStats()

    @property
    @abstractmethod
    def config(self) -> ScenarioConfig:
        """The scenario config every environment of this backend simulates."""

    @abstractmethod
    def run(self, jobs: Sequence[RolloutJob]) -> list[Trajectory]:
        """Run ``jobs``; one complete trajectory per job, in the jobs' order. A job whose
        environment fails is re-run (up to ``max_attempts`` attempts, counted in
        ``stats.retries``); raises :class:`RolloutError` when a job cannot be completed."""

    def collect(self, groups: Sequence[tuple[Sequence[EnvSlot], PolicySnapshot]],
                episodes: int = 1, first_episode: int = 0, trial: bool = False) -> Rollout:
        """The groups' slots as jobs of ``envs_per_job``, run, side by side in group order."""
        jobs = plan_jobs(groups, self.envs_per_job, episodes, first_episode, trial)
        return to_rollout(self.run(jobs))

    def collect_groups(self, groups: Sequence[tuple[Sequence[EnvSlot], PolicySnapshot]],
                       episodes: int = 1, first_episode: int = 0, trial: bool = False
                       ) -> list[Rollout]:
        """One :class:`Rollout` per group, the groups run in one batch of jobs: what
        :meth:`collect` of each group alone gives (a job's trajectory does not depend on
        what runs beside it), at the cost of one batched environment instead of one per
        group (an agent's sampled policy and its mode on the same episodes, for instance)."""
        planned = [plan_jobs([group], self.envs_per_job, episodes, first_episode, trial)
                   for group in groups]
        trajectories = self.run([job for jobs in planned for job in jobs])
        out, start = [], 0
        for jobs in planned:
            out.append(to_rollout(trajectories[start:start + len(jobs)]))
            start += len(jobs)
        return out

    @abstractmethod
    def close(self) -> None:
        """Release the environments (and workers) this backend owns."""

    def __enter__(self) -> RolloutBackend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def attempts_exhausted(jobs: Sequence[RolloutJob], attempts: int, cause: BaseException | str
                       ) -> RolloutError:
    """The error for jobs that failed on every allowed attempt (several when they ran side by
    side in one environment, which failed as a whole)."""
    what = (f"rollout job {jobs[0].job_id}" if len(jobs) == 1 else
            f"rollout jobs {', '.join(str(j.job_id) for j in jobs)} (run side by side)")
    envs = sum(j.num_envs for j in jobs)
    return RolloutError(f"{what} ({envs} envs, first task {jobs[0].slots[0].task}) failed "
                        f"{attempts} times; last failure: {cause}")
