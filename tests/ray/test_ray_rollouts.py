"""Rollouts on Ray workers (a local cluster on loopback, two workers): the same trajectories
and the same training as in this process, nothing lost or used twice when a worker is killed
mid-rollout, loopback only, clear errors."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.budget import Budget
from agents.maml import MAMLAgent, MAMLConfig
from agents.rollouts import LocalRollouts
from agents.rollouts.ray_pool import RayPool, _check_reachable
from bridge.config import ConfigError
from bridge.fallback.env import IABVectorEnv
from bridge.layout import ObservationLayout
from bridge.tasks import TaskDistribution
from tests.ray.conftest import alive, thread_stack, wait_for
from tests.rollout_checks import assert_same_trajectory, mixed_jobs

pytestmark = pytest.mark.ray


# how long the killed-worker run may take before it counts as hung: well inside the suite's
# 600 s per-test timeout (which also covers the session pool's start), far beyond the time a
# slow run takes (on an idle 2-core machine ~15 s, with the machine busy a few times that)
RUN_DEADLINE_S = 400


def local(config, envs_per_job: int = 2) -> LocalRollouts:
    return LocalRollouts(lambda n: IABVectorEnv(n, config), config, envs_per_job=envs_per_job)


def test_ray_and_local_rollouts_are_identical(pool, tiny_config) -> None:
    for kwargs in ({"episodes": 2, "first_episode": 1}, {"episodes": 2, "recurrent": True}):
        jobs = mixed_jobs(tiny_config, **kwargs)
        remote = pool.backend(tiny_config, envs_per_job=2)
        got = remote.run(jobs)
        for a, b in zip(got, local(tiny_config).run(jobs)):
            assert_same_trajectory(a, b)
        assert len({t.worker for t in got}) == 2  # both workers took jobs
        assert remote.stats.jobs == len(jobs) and remote.stats.retries == 0


def test_meta_training_on_ray_equals_meta_training_in_process(pool, tiny_config) -> None:
    """MAML's meta-batch (per-task jobs, adapted policies) gives the same weights."""
    budget = Budget(name="test", episode_frames=20, meta_train_env_steps=320, num_envs=4,
                    meta_batch_tasks=2, adapt_episodes=1, adapt_envs=2, n_test_tasks=1,
                    seeds=(0,), envs_per_job=1)
    tasks = TaskDistribution.for_config(tiny_config)
    layout = ObservationLayout.from_config(tiny_config)
    weights, logs = [], []
    for rollouts in (local(tiny_config, 1), pool.backend(tiny_config, envs_per_job=1)):
        torch.manual_seed(3)
        agent = MAMLAgent(layout, MAMLConfig(warm_start="none", teacher_coef=0.0), seed=3)
        log: list[dict[str, float]] = []
        info = agent.meta_train(rollouts, tasks, budget, log.append)
        assert info["iterations"] == 2 and rollouts.stats.jobs == 2 * 2 * 2 * 2
        weights.append({k: v.clone() for k, v in agent.actor.state_dict().items()})
        logs.append(log)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert logs[0][-1]["post_adapt_episode_return"] == logs[1][-1]["post_adapt_episode_return"]


