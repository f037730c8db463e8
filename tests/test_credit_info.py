"""Per-base-station step info (credit assignment): the parts add up to the frame totals."""

from __future__ import annotations

import numpy as np

from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv


def test_per_base_station_info_adds_up(small_config: ScenarioConfig) -> None:
    env = IABVectorEnv(6, small_config)
    env.reset(seed=4)
    rng = np.random.default_rng(0)
    seen = 0
    for _ in range(10):
        mask = env.core.action_mask()
        action = np.where(mask, rng.random(mask.shape), -1).argmax(-1)
        _, _, _, _, info = env.step(action)
        np.testing.assert_array_equal(info["delivered_bytes_bs"].sum(1), info["delivered_bytes"])
        np.testing.assert_array_equal(info["sinr_violations_bs"].sum(1), info["sinr_violations"])
        assert info["delivered_bytes_bs"].shape == (6, small_config.n_bs_max)
        seen += int((info["delivered_bytes_bs"][:, 1:] > 0).sum())
    assert seen > 0  # IAB nodes deliver too, so the split is not trivial
    env.close()
