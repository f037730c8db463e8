"""The shared allocation bookkeeping (bridge.allocation): the channel-by-channel heuristics
built on it choose exactly what their previous stand-alone loop chose."""

from __future__ import annotations

import numpy as np
import pytest

from agents.heuristics import GreedyMaxSinr, ProportionalFair, make_heuristic
from bridge.allocation import Allocation, frame_capacity_bytes, head_order, replay
from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv
from bridge.layout import BACKLOG_SCALE_BYTES, SNR_SCALE_DB, ObservationLayout


def reference_channel_by_channel(obs: np.ndarray, mask: np.ndarray, lay: ObservationLayout,
                                 score_fn, channel_hz: float, frame_s: float) -> np.ndarray:
    """The heuristics' loop before bridge.allocation existed (kept as the regression
    reference; max-SINR scores by capacity, PF is checked through its own class)."""
    n = obs.shape[0]
    f = lay.split(obs)
    cap = frame_capacity_bytes(f["cqi"] * SNR_SCALE_DB, channel_hz, frame_s)
    remaining = f["backlog_mb"][..., 0] * BACKLOG_SCALE_BYTES
    allowed = mask[:, :, 1:].reshape(n, lay.n_bs, lay.n_channels, lay.n_links)
    action = np.zeros((n, lay.n_bs, lay.n_channels), dtype=np.int64)
    rows = np.arange(n)
    for k in range(lay.n_channels):
        receiving = np.zeros((n, lay.n_bs), dtype=bool)
        for b in range(lay.n_bs):
            ok = allowed[:, b, k, :] & (remaining > 0) & ~receiving[:, b:b + 1]
            score = np.where(ok, score_fn(cap[:, :, k], remaining, k), -np.inf)
            best = score.argmax(axis=1)
            chosen = np.isfinite(score[rows, best])
            action[:, b, k] = np.where(chosen, best + 1, 0)
            give = np.where(chosen, cap[rows, best, k], 0.0)
            remaining[rows, best] -= give
            bh = chosen & (best < lay.n_bs - 1)
            receiving[rows[bh], best[bh] + 1] = True
    return action.reshape(n, -1)


