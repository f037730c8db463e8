"""Per-base-station credit (``credit="base_station"``): each base station's share of the
reward (info["reward_bs"]) gets its own value, advantage and probability ratio over its own
heads; with a single base station it is exactly the joint scheme."""

from __future__ import annotations

import pytest
import torch

from agents.budget import Budget
from agents.networks import ActorCritic
from agents.policy_gradient import MaskedMultiCategorical, PPOLossConfig, ppo_loss
from agents.ppo import PPOAgent, PPOConfig, ppo_step, sampling_policy
from agents.registry import agent_config, make_agent
from agents.rollouts import LocalRollouts
from agents.rollouts.trajectory import EnvCursor, collect
from bridge.config import ConfigError
from bridge.fallback.env import IABVectorEnv
from bridge.tasks import TaskDistribution


def test_per_base_station_log_probs_add_up_to_the_joint_one() -> None:
    torch.manual_seed(0)
    n_bs, k = 3, 4
    mask = torch.rand(16, n_bs * k, 6) < 0.6
    mask[..., 0] = True
    dist = MaskedMultiCategorical(torch.randn(16, n_bs * k, 6), mask)
    action = dist.sample()
    per_bs = dist.credited_log_prob(action, "base_station", n_bs)
    assert per_bs.shape == (16, n_bs)
    torch.testing.assert_close(per_bs.sum(-1), dist.log_prob(action))
    # base station b owns heads b*K .. b*K+K-1
    heads = dist.head_log_prob(action)
    torch.testing.assert_close(per_bs[:, 1], heads[:, k:2 * k].sum(-1))


def test_one_base_station_credit_is_the_joint_loss() -> None:
    torch.manual_seed(1)
    n = 64
    new_lp, old_lp = torch.randn(n), torch.randn(n)
    adv, ret, new_v, old_v = (torch.randn(n) for _ in range(4))
    entropy = torch.rand(n)
    weight = (torch.rand(n) > 0.2).float()
    cfg = PPOLossConfig()
    joint, _ = ppo_loss(new_lp, old_lp, adv, new_v, old_v, ret, entropy, weight, cfg)
    split, _ = ppo_loss(*(x[:, None] for x in (new_lp, old_lp, adv, new_v, old_v, ret)),
                        entropy, weight, cfg)
    torch.testing.assert_close(split, joint)


def test_each_base_station_ratio_is_clipped_on_its_own() -> None:
    """A sample whose first base station's ratio moved far and whose second did not: the
    joint ratio is clipped as a whole, the per-base-station one keeps the second's
    gradient."""
    cfg = PPOLossConfig(clip_coef=0.2, ent_coef=0.0, vf_coef=0.0, norm_adv=False)
    old = torch.zeros(1, 2)
    new = torch.tensor([[1.0, 0.0]], requires_grad=True)
    adv = torch.ones(1, 2)
    zeros = torch.zeros(1, 2)
    loss, _ = ppo_loss(new, old, adv, zeros, zeros, zeros, torch.zeros(1), torch.ones(1), cfg)
    loss.backward()
    assert new.grad is not None
    assert new.grad[0, 0] == 0.0 and new.grad[0, 1] < 0.0  # descent raises the second
    joint_new = new.detach().sum(-1).requires_grad_(True)
    joint, _ = ppo_loss(joint_new, old.sum(-1), adv.sum(-1), zeros[:, 0], zeros[:, 0],
                        zeros[:, 0], torch.zeros(1), torch.ones(1), cfg)
    joint.backward()
    assert joint_new.grad is not None and joint_new.grad[0] == 0.0


