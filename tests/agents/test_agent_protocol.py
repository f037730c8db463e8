"""The meta-train / meta-test protocol runs every agent end to end and returns plain data."""

from __future__ import annotations

import json

from agents.base import Budget
from agents.protocol import AGENT_NAMES, run_protocol
from bridge.tasks import TaskDistribution

TINY_BUDGET = Budget(name="test", episode_frames=10, meta_train_env_steps=1_500, num_envs=4,
                     meta_batch_tasks=2, adapt_episodes=2, adapt_envs=2, n_test_tasks=1,
                     seeds=(0,), max_meta_train_s=5.0)


def test_protocol_runs_all_agents_and_is_json(tiny_config) -> None:
    tasks = TaskDistribution.from_dict({
        "train": {"n_ue": [[2, 4]], "topology": ["star"]},
        "test": {"n_ue": [[4, 6]], "topology": ["star"]}}, max_ues=6)
    result = run_protocol(AGENT_NAMES, TINY_BUDGET, tiny_config, tasks)
    json.dumps(result)
    assert tasks.contains("test", tasks.sample("test", 0)[0])
    for name in AGENT_NAMES:
        summary = result["agents"][name]
        # PPO is the from-scratch baseline: its meta-training is free by design
        if name == "ppo":
            assert summary["meta_train_env_steps"]["mean"] == 0
        else:
            assert summary["meta_train_env_steps"]["mean"] > 0
        adaptation = summary["adaptation"]
        assert adaptation["episodes"] == [0, 1, 2]
        for metric in ("throughput_mbps", "sinr_violation_rate", "latency_violation_rate",
                       "jain_fairness"):
            assert len(adaptation[metric]["mean"]) == 3
            assert len(adaptation[metric]["ci95"]) == 3