def test_a_worker_killed_mid_rollout_loses_and_duplicates_nothing(pool, dispatch_log,
                                                                  tiny_config) -> None:
    jobs = mixed_jobs(tiny_config, episodes=40)  # about a second per job
    expected = local(tiny_config).run(jobs)
    remote = pool.backend(tiny_config, envs_per_job=2)
    pids = {i["name"]: i["pid"] for i in pool.infos}
    first = len(dispatch_log.entries)
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["trajectories"] = remote.run(jobs)
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)  # a hung run must not keep pytest alive
    thread.start()
    wait_for(lambda: len(dispatch_log.entries) > first, 30, "a job to be dispatched")
    job_id, victim = dispatch_log.entries[first]
    threading.Event().wait(0.3)  # well inside the job
    os.kill(pids[victim], signal.SIGKILL)
    # generous but finite: the run itself takes ~15 s on an idle machine and a few times that
    # under load; a run that never returns (a lost job, a wait on a dead worker) fails here,
    # with where it waits
    thread.join(RUN_DEADLINE_S)
    assert not thread.is_alive(), (f"the run did not return within {RUN_DEADLINE_S} s; it "
                                   f"waits in:\n{thread_stack(thread)}")
    assert "error" not in result, result.get("error")
    got = result["trajectories"]
    assert [t.job_id for t in got] == [j.job_id for j in jobs]  # each job once, in order
    for a, b in zip(got, expected):
        assert_same_trajectory(a, b)
    assert next(t for t in got if t.job_id == job_id).attempt == 2
    assert remote.stats.retries == 1 and remote.stats.worker_replacements == 1
    # nothing run twice beyond the one re-run: the killed job was handed out twice, every
    # other job once
    handed_out = [j for j, _ in dispatch_log.entries[first:]]
    assert remote.stats.jobs == len(jobs)
    assert sorted(handed_out) == sorted([j.job_id for j in jobs] + [job_id])
    assert "worker lost" in remote.stats.failures[0]
    assert not alive(pids[victim])
    assert len(pool.workers) == 2 and pids[victim] not in pool.worker_pids()


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_the_rollout_workers_run_at_the_drivers_priority(pool) -> None:
    """Ray renices its workers to 15 unless told otherwise; the rollout workers do the run's
    work and, niced, starved on a busy machine (a killed worker's replacement took minutes to
    start)."""
    assert pool.worker_pids()
    assert [_niceness(pid) for pid in pool.worker_pids()] == [_niceness(os.getpid())] * len(
        pool.workers)


def _listening_sockets() -> dict[int, str]:
    """inode -> local address of every listening TCP socket on this machine."""
    out = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(path).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                out[int(fields[9])] = fields[1]
    return out


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def _descendants(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - out
        out |= frontier
    return out


def test_the_ray_cluster_listens_on_loopback_only(pool) -> None:
    listening = _listening_sockets()
    ours = {inode: listening[inode] for p in {os.getpid(), *_descendants(os.getpid())}
            for inode in _socket_inodes(p) if inode in listening}
    assert len(ours) >= 3  # GCS, raylet, workers
    loopback = ("0100007F:", "0000000000000000FFFF00000100007F:",
                "00000000000000000000000001000000:")
    assert all(addr.startswith(loopback) for addr in ours.values()), ours


def test_bad_pool_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="--ray-workers=0"):
        RayPool("local", 0)
    with pytest.raises(ConfigError, match="job_timeout_s=-1"):
        RayPool("local", 1, job_timeout_s=-1)

    # malformed or unreachable addresses fail at once (Ray itself retries for minutes)
    with pytest.raises(ConfigError, match="expected 'local', 'auto'"):
        RayPool("headnode", 1)
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1"):
        with pytest.raises(ConfigError, match="nothing answers at 127.0.0.1:1"):
            _check_reachable(address, 5.0)


def test_a_second_cluster_address_is_refused(pool) -> None:
    with pytest.raises(ConfigError, match="already connected to the Ray cluster at"):
        RayPool("127.0.0.1:1", 1)


def test_bad_backend_arguments_are_refused(pool, tiny_config) -> None:
    with pytest.raises(ConfigError, match="backend='omnet'"):
        pool.backend(tiny_config, "omnet")
    with pytest.raises(ConfigError, match="only apply to backend='ns3'"):
        pool.backend(tiny_config, ns3_options={"endpoint": "unix"})


def test_a_bug_in_a_job_is_reported_not_retried(pool, tiny_config) -> None:
    jobs = mixed_jobs(tiny_config)
    broken = jobs[0].with_policy(type(jobs[0].policy)(
        jobs[0].policy.layout, jobs[0].policy.arch, {"nothing": np.zeros(1)}))
    remote = pool.backend(tiny_config, envs_per_job=2)
    with pytest.raises(Exception, match="does not fit its architecture"):
        remote.run([broken])
    assert remote.stats.retries == 0