def test_rollout_advantages_per_base_station(small_config) -> None:
    env = IABVectorEnv(4, small_config)
    model = ActorCritic(env.layout, credit="base_station")
    rollout = collect(env, EnvCursor.start(env, seed=2), 40, sampling_policy(model), env.layout)
    n_bs = env.layout.n_bs
    assert rollout.value.shape == (40, 4, n_bs)
    assert rollout.reward_bs is not None and rollout.reward_bs.shape == (40, 4, n_bs)
    torch.testing.assert_close(rollout.reward_bs.sum(-1), rollout.reward, atol=1e-4, rtol=1e-5)
    adv, ret = rollout.episode_advantages(0.99, 0.95, credit="base_station")
    assert adv.shape == (40, 4, n_bs)
    # a truncated step bootstraps each base station's own value of the final observation
    t = small_config.dynamics.episode_frames - 1
    expected = rollout.reward_bs[t] + 0.99 * rollout.value[t + 1] - rollout.value[t]
    torch.testing.assert_close(adv[t], expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="one output per base station"):
        collect(env, EnvCursor.start(env, seed=2), 5, sampling_policy(ActorCritic(
            env.layout)), env.layout).episode_advantages(0.99, 0.95, credit="base_station")


def test_credit_needs_the_environments_reward_split(small_config) -> None:
    env = IABVectorEnv(2, small_config)
    model = ActorCritic(env.layout, credit="base_station")
    rollout = collect(env, EnvCursor.start(env, seed=2), 5, sampling_policy(model), env.layout)
    rollout.reward_bs = torch.full_like(rollout.reward_bs, float("nan"))
    with pytest.raises(ValueError, match="reward_bs"):
        rollout.episode_advantages(0.99, 0.95, credit="base_station")


def test_ppo_update_with_per_base_station_credit_moves_the_policy(small_config) -> None:
    env = IABVectorEnv(8, small_config)
    agent = PPOAgent(env.layout, PPOConfig(credit="base_station", num_steps=30), seed=0)
    rollout = collect(env, EnvCursor.start(env, seed=4), 30, sampling_policy(agent.model),
                      env.layout)
    before = {k: v.clone() for k, v in agent.model.state_dict().items()}
    stats = ppo_step(agent.model, agent.optimizer, rollout, agent.config)
    # the first minibatch sees the policy that collected: the ratio starts at 1
    assert stats["approx_kl"] < 0.5 and 0.0 <= stats["clipfrac"] <= 1.0
    changed = [k for k, v in agent.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("value_head") for k in changed)
    assert any(not k.startswith("value_head") for k in changed)


def test_credit_is_a_validated_agent_field() -> None:
    with pytest.raises(ConfigError, match="credit"):
        agent_config("ppo", {"credit": "per_ue"})


@pytest.mark.parametrize("name", ["maml", "rl2"])
def test_meta_learners_train_and_adapt_with_per_base_station_credit(tiny_config,
                                                                    name: str) -> None:
    tasks = TaskDistribution.for_config(tiny_config)
    frames = tiny_config.dynamics.episode_frames
    overrides = {"credit": "base_station", "warm_start": "none", "teacher_coef": 0.0}
    if name == "rl2":
        overrides.update(trial_episodes=2)
    agent = make_agent(name, tiny_config, 0, agent_config(name, overrides))
    budget = Budget(meta_train_env_steps=2 * 2 * 2 * 2 * frames + 40, num_envs=2,
                    meta_batch_tasks=2, adapt_envs=2, adapt_episodes=1, episode_frames=frames)
    before = {k: v.clone() for k, v in agent.modules()[agent.policy_module].state_dict().items()}
    with LocalRollouts(lambda n: IABVectorEnv(n, tiny_config), tiny_config) as rollouts:
        info = agent.meta_train(rollouts, tasks, budget)
        curve = agent.adapt(rollouts, tasks.sample("test", 0, 1)[0], 1, num_envs=2)
    assert info["iterations"] >= 1
    after = agent.modules()[agent.policy_module].state_dict()
    assert any(not torch.equal(v, before[k]) for k, v in after.items())
    assert all(torch.isfinite(v).all() for v in after.values())
    assert len(curve) >= 2
