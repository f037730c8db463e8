"""The shared core: masked sampling, GAE with truncation, checkpoints."""

from __future__ import annotations

import numpy as np
import torch

from agents.policy_gradient import MaskedMultiCategorical, compute_gae
from agents.ppo import PPOAgent
from agents.rollouts.trajectory import EnvCursor, collect
from bridge.fallback.env import IABVectorEnv


def test_masked_choices_are_never_sampled() -> None:
    torch.manual_seed(0)
    mask = torch.rand(512, 12, 7) < 0.3
    mask[..., 0] = True  # idle is always allowed
    # give masked choices the largest logits: masking, not the logits, must exclude them
    logits = torch.where(mask, torch.zeros(()), torch.full((), 50.0)) + torch.randn(512, 12, 7)
    dist = MaskedMultiCategorical(logits, mask)
    for _ in range(20):
        action = dist.sample()
        assert mask.gather(-1, action.unsqueeze(-1)).all()
    assert mask.gather(-1, dist.mode().unsqueeze(-1)).all()
    probs = dist.probs()
    assert torch.all(probs[~mask] == 0)
    assert torch.allclose(probs.sum(-1), torch.ones(512, 12))
    assert torch.isfinite(dist.entropy()).all() and torch.isfinite(dist.log_prob(action)).all()


def test_rollout_actions_respect_the_environment_mask(tiny_config) -> None:
    env = IABVectorEnv(8, tiny_config)
    agent = PPOAgent(env.layout, seed=0)
    cursor = EnvCursor.start(env, seed=3)
    from agents.ppo import sampling_policy

    rollout = collect(env, cursor, 45, sampling_policy(agent.model), env.layout)
    allowed = rollout.mask.gather(-1, rollout.action.unsqueeze(-1)).squeeze(-1)
    assert allowed.all()
    # the env counts masked choices it had to treat as idle: none
    assert all(r["invalid_actions"] == 0 for r in rollout.episode_records)


def test_gae_bootstraps_truncation_and_not_termination() -> None:
    gamma, lam = 0.9, 1.0
    rewards = torch.tensor([[1.0], [1.0]])
    values = torch.tensor([[0.0], [0.0]])
    next_values = torch.tensor([[0.0], [10.0]])
    continues = torch.tensor([[1.0], [0.0]])
    truncated, _ = compute_gae(rewards, values, next_values, torch.ones(2, 1), continues,
                               gamma, lam)
    terminated, _ = compute_gae(rewards, values, next_values, torch.tensor([[1.0], [0.0]]),
                                continues, gamma, lam)
    assert truncated[1, 0].item() == 1.0 + 0.9 * 10.0
    assert terminated[1, 0].item() == 1.0
    assert np.isclose(truncated[0, 0].item(), 1.0 + 0.9 * (1.0 + 9.0))


def test_reset_steps_are_excluded_and_final_obs_bootstraps(tiny_config) -> None:
    env = IABVectorEnv(4, tiny_config)
    agent = PPOAgent(env.layout, seed=0)
    from agents.ppo import sampling_policy

    rollout = collect(env, EnvCursor.start(env, seed=1), 25, sampling_policy(agent.model),
                      env.layout)
    frames = tiny_config.dynamics.episode_frames
    assert rollout.truncated[frames - 1].all() and not rollout.truncated[frames].any()
    # the step after truncation is the autoreset step: invalid, reward 0
    assert (rollout.valid[frames] == 0).all() and (rollout.reward[frames] == 0).all()
    assert (rollout.valid[:frames] == 1).all() and (rollout.valid[frames + 1:] == 1).all()
    adv, _ = rollout.episode_advantages(0.99, 0.95)
    # truncated step: delta = r + gamma * V(final obs) - V(s), no recursion across the cut
    t = frames - 1
    expected = rollout.reward[t] + 0.99 * rollout.value[t + 1] - rollout.value[t]
    assert torch.allclose(adv[t], expected, atol=1e-5)
