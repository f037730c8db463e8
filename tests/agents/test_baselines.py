"""Heuristics and the exhaustive upper bound."""

from __future__ import annotations

import numpy as np
import pytest

from agents.heuristics import HEURISTICS, make_heuristic
from agents.oracle import ExhaustiveUpperBound, best_action, candidate_actions
from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv


@pytest.mark.parametrize("name", sorted(HEURISTICS))
def test_heuristics_take_only_allowed_actions(small_config, name):
    env = IABVectorEnv(4, small_config.replace(dynamics__incumbent_activity=0.3))
    obs, info = env.reset(seed=0)
    policy = make_heuristic(name, env.layout, seed=0)
    policy.reset(env.num_envs)
    for _ in range(40):
        act = policy.act(obs, info["action_mask"])
        allowed = np.take_along_axis(info["action_mask"], act[..., None], axis=-1)[..., 0]
        assert allowed.all()
        obs, _, _, _, info = env.step(act)
        assert info["invalid_actions"].sum() == 0
        assert info["half_duplex_conflicts"].sum() == 0


def test_heuristics_beat_idle_and_order_sensibly(small_config):
    env = IABVectorEnv(4, small_config)
    results = {}
    for name in ("random", "greedy_max_sinr"):
        obs, info = env.reset(seed=3)
        policy = make_heuristic(name, env.layout, seed=0)
        tp = []
        for _ in range(small_config.dynamics.episode_frames):
            obs, _, _, trunc, info = env.step(policy.act(obs, info["action_mask"]))
        tp = info["episode_metrics"]["throughput_mbps"]
        results[name] = float(np.mean(tp))
    assert results["greedy_max_sinr"] > results["random"] > 0


def test_upper_bound_is_never_beaten_frame_by_frame(oracle_config):
    """Along each heuristic's trajectory, the oracle's best frame reward is >= the
    heuristic's reward from the same state."""
    env = IABVectorEnv(2, oracle_config.replace(dynamics__incumbent_activity=0.2))
    for name in sorted(HEURISTICS):
        obs, info = env.reset(seed=4)
        policy = make_heuristic(name, env.layout, seed=1)
        for _ in range(8):
            core = env.core
            bounds = [best_action(core, i)[1] for i in range(core.N)]
            act = policy.act(obs, info["action_mask"])
            obs, reward, _, _, info = env.step(act)
            assert np.all(np.array(bounds) >= reward - 1e-12), name


def test_upper_bound_policy_beats_heuristics_over_episodes(oracle_config):
    env = IABVectorEnv(2, oracle_config)
    oracle = ExhaustiveUpperBound(objective="reward")
    obs, info = env.reset(seed=9)
    for _ in range(oracle_config.dynamics.episode_frames):
        obs, _, _, trunc, info = env.step(oracle.act_on_core(env.core))
    ub = info["episode_metrics"]["episode_return"].mean()
    for name in sorted(HEURISTICS):
        obs, info = env.reset(seed=9)
        policy = make_heuristic(name, env.layout, seed=0)
        for _ in range(oracle_config.dynamics.episode_frames):
            obs, _, _, trunc, info = env.step(policy.act(obs, info["action_mask"]))
        assert info["episode_metrics"]["episode_return"].mean() <= ub + 1e-9, name


def test_enumeration_is_complete_and_refuses_large_configs(oracle_config):
    env = IABVectorEnv(1, oracle_config.replace(dynamics__incumbent_activity=0.0))
    env.reset(seed=0)
    cand = candidate_actions(env.core, 0)
    mask = env.core.action_mask()[0]
    per_entry = mask.sum(axis=1)
    assert len(cand) <= np.prod(per_entry)
    assert len({tuple(c) for c in cand}) == len(cand)
    # exactly the allowed combinations without a half-duplex conflict: per channel, every
    # (donor, IAB) pair except "donor serves the backhaul while the IAB node transmits"
    k = env.core.K
    donor, iab = per_entry[:k], per_entry[k: 2 * k]
    assert len(cand) == np.prod(donor * iab - (iab - 1))
    big = IABVectorEnv(1, ScenarioConfig())
    big.reset(seed=0)
    with pytest.raises(ValueError, match="2 base stations x 3 channels"):
        ExhaustiveUpperBound().act_on_core(big.core)