def random_observations(lay: ObservationLayout, n: int, seed: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Observations with random CQI/backlog (some links empty) and random masks."""
    rng = np.random.default_rng(seed)
    obs = np.zeros((n, lay.size), dtype=np.float32)
    links = obs[:, : lay.n_links * lay.link_features].reshape(n, lay.n_links, -1)
    s = lay.slices()
    links[..., s["valid"]] = 1.0
    links[..., s["cqi"]] = rng.uniform(-1.0, 4.0, (n, lay.n_links, lay.n_channels))
    backlog = rng.exponential(0.05, (n, lay.n_links)) * (rng.random((n, lay.n_links)) < 0.7)
    links[..., s["backlog_mb"].start] = backlog
    obs[:, : lay.n_links * lay.link_features] = links.reshape(n, -1)
    parent = rng.integers(0, lay.n_bs, size=(n, lay.n_links))
    parent[:, : lay.n_bs - 1] = np.minimum(parent[:, : lay.n_bs - 1],
                                           np.arange(lay.n_bs - 1))  # backhaul l from b <= l
    free = rng.random((n, lay.n_channels)) < 0.8
    mask = np.zeros((n, lay.n_bs, lay.n_channels, 1 + lay.n_links), dtype=bool)
    mask[..., 0] = True
    mask[..., 1:] = ((parent[:, None, None, :] == np.arange(lay.n_bs)[None, :, None, None])
                     & free[:, None, :, None])
    return obs, mask.reshape(n, lay.action_size, 1 + lay.n_links)


@pytest.mark.parametrize("n_bs,n_links,n_channels", [(5, 28, 8), (2, 5, 3), (3, 8, 4)])
def test_greedy_matches_reference_on_random_observations(n_bs: int, n_links: int,
                                                         n_channels: int) -> None:
    lay = ObservationLayout(n_bs, n_links, n_channels)
    obs, mask = random_observations(lay, 256, seed=n_links)
    greedy = GreedyMaxSinr(lay, channel_hz=50e6, frame_s=0.01)
    ref = reference_channel_by_channel(obs, mask, lay, lambda cap, rem, k: cap, 50e6, 0.01)
    got = greedy._act(obs, mask)
    assert (got > 0).mean() > 0.2  # the observations make it schedule
    np.testing.assert_array_equal(got, ref)


def test_proportional_fair_matches_reference_over_frames() -> None:
    lay = ObservationLayout(3, 8, 4)
    pf = ProportionalFair(lay, channel_hz=50e6, frame_s=0.01)
    pf.reset(64)
    avg = np.full((64, lay.n_links), 1.0)
    for frame in range(5):
        obs, mask = random_observations(lay, 64, seed=100 + frame)
        served = np.zeros((64, lay.n_links))
        cur_avg = avg.copy()

        def score(cap, rem, k, cur_avg=cur_avg):
            return np.minimum(cap, rem) / cur_avg

        ref = reference_channel_by_channel(obs, mask, lay, score, 50e6, 0.01)
        got = pf._act(obs, mask)
        np.testing.assert_array_equal(got, ref)
        # the reference's served bytes, to advance its average like PF does
        alloc = Allocation.from_observation(obs, lay, 50e6, 0.01)
        for h in head_order(lay.n_bs, lay.n_channels):
            b, k = divmod(int(h), lay.n_channels)
            link = ref[:, h] - 1
            give = alloc.assign(b, k, link)
            np.add.at(served, (alloc.rows[link >= 0], link[link >= 0]), give[link >= 0])
        avg = (1 - 1 / pf.window) * avg + served / pf.window + 1e-6
        np.testing.assert_allclose(pf.avg, avg)


def test_head_order_puts_parents_first_on_each_channel() -> None:
    order = head_order(3, 2)  # heads b * K + k
    assert order.tolist() == [0, 2, 4, 1, 3, 5]


def test_replay_blocks_iab_node_where_its_backhaul_is_scheduled() -> None:
    lay = ObservationLayout(2, 4, 2)
    obs, _ = random_observations(lay, 1, seed=3)
    alloc = Allocation.from_observation(obs, lay, 50e6, 0.01)
    action = np.array([[1, 2, 3, 4]])  # donor: backhaul (link 0) on ch 0, link 1 on ch 1
    blocked, feats = replay(alloc, action, lay.n_channels, features=True)
    assert blocked.tolist() == [[False, False, True, False]]  # IAB node 1 on channel 0
    # features per channel (K, L, F); IAB node 1's link 2 on channel 0 was blocked, so
    # the replay credits nothing to it, as the simulator drops that transmission
    assert feats is not None and feats.shape == (1, 2, 4, 6)
    assert alloc.given[0].tolist() == [1, 1, 0, 1]


def test_heuristics_on_the_simulator_unchanged(small_config: ScenarioConfig) -> None:
    env = IABVectorEnv(4, small_config)
    obs, info = env.reset(seed=5)
    lay = env.layout
    greedy = make_heuristic("greedy_max_sinr", lay, config=small_config)
    hz, frame_s = small_config.radio.channel_bandwidth_hz, small_config.dynamics.frame_s
    for _ in range(6):
        ref = reference_channel_by_channel(obs, info["action_mask"], lay,
                                           lambda cap, rem, k: cap, hz, frame_s)
        action = greedy.act(obs, info["action_mask"])
        np.testing.assert_array_equal(action, ref)
        obs, _, _, _, info = env.step(action)
    env.close()


def _reference_head_features(alloc: Allocation, b: int, k: int) -> np.ndarray:
    """The per-head features as first written (one head at a time, best link of ``b``)."""
    cap = alloc.capacity[:, :, k]
    rem = np.maximum(alloc.remaining, 0.0)
    useful = np.where(cap > 0, np.minimum(cap, rem) / np.maximum(cap, 1e-9), 0.0)
    moved = np.minimum(cap, rem)
    best = np.where(alloc.parent == b, moved, 0.0).max(axis=1, keepdims=True)
    floor = np.exp(-5.0)
    return np.stack([useful, np.log(np.maximum(useful, floor)),
                     np.log(np.maximum(moved / np.maximum(best, 1e-9), floor)),
                     np.where(alloc.backlog > 0, rem / np.maximum(alloc.backlog, 1e-9), 0.0),
                     (rem <= 0).astype(float), alloc.given / alloc.n_channels], axis=-1)


def test_channel_at_once_equals_head_by_head() -> None:
    """All base stations of a channel decided at once (features once per channel, half
    duplex resolved in index order) give exactly the features, blocks and remaining backlog
    of deciding the heads one by one."""
    rng = np.random.default_rng(0)
    n, n_bs, n_links, n_channels = 64, 4, 12, 5
    capacity = rng.exponential(2e4, (n, n_links, n_channels))
    backlog = rng.exponential(5e4, (n, n_links)) * (rng.random((n, n_links)) < 0.8)
    parent = rng.integers(0, n_bs, (n, n_links))
    parent[:, : n_bs - 1] = rng.integers(0, np.arange(1, n_bs))  # backhaul l from b <= l
    parent[:, -1] = -1  # one padded row
    fast = Allocation(capacity, backlog, n_bs, parent)
    slow = Allocation(capacity, backlog, n_bs, parent)
    rows = np.arange(n)
    for k in range(n_channels):
        features = fast.channel_features(k)
        proposal = np.full((n, n_bs), -1)
        for b in range(n_bs):
            own = parent == b
            ref = _reference_head_features(slow, b, k)
            np.testing.assert_array_equal(features[own], ref[own])
            # a random own link (or idle), as a policy might pick
            pick = np.where(own, rng.random((n, n_links)), -1.0).argmax(axis=1)
            proposal[:, b] = np.where(own[rows, pick] & (rng.random(n) < 0.8), pick, -1)
        final, blocked = fast.resolve_half_duplex(k, proposal)
        for b in range(n_bs):
            assert (blocked[:, b] == slow.blocked[:, b, k]).all()
            slow.assign(b, k, np.where(slow.blocked[:, b, k], -1, proposal[:, b]))
        assert (final[blocked] == -1).all() and blocked[:, 1:].any()
        np.testing.assert_array_equal(fast.remaining, slow.remaining)
        np.testing.assert_array_equal(fast.given, slow.given)
        np.testing.assert_array_equal(fast.blocked, slow.blocked)
