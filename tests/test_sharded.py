"""The multi-process vector environment equals the single-process one."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.fallback.env import IABVectorEnv
from bridge.fallback.sharded import ShardedIABVectorEnv
from bridge.tasks import TaskDistribution


def test_sharded_equals_single_process(small_config):
    n, steps = 5, 65  # uneven shards; crosses two episode ends (autoreset)
    single = IABVectorEnv(n, small_config, task_split="train")
    sharded = ShardedIABVectorEnv(n, small_config, task_split="train", workers=2)
    try:
        a_obs, a_info = single.reset(seed=3)
        b_obs, b_info = sharded.reset(seed=3)
        assert np.array_equal(a_obs, b_obs)
        rng = np.random.default_rng(0)
        for _ in range(steps):
            act = np.where(a_info["action_mask"], rng.random(a_info["action_mask"].shape),
                           -1).argmax(-1)
            a = single.step(act)
            b = sharded.step(act)
            for x, y in zip(a[:4], b[:4]):
                assert np.array_equal(x, y)
            a_info, b_info = a[4], b[4]
            # every per-step info, bit for bit (most travel through shared memory)
            for key in set(a_info) | set(b_info):
                if key != "episode_metrics":
                    assert a_info[key].dtype == b_info[key].dtype, key
                    assert np.array_equal(a_info[key], b_info[key]), key
            if "episode_metrics" in a_info:
                assert np.array_equal(a_info["_episode_metrics"], b_info["_episode_metrics"])
                for k, v in a_info["episode_metrics"].items():
                    m = a_info["_episode_metrics"]
                    assert np.allclose(v[m], b_info["episode_metrics"][k][m]), k
        # pinned deployments go to the right shard
        tasks = TaskDistribution.for_config(small_config).sample("test", 1, n)
        single.set_tasks(tasks, list(range(n)))
        sharded.set_tasks(tasks, list(range(n)))
        assert np.array_equal(single.reset(seed=9)[0], sharded.reset(seed=9)[0])
        assert [i.n_ue for i in sharded.instances] == [t.n_ue for t in tasks]
    finally:
        procs = list(sharded._procs)
        sharded.close()
    assert all(not p.is_alive() for p in procs)


def test_sharded_refuses_bad_input(small_config):
    with pytest.raises(ValueError, match="workers"):
        ShardedIABVectorEnv(2, small_config, workers=3)
    env = ShardedIABVectorEnv(2, small_config, workers=2)
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros((3, 12), dtype=np.int64))
        with pytest.raises(ValueError, match="out of range"):
            env.step(np.full((2, 12), 999))
    finally:
        env.close()
