"""Regression tests for the learning fixes: reward scaling, idle bias, per-environment
episode seeds, budgets in env-steps, PPO's free meta-training and MAML's logged and
pooled adaptation."""

from __future__ import annotations

import numpy as np
import torch

from agents.budget import Budget
from agents.maml import MAMLAgent, MAMLConfig, TaskBatch, pool_batches
from agents.networks import ActorCritic
from agents.policy_gradient import MaskedMultiCategorical
from agents.ppo import PPOAgent, PPOConfig, sampling_policy
from agents.rollouts import pin_tasks
from agents.rollouts.trajectory import EnvCursor, collect
from bridge.fallback.env import IABVectorEnv
from bridge.tasks import TaskDistribution

BUDGET = Budget(name="test", episode_frames=10, meta_train_env_steps=800, num_envs=4,
                meta_batch_tasks=2, adapt_episodes=2, adapt_envs=2, n_test_tasks=1,
                seeds=(0,))


def test_reward_scale_scales_returns_and_advantages(tiny_config) -> None:
    env = IABVectorEnv(2, tiny_config)
    agent = PPOAgent(env.layout, seed=0)
    rollout = collect(env, EnvCursor.start(env, seed=0), 25, sampling_policy(agent.model),
                      env.layout)
    rollout.value.zero_()
    rollout.next_value.zero_()
    adv1, ret1 = rollout.episode_advantages(0.99, 0.95, 1.0)
    adv2, ret2 = rollout.episode_advantages(0.99, 0.95, 0.1)
    assert torch.allclose(adv2, 0.1 * adv1, atol=1e-6)
    assert torch.allclose(ret2, 0.1 * ret1, atol=1e-6)
    tadv1, _ = rollout.trial_advantages(0.99, 0.95, 1.0)
    tadv2, _ = rollout.trial_advantages(0.99, 0.95, 0.1)
    assert torch.allclose(tadv2, 0.1 * tadv1, atol=1e-6)


def test_idle_bias_lowers_the_initial_idle_probability(tiny_config) -> None:
    env = IABVectorEnv(4, tiny_config)
    obs, info = env.reset(seed=0)
    mask = torch.as_tensor(info["action_mask"])
    probs = {}
    for bias in (0.0, -1.0):
        torch.manual_seed(0)
        model = ActorCritic(env.layout, idle_bias=bias)
        logits, _, _ = model(torch.as_tensor(obs))
        p = MaskedMultiCategorical(logits, mask).probs()[..., 0]
        has_links = mask[..., 1:].any(-1)
        probs[bias] = p[has_links].mean().item()
    assert probs[-1.0] < 0.7 * probs[0.0]


def test_pinned_environments_draw_different_episodes(tiny_config) -> None:
    """Environments pinned to one deployment must not replay the same traffic: before the
    fix every environment of an adaptation batch had the same episode seed."""
    env = IABVectorEnv(4, tiny_config)
    task = TaskDistribution.for_config(tiny_config).sample("train", 1, 1)[0]
    pin_tasks(env, [task], [5])
    for _ in range(10):
        env.step(np.zeros((4, env.layout.action_size), dtype=np.int64))
    assert len(set(env.core.acc_arrived.tolist())) > 1
    # and the same pin gives the same episodes again (paired comparisons across agents)
    first = env.core.acc_arrived.copy()
    pin_tasks(env, [task], [5])
    for _ in range(10):
        env.step(np.zeros((4, env.layout.action_size), dtype=np.int64))
    assert np.array_equal(first, env.core.acc_arrived)


def test_training_spends_the_env_step_budget_and_stops_only_on_request(tiny_config) -> None:
    """Budgets are env-steps: a run spends them all (wall time is reported, never a stopping
    rule), and a callback returning False stops it after that iteration."""
    tasks = TaskDistribution.for_config(tiny_config)
    layout = IABVectorEnv(1, tiny_config).layout
    frames = tiny_config.dynamics.episode_frames
    per_iter = 2 * BUDGET.meta_batch_tasks * BUDGET.adapt_envs * frames  # inner + outer
    budget = BUDGET.replace(meta_train_env_steps=3 * per_iter)
    cold = MAMLConfig(warm_start="none", teacher_coef=0.0)
    info = MAMLAgent(layout, cold, seed=0).meta_train(lambda n: IABVectorEnv(n, tiny_config),
                                                      tasks, budget)
    assert info["iterations"] == 3 and info["env_steps"] == 3 * per_iter
    assert info["wall_s"] > 0 and info["last"]["wall_s"] > 0
    seen: list[dict[str, float]] = []
    info = MAMLAgent(layout, cold, seed=0).meta_train(lambda n: IABVectorEnv(n, tiny_config),
                                                      tasks, budget,
                                                      lambda s: seen.append(s) or False)
    assert info["iterations"] == len(seen) == 1
    # a warm start's teacher episodes are env-steps of the same budget
    warm = MAMLConfig(warm_start="greedy_max_sinr", warm_start_rounds=1, warm_start_tasks=2,
                      warm_start_replicas=2, warm_start_epochs=1)
    teacher_steps = 1 * 2 * 2 * frames
    info = MAMLAgent(layout, warm, seed=0).meta_train(
        lambda n: IABVectorEnv(n, tiny_config), tasks,
        budget.replace(meta_train_env_steps=teacher_steps + 2 * per_iter))
    assert info["warm_start_env_steps"] == teacher_steps
    assert info["iterations"] == 2 and info["env_steps"] == teacher_steps + 2 * per_iter


def test_ppo_meta_training_is_free_and_adapts_from_scratch(tiny_config) -> None:
    tasks = TaskDistribution.for_config(tiny_config)
    agent = PPOAgent(IABVectorEnv(1, tiny_config).layout, seed=0)
    before = {k: v.clone() for k, v in agent.model.state_dict().items()}
    info = agent.meta_train(lambda n: IABVectorEnv(n, tiny_config), tasks, BUDGET)
    assert info["env_steps"] == 0 and info["iterations"] == 0
    assert all(torch.equal(before[k], v) for k, v in agent.model.state_dict().items())
    # pretraining stays available as an option
    pre = PPOAgent(IABVectorEnv(1, tiny_config).layout,
                   PPOConfig(pretrain=True, adapt_from="init", num_steps=10), seed=0)
    info = pre.meta_train(lambda n: IABVectorEnv(n, tiny_config), tasks, BUDGET)
    assert info["env_steps"] > 0


def test_maml_logs_pre_and_post_adaptation_returns(tiny_config) -> None:
    tasks = TaskDistribution.for_config(tiny_config)
    agent = MAMLAgent(IABVectorEnv(1, tiny_config).layout,
                      MAMLConfig(warm_start="none", teacher_coef=0.0), seed=0)
    seen: list[dict[str, float]] = []
    agent.meta_train(lambda n: IABVectorEnv(n, tiny_config), tasks, BUDGET,
                     lambda s: seen.append(s))
    assert seen
    for key in ("pre_adapt_episode_return", "post_adapt_episode_return",
                "adapt_gain_return", "pre_adapt_throughput_mbps"):
        assert np.isfinite(seen[-1][key])


def test_pool_batches_concatenates_episodes() -> None:
    def batch(e: int) -> TaskBatch:
        return TaskBatch(*(torch.zeros(5, e, 3) for _ in range(8)))

    pooled = pool_batches([batch(2), batch(3)])
    assert pooled.obs.shape == (5, 5, 3) and pooled.valid.shape == (5, 5, 3)
