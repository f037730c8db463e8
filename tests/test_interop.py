"""The environments work with other RL libraries: Stable-Baselines3 and sb3-contrib."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.fallback.env import IABEnv

sb3 = pytest.importorskip("stable_baselines3")


@pytest.fixture
def tiny_env(oracle_config):
    return IABEnv(oracle_config.replace(dynamics__episode_frames=16))


def test_stable_baselines3_ppo_trains_and_predicts(tiny_env):
    model = sb3.PPO("MlpPolicy", tiny_env, n_steps=32, batch_size=32, n_epochs=1, seed=0,
                    device="cpu")
    model.learn(64)
    obs, _ = tiny_env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert tiny_env.action_space.contains(action)
    tiny_env.step(action)


def test_sb3_contrib_maskable_ppo_never_takes_a_masked_action(tiny_env):
    contrib = pytest.importorskip("sb3_contrib")
    model = contrib.MaskablePPO("MlpPolicy", tiny_env, n_steps=32, batch_size=32, n_epochs=1,
                                seed=0, device="cpu")
    model.learn(64)
    obs, info = tiny_env.reset(seed=1)
    for _ in range(16):
        action, _ = model.predict(obs, action_masks=tiny_env.action_masks())
        allowed = np.take_along_axis(info["action_mask"], action[:, None], axis=1)[:, 0]
        assert allowed.all()
        obs, _, _, trunc, info = tiny_env.step(action)
        assert info["invalid_actions"] == 0
        if trunc:
            break
