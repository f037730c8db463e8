"""Rollout workers as Ray actors (:mod:`agents.rollouts.ray_worker`): each owns its
environments (a fallback batch, or ns-3 processes), runs the jobs the learner hands out and
returns numpy trajectories.

This is the only module that imports Ray, and only when a pool is created (the optional extra
``iabmeta[ray]``). A job is pure (:mod:`agents.rollouts.jobs`), so the pool may run it
anywhere and, when a worker or its simulator dies mid-rollout, run it again elsewhere: the
result is the trajectory the first attempt would have returned. A job has at most one attempt
in flight, and an attempt that is given up (its worker lost or timed out) is forgotten with its
worker, so every job ends with exactly one result: none used twice, none lost.
"""

from __future__ import annotations

import os
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agents.rollouts.base import (
    DEFAULT_ENVS_PER_JOB,
    RolloutBackend,
    attempts_exhausted,
    check_jobs,
)
from agents.rollouts.jobs import RolloutError, RolloutJob, RolloutStats, Trajectory
from agents.rollouts.ray_worker import EnvSpec, RolloutWorker, WorkerEnvFailure, env_key
from bridge.config import ConfigError, ScenarioConfig
from bridge.contract import BACKENDS


def import_ray() -> Any:
    """Ray, or a ConfigError that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"distributed rollouts need Ray, which is not installed here ({exc});"
                          " install the extra: pip install 'iabmeta[ray]'") from None
    return ray


def _loopback_only() -> None:
    """Make Ray use 127.0.0.1 as this node's address, so that every Ray server (GCS, raylet,
    workers) listens on loopback only: Ray does that when it runs with multi-node clusters
    disabled. The environment variable reaches the processes Ray starts; this process read
    it when Ray was imported, so its copy of the setting is updated as well (the test suite
    checks the listening sockets)."""
    import ray._private.ray_constants as ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def _workers_not_niced() -> None:
    """Start the private cluster's workers at this process's priority. Ray renices every
    worker it starts to 15 (``RAY_worker_niceness``, read by the raylet when it starts), so on
    a machine busy with ordinary processes the rollout workers, which do the run's work, get a
    few percent of a core: a one-second rollout took minutes and a replacement worker's start
    (importing torch) outlasted the start deadline. A value set in the environment is kept."""
    os.environ.setdefault("RAY_worker_niceness", "0")


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address={address!r}: expected 'local', 'auto', 'host:port' "
                          "or 'ray://host:port'")
    return host.strip("[]"), int(port)


def _resolve(address: str) -> str:
    """``auto`` as Ray resolves it (RAY_ADDRESS, else the cluster started on this machine
    by ``ray start``); other addresses as they are."""
    if address != "auto":
        return address
    found = os.environ.get("RAY_ADDRESS", "")
    if not found:
        try:
            with open("/tmp/ray/ray_current_cluster") as fh:
                found = fh.read().strip()
        except OSError:
            found = ""
    if not found or found == "auto":
        raise ConfigError("--ray-address=auto: no running Ray cluster found (neither "
                          "RAY_ADDRESS nor a cluster started here with `ray start --head`)")
    return found


def _token_available() -> bool:
    """Whether Ray would find an authentication token here (its variables or file)."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or os.path.isfile(path)


def _check_reachable(address: str, timeout_s: float) -> None:
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=min(timeout_s, 15.0)).close()
    except OSError as exc:
        raise ConfigError(f"--ray-address={address!r}: nothing answers at {host}:{port} "
                          f"({exc})") from None


def _is_loopback(address: str) -> bool:
    return _host_port(address)[0] in ("127.0.0.1", "localhost", "::1")


@dataclass
class _Flight:
    job: RolloutJob
    worker: int
    started: float
    attempt: int


