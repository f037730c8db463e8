"""The worker side of distributed rollouts: what a Ray rollout worker builds its
environments from and the actor class itself (plain Python; :mod:`agents.rollouts.ray_pool`
turns it into a Ray actor, so importing this module does not import Ray)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from agents.rollouts.base import ENV_FAILURES
from agents.rollouts.jobs import PolicySnapshot, RolloutJob, Trajectory
from agents.rollouts.runner import PolicyCache, run_jobs
from bridge.config import ScenarioConfig


@dataclass(frozen=True)
class EnvSpec:
    """What a worker builds its environments from: the backend, the scenario config (as a
    plain dict) and the ns-3 options (binary, endpoint, timeouts, scenario_args)."""

    backend: str
    config: dict[str, Any]
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        return json.dumps([self.backend, self.config, self.options], sort_keys=True,
                          default=str)

    @property
    def frames(self) -> int:
        return int(self.config["dynamics"]["episode_frames"])

    def make(self, num_envs: int) -> Any:
        from bridge.contract import make_vector_env

        return make_vector_env(self.backend, num_envs,
                               config=ScenarioConfig.from_dict(self.config), **self.options)


class WorkerEnvFailure(RuntimeError):
    """Raised by a worker whose environment failed (simulator died, hung, spoke garbage);
    the worker has dropped that environment, so a retry starts on a fresh one."""


def env_key(spec: EnvSpec, job: RolloutJob) -> tuple[Any, ...]:
    """Which environment of a worker runs ``job``: for ns-3 one per set of slots, because its
    processes carry the slots' episode lineages (a slot that comes back continues its
    process); for the stateless fallback one per size."""
    if spec.backend == "ns3":
        return (spec.key, tuple((s.task, s.instance_seed, s.replica) for s in job.slots))
    return (spec.key, job.num_envs)


class RolloutWorker:
    """A Ray actor (see :class:`RayPool`): keeps up to ``max_envs`` environments between
    jobs (least recently used closed first), keyed by :func:`env_key`."""

    def __init__(self, name: str, torch_threads: int = 1, max_envs: int = 8) -> None:
        import torch

        torch.set_num_threads(torch_threads)
        self.name = name
        self.max_envs = max_envs
        self.envs: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.cache = PolicyCache()

    def info(self) -> dict[str, Any]:
        import torch

        return {"name": self.name, "pid": os.getpid(), "host": socket.gethostname(),
                "torch_threads": torch.get_num_threads()}

    def run(self, spec: EnvSpec, job: RolloutJob, policy: PolicySnapshot) -> Trajectory:
        job = job.with_policy(policy)
        key = env_key(spec, job)
        try:
            if key in self.envs:
                self.envs.move_to_end(key)
            else:
                while len(self.envs) >= self.max_envs:
                    self._drop(next(iter(self.envs)))
                self.envs[key] = spec.make(job.num_envs)
            trajectory = run_jobs(self.envs[key], [job], self.cache)[0]
        except ENV_FAILURES as exc:
            self._drop(key)
            raise WorkerEnvFailure(f"{self.name}: {type(exc).__name__}: {exc}") from None
        except BaseException:
            self._drop(key)
            raise
        trajectory.worker = self.name
        return trajectory

    def _drop(self, key: tuple[Any, ...]) -> None:
        env = self.envs.pop(key, None)
        if env is not None:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - a broken env may fail to close; it is dropped
                pass

    def close(self) -> None:
        for key in list(self.envs):
            self._drop(key)
