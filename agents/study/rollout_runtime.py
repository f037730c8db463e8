"""Where a study's rollout jobs run: in this process, or on a Ray pool that lives for the
study (``--ray-address``), opened and closed by :func:`rollout_runtime`. Without an address
nothing here imports Ray."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agents.rollouts import LocalRollouts, RolloutBackend
from bridge import make_vector_env
from bridge.config import ScenarioConfig


def env_factory(backend: str, config: ScenarioConfig) -> Callable[[int], Any]:
    """num_envs -> a vector environment of ``config`` on ``backend``."""
    return lambda n: make_vector_env(backend, n, config=config)


@dataclass
class RolloutRuntime:
    """The rollout backends of one study: a Ray pool's when ``pool`` is set, else local."""

    pool: Any = None  # agents.rollouts.ray_pool.RayPool

    def backend(self, backend: str, config: ScenarioConfig, envs_per_job: int
                ) -> RolloutBackend:
        """A rollout backend for ``config`` on simulator ``backend`` (close it after use)."""
        if self.pool is not None:
            return self.pool.backend(config, backend, envs_per_job=envs_per_job)
        return LocalRollouts(env_factory(backend, config), config, envs_per_job=envs_per_job)

    def describe(self) -> str:
        if self.pool is None:
            return "rollouts in this process"
        hosts = sorted({i["host"] for i in self.pool.infos})
        return f"{len(self.pool.workers)} workers on {', '.join(hosts)}"


@contextmanager
def rollout_runtime(ray_address: str | None = None, ray_workers: int | None = None
                    ) -> Iterator[RolloutRuntime]:
    """The runtime of a study: with ``ray_address`` a Ray pool of ``ray_workers`` workers,
    closed on exit; without it, local rollouts."""
    if not ray_address:
        yield RolloutRuntime()
        return
    from agents.rollouts.ray_pool import RayPool

    pool = RayPool(ray_address, ray_workers)
    try:
        yield RolloutRuntime(pool)
    finally:
        pool.close()
