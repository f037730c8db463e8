"""The in-process rollout backend: every job of a call side by side in one vector environment
(the fallback's numpy batch, or one ns-3 process per environment stepped concurrently)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agents.rollouts.base import (
    DEFAULT_ENVS_PER_JOB,
    ENV_FAILURES,
    RolloutBackend,
    attempts_exhausted,
    check_jobs,
)
from agents.rollouts.jobs import EnvSlot, PolicySnapshot, RolloutJob, Trajectory
from agents.rollouts.runner import PolicyCache, run_jobs
from agents.rollouts.trajectory import Rollout
from bridge.config import ScenarioConfig

EnvFactory = Callable[[int], Any]


class LocalRollouts(RolloutBackend):
    """Runs jobs in this process on environments from ``env_factory(num_envs)`` (kept per
    size and reused, so an ns-3 deployment that comes back keeps its process). A failed
    environment is closed and the whole call re-run on a fresh one; the jobs are pure, so
    the retry gives what the first attempt would have."""

    def __init__(self, env_factory: EnvFactory, config: ScenarioConfig | None = None, *,
                 envs_per_job: int = DEFAULT_ENVS_PER_JOB, max_attempts: int = 3) -> None:
        super().__init__(envs_per_job, max_attempts)
        self._factory = env_factory
        self._config = config
        self._envs: dict[int, Any] = {}
        self._borrowed: set[int] = set()
        self._cache = PolicyCache()

    @classmethod
    def from_env(cls, env: Any, envs_per_job: int | None = None) -> LocalRollouts:
        """Run jobs on an existing vector environment (which the caller keeps and closes);
        by default one job spans all of its environments."""
        backend = cls(lambda n: _same_size(env, n), env.config,
                      envs_per_job=envs_per_job or env.num_envs, max_attempts=1)
        backend._envs[env.num_envs] = env
        backend._borrowed.add(env.num_envs)
        return backend

    @property
    def config(self) -> ScenarioConfig:
        if self._config is None:
            self._config = self._env(1).config
        return self._config

    def _env(self, n: int) -> Any:
        if n not in self._envs:
            self._envs[n] = self._factory(n)
        return self._envs[n]

    def _discard(self, n: int) -> None:
        env = self._envs.pop(n, None)
        if env is not None and n not in self._borrowed:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - a broken env may fail to close; it is dropped
                pass

    def collect_groups(self, groups: Sequence[tuple[Sequence[EnvSlot], PolicySnapshot]],
                       episodes: int = 1, first_episode: int = 0, trial: bool = False
                       ) -> list[Rollout]:
        if self._borrowed:  # a given vector environment has the size of one group
            return [self.collect([group], episodes, first_episode, trial) for group in groups]
        return super().collect_groups(groups, episodes, first_episode, trial)

    def run(self, jobs: Sequence[RolloutJob]) -> list[Trajectory]:
        check_jobs(jobs)
        if not jobs:
            return []
        n = sum(job.num_envs for job in jobs)
        for attempt in range(1, self.max_attempts + 1):
            try:
                trajectories = run_jobs(self._env(n), jobs, self._cache)
            except ENV_FAILURES as exc:
                self._discard(n)
                ids = ", ".join(str(j.job_id) for j in jobs)
                self.stats.failed(f"attempt {attempt} of jobs {ids}: "
                                  f"{type(exc).__name__}: {exc}")
                if attempt == self.max_attempts:
                    raise attempts_exhausted(jobs, attempt, exc) from exc
                self.stats.retries += len(jobs)
                continue
            for t in trajectories:
                t.attempt = attempt
            self.stats.completed(trajectories)
            return trajectories
        raise AssertionError("unreachable")

    def close(self) -> None:
        for n in list(self._envs):
            self._discard(n)


def _same_size(env: Any, n: int) -> Any:
    if n != env.num_envs:
        raise ValueError(f"the jobs need {n} environments; the given vector environment has "
                         f"{env.num_envs}")
    return env
