"""ns-3 rollouts on Ray workers: each worker owns its iab-scenario processes; the same
trajectories as ns-3 in this process; a simulator or a worker killed mid-rollout costs one
re-run and leaves no process behind."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from agents.rollouts import LocalRollouts
from bridge.contract import make_vector_env
from tests.ray.conftest import alive, children, process_name, wait_for
from tests.rollout_checks import BROKEN_NS3_ARGS, assert_same_trajectory, mixed_jobs

pytestmark = [pytest.mark.ray, pytest.mark.ns3]


@pytest.fixture(scope="module")
def ns3_config(scenario_build_dir):
    from bridge.config import ScenarioConfig

    return ScenarioConfig().replace(
        topology__n_ue=4, topology__max_ues=6, topology__n_iab=1, topology__max_iab=1,
        radio__n_channels=2, dynamics__episode_frames=10)


def scenario_children(pid: int) -> list[int]:
    return [c for c in children(pid) if process_name(c) == "iab-scenario"]


def run_in_thread(backend, jobs) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        try:
            result["trajectories"] = backend.run(jobs)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def kill_mid_rollout(pool, dispatch_log, backend, jobs, kill) -> dict:
    """Run ``jobs`` (each starts its slots at episode 0, so in a fresh process) and call
    ``kill(worker_pid, new_scenarios)`` as soon as the worker of the first job has started
    that job's scenario process: the job is then certainly in progress (its processes of
    earlier jobs may be idle). Returns the thread's result."""
    first = len(dispatch_log.entries)
    pids = {i["name"]: i["pid"] for i in pool.infos}
    before = {pid: set(scenario_children(pid)) for pid in pids.values()}
    thread, result = run_in_thread(backend, jobs)
    wait_for(lambda: len(dispatch_log.entries) > first, 60, "a job to be dispatched")
    worker_pid = pids[dispatch_log.entries[first][1]]
    new = wait_for(lambda: sorted(set(scenario_children(worker_pid)) - before[worker_pid]), 60,
                   "the job's iab-scenario process")
    kill(worker_pid, new)
    thread.join(300)
    assert not thread.is_alive() and "error" not in result, result.get("error")
    return result


def test_ns3_rollouts_on_ray(pool, dispatch_log, ns3_config) -> None:
    jobs = mixed_jobs(ns3_config, episodes=20, envs_per_job=1)
    local = LocalRollouts(lambda n: make_vector_env("ns3", n, config=ns3_config), ns3_config,
                          envs_per_job=1)
    try:
        expected = local.run(jobs)
    finally:
        local.close()
    remote = pool.backend(ns3_config, "ns3", envs_per_job=1)

    # same trajectories as the ns-3 processes of this one
    for a, b in zip(remote.run(jobs), expected):
        assert_same_trajectory(a, b)

    # a scenario process killed mid-rollout: its worker reports it, the job runs again
    victims: list[int] = []

    def kill_simulators(worker_pid: int, new: list[int]) -> None:
        victims.extend(new)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)

    result = kill_mid_rollout(pool, dispatch_log, remote, jobs, kill_simulators)
    for a, b in zip(result["trajectories"], expected):
        assert_same_trajectory(a, b)
    assert remote.stats.retries == 1 and remote.stats.worker_replacements == 0
    assert "SimulatorDied" in remote.stats.failures[0]
    assert victims and not any(alive(p) for p in victims)

    # the worker itself killed mid-rollout: replaced, job re-run, its simulators exit too
    orphans: list[int] = []

    def kill_worker(worker_pid: int, new: list[int]) -> None:
        orphans.extend(scenario_children(worker_pid))
        os.kill(worker_pid, signal.SIGKILL)

    result = kill_mid_rollout(pool, dispatch_log, remote, jobs, kill_worker)
    for a, b in zip(result["trajectories"], expected):
        assert_same_trajectory(a, b)
    assert remote.stats.retries == 2 and remote.stats.worker_replacements == 1
    assert orphans
    wait_for(lambda: not any(alive(p) for p in orphans), 15,
             "the dead worker's scenario processes to exit")
    assert remote.stats.jobs == 3 * len(jobs)


def test_a_job_failing_on_every_attempt_is_reported(pool, ns3_config) -> None:
    from agents.rollouts import RolloutError

    remote = pool.backend(ns3_config, "ns3", envs_per_job=6,
                          ns3_options={"scenario_args": BROKEN_NS3_ARGS})
    jobs = mixed_jobs(ns3_config, envs_per_job=6)[:1]
    with pytest.raises(RolloutError, match="failed 3 times") as info:
        remote.run(jobs)
    assert "SimulatorDied" in str(info.value) and "sideways" in str(info.value)
    assert remote.stats.retries == 2 and remote.stats.worker_replacements == 0
