"""Out-of-range action values are reported as they were passed, not after an integer cast."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bridge.fallback.env import IABEnv


@pytest.mark.parametrize(
    ("value", "dtype", "shown"),
    [(1e19, np.float64, "1e+19"), (-1e19, np.float64, "-1e+19"),
     (2**63, np.uint64, str(2**63)), (10**19, np.uint64, str(10**19)),
     (2**31, np.int64, str(2**31))],
)
def test_out_of_range_action_is_reported_as_passed(tiny_config, value, dtype, shown) -> None:
    env = IABEnv(tiny_config)
    env.reset(seed=1)
    action = np.zeros(env.layout.action_size, dtype=dtype)
    action[1] = value
    with pytest.raises(ValueError, match=rf"action\[\[1\]\]={re.escape(shown)} is out of range"):
        env.step(action)


def test_mask_edits_forbid_exactly_the_named_link_channel_pairs(small_config) -> None:
    """without_pairs clears entry 1 + l of every base station's head on channel k where the
    pair (l, k) is marked, nothing else; idle_only_on is that with whole channels marked."""
    from bridge.layout import ObservationLayout

    lay = ObservationLayout.from_config(small_config)
    rng = np.random.default_rng(3)
    N, B, K, L = 3, lay.n_bs, lay.n_channels, lay.n_links
    mask = rng.random((N, B * K, 1 + L)) < 0.7
    pairs = rng.random((N, L, K)) < 0.4
    out = lay.without_pairs(mask, pairs)
    expected = mask.copy()
    for n, b, k, link in np.ndindex(N, B, K, L):
        if pairs[n, link, k]:
            expected[n, b * K + k, 1 + link] = False
    assert np.array_equal(out, expected)
    assert mask.any() and not np.array_equal(out, mask)  # a copy, edited
    channels = rng.random((N, K)) < 0.5
    idle = lay.idle_only_on(mask, channels)
    grid = idle.reshape(N, B, K, 1 + L)
    assert not grid[..., 1:][np.broadcast_to(channels[:, None, :], (N, B, K))].any()
    assert np.array_equal(grid[..., 0], mask.reshape(N, B, K, 1 + L)[..., 0])
    assert np.array_equal(idle, lay.without_pairs(
        mask, np.broadcast_to(channels[:, None, :], (N, L, K))))
