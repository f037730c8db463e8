"""The priority-weight action mode: zero weights are greedy max-SINR, weights steer it."""

from __future__ import annotations

import numpy as np

from agents.heuristics import make_heuristic
from bridge.config import ScenarioConfig
from bridge.fallback.env import IABEnv
from bridge.priority_action import PriorityWeights


def test_zero_weights_are_greedy_and_weights_steer(small_config: ScenarioConfig) -> None:
    env = PriorityWeights(IABEnv(small_config))
    obs, info = env.reset(seed=1)
    greedy = make_heuristic("greedy_max_sinr", env.layout, config=small_config)
    changed = 0
    rng = np.random.default_rng(0)
    for _ in range(10):
        expected = greedy.act(obs[None], info["action_mask"][None])[0]
        np.testing.assert_array_equal(env.allocation(np.zeros(env.layout.n_links)), expected)
        w = rng.normal(0, 3, env.layout.n_links)
        steered = env.allocation(w)
        changed += int((steered != expected).any())
        assert info["action_mask"][np.arange(len(steered)), steered].all()
        obs, _, _, _, info = env.step(w)
        assert info["half_duplex_conflicts"] == 0
    assert changed > 0
    env.close()
