"""Helpers shared by the rollout-layer tests (local, Ray, ns-3): jobs over a tiny network and
an exact comparison of trajectories."""

from __future__ import annotations

import numpy as np
import torch

from agents.networks import ActorCritic
from agents.rollouts import ARRAY_FIELDS, EnvSlot, PolicySnapshot, plan_jobs, task_slots
from bridge.layout import ObservationLayout
from bridge.tasks import TaskDistribution

# ns-3 scenario flags on which the IAB scenario aborts at start-up (NS_ABORT_MSG)
BROKEN_NS3_ARGS = ["--ns3::IabLinkGainModel::BeamConvention=sideways"]


def assert_same_trajectory(a, b) -> None:
    """Bit-identical arrays and episode records (where and on which attempt may differ)."""
    assert a.job_id == b.job_id
    for key in (*ARRAY_FIELDS, "next_value", "final_obs"):
        assert np.array_equal(a.arrays[key], b.arrays[key]), key
    assert a.episode_records == b.episode_records


def mixed_jobs(config, episodes: int = 1, first_episode: int = 0, envs_per_job: int = 2,
               recurrent: bool = False):
    """Jobs over three deployments with two different policies (3 + 2 + 1 environments)."""
    torch.manual_seed(0)
    layout = ObservationLayout.from_config(config)
    memory = "gru" if recurrent else "none"
    policy = PolicySnapshot.capture(ActorCritic(layout, idle_bias=-1.0, memory=memory))
    other = PolicySnapshot.capture(ActorCritic(layout, idle_bias=1.0, memory=memory))
    tasks = TaskDistribution.for_config(config).sample("train", 4, 3)
    groups = [(task_slots(tasks[0], 11, [1, 2, 3]), policy),
              (task_slots(tasks[1], 12, [4, 5]), other),
              ([EnvSlot(tasks[2], 13, 0, 6)], policy)]
    return plan_jobs(groups, envs_per_job=envs_per_job, episodes=episodes,
                     first_episode=first_episode, trial=recurrent)
