"""Checkpoints: save then load gives identical actions; loading reads tensors only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agents.registry import load_agent, make_agent
from bridge.fallback.env import IABVectorEnv


@pytest.mark.parametrize("name", ["ppo", "maml", "rl2", "attention"])
def test_save_load_gives_identical_actions(name: str, tiny_config, tmp_path: Path) -> None:
    agent = make_agent(name, tiny_config, seed=3)
    # move the weights away from their seeded init so a silent re-init would be caught
    with torch.no_grad():
        for module in vars(agent).values():
            if isinstance(module, torch.nn.Module):
                for p in module.parameters():
                    p.add_(0.05 * torch.randn_like(p))
    path = tmp_path / f"{name}.pt"
    agent.save(path)
    loaded = load_agent(name, path)
    env = IABVectorEnv(4, tiny_config)
    obs, info = env.reset(seed=0)
    state_a = state_b = None
    for _ in range(6):
        torch.manual_seed(11)
        a, state_a = agent.act(obs, info["action_mask"], state_a)
        torch.manual_seed(11)
        b, state_b = loaded.act(obs, info["action_mask"], state_b)
        np.testing.assert_array_equal(a, b)
        det_a, _ = agent.act(obs, info["action_mask"], state_a, deterministic=True)
        det_b, _ = loaded.act(obs, info["action_mask"], state_b, deterministic=True)
        np.testing.assert_array_equal(det_a, det_b)
        obs, reward, term, trunc, info = env.step(a)
        if name in ("rl2", "attention"):
            state_a = agent.observe(state_a, reward, term | trunc)
            state_b = loaded.observe(state_b, reward, term | trunc)


def test_loading_refuses_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not an iabmeta agent checkpoint"):
        load_agent("ppo", path)