class RayPool:
    """``num_workers`` rollout actors on a Ray cluster, shared by every scenario and backend
    of a run (:meth:`backend` binds one).

    ``address``: ``"local"`` starts a private single-machine cluster bound to loopback (and
    stops it at :meth:`close`); ``"auto"``, ``"host:port"`` or ``"ray://host:port"``
    connect to a running cluster (its nodes need iabmeta installed and, for ns-3, the
    scenarios built). ``num_workers`` defaults to the cluster's CPUs / ``cpus_per_worker``.
    A job running longer than ``job_timeout_s`` is treated as a dead worker. A worker keeps
    up to ``max_envs`` environments (for ns-3, one per set of slots: ``max_envs`` x
    ``envs_per_job`` processes at most).
    ``on_dispatch(job, worker_name)`` is called whenever a job is handed to a worker."""

    def __init__(self, address: str = "local", num_workers: int | None = None, *,
                 cpus_per_worker: float = 1.0, local_cpus: int | None = None,
                 job_timeout_s: float = 1800.0, start_timeout_s: float = 180.0,
                 object_store_mb: int = 512, poll_s: float = 1.0, max_envs: int = 8,
                 on_dispatch: Callable[[RolloutJob, str], None] | None = None) -> None:
        if num_workers is not None and (isinstance(num_workers, bool) or num_workers < 1):
            raise ConfigError(f"--ray-workers={num_workers!r}: expected an integer >= 1")
        for name, value in (("cpus_per_worker", cpus_per_worker),
                            ("job_timeout_s", job_timeout_s),
                            ("start_timeout_s", start_timeout_s)):
            if not value > 0:
                raise ConfigError(f"{name}={value!r}: expected a positive number")
        if address != "local":
            address = _resolve(address)
            _host_port(address)  # refuse a malformed address before anything else
            if "RAY_AUTH_MODE" not in os.environ and _token_available():
                # a cluster started by `ray start` checks tokens, and Ray sends this machine's
                # token only in token mode, which it reads when it is imported (a cluster
                # without authentication accepts the token too)
                os.environ["RAY_AUTH_MODE"] = "token"
        ray = import_ray()
        self._ray = ray
        self.job_timeout_s = job_timeout_s
        self.start_timeout_s = start_timeout_s
        self.poll_s = poll_s
        self.max_envs = max_envs
        self.on_dispatch = on_dispatch
        self._connected_here = False
        if ray.is_initialized():
            current = ray.get_runtime_context().gcs_address
            if address != "local" and (address.startswith("ray://")
                                       or _host_port(address) != _host_port(current)):
                raise ConfigError(f"--ray-address={address!r}: this process is already "
                                  f"connected to the Ray cluster at {current}")
        else:
            self._connect(address, local_cpus, object_store_mb)
            self._connected_here = True
        self._actor = ray.remote(num_cpus=cpus_per_worker, max_restarts=0)(RolloutWorker)
        if num_workers is None:
            cpus = float(ray.cluster_resources().get("CPU", 1.0))
            num_workers = max(1, int(cpus // cpus_per_worker))
        self._spawned = 0
        self.workers: list[Any] = []
        self.infos: list[dict[str, Any]] = []
        self._held: list[OrderedDict[tuple[Any, ...], None]] = []  # env keys per worker
        try:
            self.workers = [self._spawn() for _ in range(num_workers)]
            self._held = [OrderedDict() for _ in self.workers]
            self.infos = self._wait_ready(self.workers)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ cluster
    def _connect(self, address: str, local_cpus: int | None, object_store_mb: int) -> None:
        ray = self._ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if address != "local":
            # Ray retries an unreachable head for minutes: check it answers first
            _check_reachable(address, self.start_timeout_s)
        try:
            if address == "local" or _is_loopback(address):
                _loopback_only()
            if address == "local":
                _workers_not_niced()
                ray.init(address="local", num_cpus=local_cpus or os.cpu_count() or 1,
                         include_dashboard=False, object_store_memory=object_store_mb << 20,
                         log_to_driver=False, logging_level="warning",
                         namespace="iabmeta", _node_ip_address="127.0.0.1")
            else:
                self._init_remote(address)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; name the address
            raise ConfigError(f"--ray-address={address!r}: cannot connect to a Ray cluster "
                              f"there ({type(exc).__name__}: {exc})") from None

    def _init_remote(self, address: str) -> None:
        """``ray.init`` on a running cluster. Over the Ray Client the head's proxy starts a
        server per driver, and that start can fail once on a busy machine ("Starting Ray
        client server failed", seen in CI): one more attempt, then the error."""
        ray = self._ray
        attempts = 2 if address.startswith("ray://") else 1
        for attempt in range(1, attempts + 1):
            try:
                ray.init(address=address, logging_level="warning", namespace="iabmeta")
                return
            except ConnectionAbortedError:
                if attempt == attempts:
                    raise
                ray.shutdown()
                time.sleep(2.0)

    def _spawn(self) -> Any:
        name = f"w{self._spawned}"
        self._spawned += 1
        return self._actor.remote(name, max_envs=self.max_envs)

    def _wait_ready(self, workers: Sequence[Any]) -> list[dict[str, Any]]:
        refs = [w.info.remote() for w in workers]
        ready, pending = self._ray.wait(refs, num_returns=len(refs),
                                        timeout=self.start_timeout_s)
        if pending:
            raise RolloutError(f"{len(pending)} of {len(refs)} Ray rollout workers did not start"
                               f" within {self.start_timeout_s:.0f} s; every node needs iabmeta "
                               "installed (and free CPUs for the workers)")
        return self._ray.get(refs)

    def worker_pids(self) -> list[int]:
        return [int(i["pid"]) for i in self.infos]

    def backend(self, config: ScenarioConfig, backend: str = "fallback", *,
                envs_per_job: int = DEFAULT_ENVS_PER_JOB, max_attempts: int = 3,
                ns3_options: dict[str, Any] | None = None) -> RayRollouts:
        """A rollout backend whose jobs run on this pool's workers, on environments of
        ``config`` simulated by ``backend`` ("fallback" or "ns3", with ``ns3_options`` for
        :class:`bridge.ns3.iab_env.Ns3IABVectorEnv`)."""
        if backend not in BACKENDS:
            raise ConfigError(f"backend={backend!r}: expected one of {list(BACKENDS)}")
        if ns3_options and backend != "ns3":
            raise ConfigError(f"ns3_options {sorted(ns3_options)} only apply to backend='ns3'")
        return RayRollouts(self, EnvSpec(backend, config.to_dict(), dict(ns3_options or {})),
                           config, envs_per_job, max_attempts)

    # ------------------------------------------------------------------ jobs
    def _replace(self, w: int, stats: RolloutStats) -> None:
        old = self.workers[w]
        try:
            self._ray.kill(old, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead
            pass
        self.workers[w] = self._spawn()
        self._held[w] = OrderedDict()
        self.infos[w] = self._wait_ready([self.workers[w]])[0]
        stats.worker_replacements += 1

    def _pick(self, queue: deque[RolloutJob], w: int, spec: EnvSpec) -> RolloutJob:
        """The first queued job whose environment worker ``w`` holds (its ns-3 processes
        continue the slots' episodes), else the first queued job no other worker holds, else
        the first one."""
        held = self._held[w]
        for i, job in enumerate(queue):
            if env_key(spec, job) in held:
                del queue[i]
                return job
        others = [h for v, h in enumerate(self._held) if v != w]
        for i, job in enumerate(queue):
            if not any(env_key(spec, job) in h for h in others):
                del queue[i]
                return job
        return queue.popleft()

    def _holds(self, w: int, key: tuple[Any, ...]) -> None:
        held = self._held[w]
        held[key] = None
        held.move_to_end(key)
        while len(held) > self.max_envs:
            held.popitem(last=False)

    def run(self, spec: EnvSpec, jobs: Sequence[RolloutJob], stats: RolloutStats,
            max_attempts: int = 3) -> list[Trajectory]:
        """Run ``jobs`` on the workers, one job per idle worker at a time; see the module
        docstring for what happens when something fails."""
        ray = self._ray
        check_jobs(jobs)
        lost = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError,
                ray.exceptions.LocalRayletDiedError)
        policy_refs: dict[int, Any] = {}  # one object-store copy per distinct snapshot
        queue = deque(jobs)
        attempts: dict[int, int] = {}
        results: dict[int, Trajectory] = {}
        inflight: dict[Any, _Flight] = {}

        def retry(flight: _Flight, cause: str) -> None:
            stats.failed(f"job {flight.job.job_id} attempt {flight.attempt} on "
                         f"{self.infos[flight.worker]['name']}: {cause}")
            if flight.attempt >= max_attempts:
                raise attempts_exhausted([flight.job], flight.attempt, cause)
            stats.retries += 1
            queue.appendleft(flight.job)

        while queue or inflight:
            busy = {f.worker for f in inflight.values()}
            for w in range(len(self.workers)):
                if w in busy or not queue:
                    continue
                job = self._pick(queue, w, spec)
                assert job.policy is not None
                if id(job.policy) not in policy_refs:
                    policy_refs[id(job.policy)] = ray.put(job.policy)
                attempts[job.job_id] = attempts.get(job.job_id, 0) + 1
                ref = self.workers[w].run.remote(spec, job.without_policy(),
                                                 policy_refs[id(job.policy)])
                inflight[ref] = _Flight(job, w, time.monotonic(), attempts[job.job_id])
                self._holds(w, env_key(spec, job))
                if self.on_dispatch is not None:
                    self.on_dispatch(job, self.infos[w]["name"])
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=self.poll_s)
            for ref in ready:
                flight = inflight.pop(ref)
                try:
                    trajectory = ray.get(ref)
                except lost as exc:
                    self._replace(flight.worker, stats)
                    retry(flight, f"worker lost ({type(exc).__name__})")
                    continue
                except ray.exceptions.RayTaskError as exc:
                    if isinstance(exc.cause, WorkerEnvFailure):
                        retry(flight, str(exc.cause))
                        continue
                    raise RolloutError(f"job {flight.job.job_id} failed on "
                                       f"{self.infos[flight.worker]['name']}: "
                                       f"{type(exc.cause).__name__}: {exc.cause}") from None
                trajectory.check(flight.job, spec.frames)
                trajectory.attempt = flight.attempt
                results[trajectory.job_id] = trajectory
            now = time.monotonic()
            for ref, flight in list(inflight.items()):
                if now - flight.started > self.job_timeout_s:
                    del inflight[ref]
                    self._replace(flight.worker, stats)
                    retry(flight, f"no result within {self.job_timeout_s:.0f} s")
        out = [results[job.job_id] for job in jobs]
        stats.completed(out)
        return out

    # ------------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Stop the workers (their environments and ns-3 processes with them) and, if this
        pool connected to Ray, disconnect (a ``local`` cluster stops)."""
        ray = self._ray
        if self.workers:
            try:
                ray.wait([w.close.remote() for w in self.workers],
                         num_returns=len(self.workers), timeout=30)
            except Exception:  # noqa: BLE001 - dead workers need no closing
                pass
            for w in self.workers:
                try:
                    ray.kill(w, no_restart=True)
                except Exception:  # noqa: BLE001
                    pass
            self.workers = []
        if self._connected_here and ray.is_initialized():
            ray.shutdown()
            self._connected_here = False

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RayRollouts(RolloutBackend):
    """A rollout backend for one scenario config whose jobs run on a :class:`RayPool` (its
    own statistics; the pool is closed by its owner, not here)."""

    def __init__(self, pool: RayPool, spec: EnvSpec, config: ScenarioConfig,
                 envs_per_job: int = DEFAULT_ENVS_PER_JOB, max_attempts: int = 3) -> None:
        super().__init__(envs_per_job, max_attempts)
        self.pool = pool
        self.spec = spec
        self._config = config

    @property
    def config(self) -> ScenarioConfig:
        return self._config

    def run(self, jobs: Sequence[RolloutJob]) -> list[Trajectory]:
        return self.pool.run(self.spec, jobs, self.stats, self.max_attempts)

    def close(self) -> None:
        """Nothing to release: the environments belong to the pool's workers."""
