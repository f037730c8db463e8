"""The priority-weight action mode: zero weights are greedy max-SINR, weights steer it."""

from __future__ import annotations

import numpy as np
import pytest

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


@pytest.mark.parametrize("backend", ["fallback", pytest.param("ns3", marks=pytest.mark.ns3)])
def test_priority_mode_is_registered_on_both_backends(backend: str, tiny_config: ScenarioConfig,
                                                      request: pytest.FixtureRequest) -> None:
    """``gymnasium.make`` gives the priority-weight mode on either backend: a Box of one weight
    per link, zero weights scheduled as greedy max-SINR schedules the same state."""
    import gymnasium

    import bridge

    env_id = {"fallback": bridge.FALLBACK_PRIORITY_ENV_ID, "ns3": bridge.NS3_PRIORITY_ENV_ID}
    options = {}
    if backend == "ns3":  # the build only where ns-3 runs
        options["binary"] = request.getfixturevalue("scenario_build_dir") / "bin" / "iab-scenario"
    env = gymnasium.make(env_id[backend], config=tiny_config, **options)
    try:
        layout = env.unwrapped.layout
        assert isinstance(env.action_space, gymnasium.spaces.Box)
        assert env.action_space.shape == (layout.n_links,)
        obs, info = env.reset(seed=3)
        greedy = make_heuristic("greedy_max_sinr", layout, config=tiny_config)
        for _ in range(3):
            expected = greedy.act(obs[None], info["action_mask"][None])[0]
            obs, _, _, _, info = env.step(np.zeros(layout.n_links, dtype=np.float32))
            np.testing.assert_array_equal(info["allocation_action"], expected)
    finally:
        env.close()


@pytest.mark.slow
def test_sb3_ppo_on_priority_weights_beats_masked_random(tiny_config: ScenarioConfig) -> None:
    """A short Stable-Baselines3 PPO run on the priority-weight mode delivers more than the
    masked random policy on the same episodes (deterministic actions)."""
    sb3 = pytest.importorskip("stable_baselines3")
    import torch

    torch.set_num_threads(1)
    train = PriorityWeights(IABEnv(tiny_config))
    model = sb3.PPO("MlpPolicy", train, n_steps=128, batch_size=64, n_epochs=2, seed=0,
                    device="cpu", verbose=0)
    model.learn(256)

    def episode(act, wrap: bool, seed: int) -> float:
        env = PriorityWeights(IABEnv(tiny_config)) if wrap else IABEnv(tiny_config)
        obs, info = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(act(obs, info))
            done = term or trunc
        env.close()
        return float(info["episode_metrics"]["throughput_mbps"])

    rng = np.random.default_rng(0)
    seeds = [11, 12, 13]
    learned = np.mean([episode(lambda o, i: model.predict(o, deterministic=True)[0], True, s)
                       for s in seeds])
    random = np.mean([episode(lambda o, i: np.where(i["action_mask"], rng.random(
        i["action_mask"].shape), -1.0).argmax(-1), False, s) for s in seeds])
    assert learned > random, (learned, random)
