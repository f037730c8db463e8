"""The local rollout backend on ns-3: a simulator that keeps dying is retried, then reported
with the jobs and the simulator's last words."""

from __future__ import annotations

import pytest

from agents.rollouts import LocalRollouts, RolloutError
from bridge.config import ScenarioConfig
from bridge.contract import make_vector_env
from tests.rollout_checks import BROKEN_NS3_ARGS, mixed_jobs

pytestmark = pytest.mark.ns3


def test_a_simulator_that_keeps_dying_is_retried_then_reported(scenario_build_dir) -> None:
    config = ScenarioConfig().replace(
        topology__n_ue=4, topology__max_ues=6, topology__n_iab=1, topology__max_iab=1,
        radio__n_channels=2, dynamics__episode_frames=5)
    made = []

    def factory(n: int):
        made.append(make_vector_env("ns3", n, config=config, scenario_args=BROKEN_NS3_ARGS))
        return made[-1]

    jobs = mixed_jobs(config, envs_per_job=3)
    backend = LocalRollouts(factory, config, envs_per_job=3)
    with pytest.raises(RolloutError) as info:
        backend.run(jobs)
    message = str(info.value)
    assert f"rollout jobs {jobs[0].job_id}, {jobs[1].job_id}" in message
    assert "failed 3 times" in message and "BeamConvention=sideways" in message
    assert len(made) == 3 and backend.stats.retries == 2 * len(jobs)
    assert all(pid is None for env in made for pid in env.pids)  # every process gone
    backend.close()
