"""The smallest configurations the validator allows run through several autoresets.

Episode continuation on ns-3 used to ride in the action vector ([-1, s0, s1, s2]), so an action
of fewer than four entries (max_iab=0 with one or two channels) could not carry it; it is now
its own protocol field. On ns-3 the process must continue (same pid) and every episode must
see the traffic its seed gives on the fallback (the counter RNG), which proves each
continuation arrived with the right episode seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from bridge.config import ScenarioConfig
from bridge.contract import IABVectorEnvBase, make_vector_env

SMALLEST = {
    "one_entry": {"topology__n_iab": 0, "topology__max_iab": 0, "radio__n_channels": 1,
                  "topology__n_ue": 1, "topology__max_ues": 1},
    "two_entries": {"topology__n_iab": 0, "topology__max_iab": 0, "radio__n_channels": 2},
}
FRAMES = 3
EPISODES = 5  # four autoresets


def run_episodes(env: IABVectorEnvBase) -> tuple[list[np.ndarray], list[object]]:
    """Offered load of each environment in each episode, through next-step autoresets, and
    the scenario pids (ns-3) after the reset and at the end."""
    offered = []
    _, info = env.reset(seed=17)
    pids = [list(getattr(env, "pids", []))]
    rng = np.random.default_rng(0)
    for episode in range(EPISODES):
        for t in range(FRAMES):
            mask = info["action_mask"]
            pick = rng.integers(0, mask.sum(axis=-1))
            action = (mask.cumsum(axis=-1) > pick[..., None]).argmax(axis=-1)
            _, reward, _, trunc, info = env.step(action)
            assert trunc.all() == (t == FRAMES - 1)
        offered.append(info["episode_metrics"]["offered_mbps"])
        if episode < EPISODES - 1:
            _, reward, _, trunc, info = env.step(np.zeros_like(action))  # the autoreset step
            assert not trunc.any() and reward.tolist() == [0.0] * env.num_envs
    pids.append(list(getattr(env, "pids", [])))
    return offered, pids


@pytest.mark.parametrize("name", sorted(SMALLEST))
def test_smallest_configs_on_fallback(name: str) -> None:
    config = ScenarioConfig().replace(**SMALLEST[name], dynamics__episode_frames=FRAMES)
    env = make_vector_env("fallback", 2, config)
    assert env.layout.action_size == config.radio.n_channels
    offered, _ = run_episodes(env)
    assert len({tuple(o) for o in offered}) == EPISODES  # every episode its own traffic


@pytest.mark.ns3
@pytest.mark.parametrize("name", sorted(SMALLEST))
def test_smallest_configs_on_ns3_through_autoresets(name: str, scenario_build_dir) -> None:
    from bridge.ns3.build import scenario_binary

    config = ScenarioConfig().replace(**SMALLEST[name], dynamics__episode_frames=FRAMES)
    env = make_vector_env("ns3", 2, config,
                          binary=scenario_binary("iab-scenario", scenario_build_dir))
    try:
        offered, (pids_first, pids_last) = run_episodes(env)
        assert pids_last == pids_first  # continued in the same processes, never restarted
    finally:
        env.close()
    expected, _ = run_episodes(make_vector_env("fallback", 2, config))
    for got, want in zip(offered, expected):
        np.testing.assert_allclose(got, want, rtol=1e-9)
