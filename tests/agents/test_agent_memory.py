"""Trial memory: RL^2's hidden state spans a trial's episodes and resets between trials; the
attention mask is causal."""

from __future__ import annotations

import torch

from agents.networks import TrialMemory
from agents.rl2 import RL2Agent, RL2Config
from agents.rollouts import LocalRollouts, task_slots
from bridge.fallback.env import IABVectorEnv
from bridge.tasks import Task

TASK = Task(n_ue=4, ue_speed_mps=1.0, ue_rate_mbps=50.0, blockage_prob=0.1,
            incumbent_activity=0.1, topology="star")


def test_rl2_memory_carries_across_episodes_and_resets_between_trials(tiny_config) -> None:
    torch.manual_seed(0)
    env = IABVectorEnv(3, tiny_config)
    rollouts = LocalRollouts.from_env(env)
    agent = RL2Agent(env.layout, RL2Config(), seed=0)
    frames = tiny_config.dynamics.episode_frames
    rollout = agent.run_trial(rollouts, task_slots(TASK, 5, [1, 2, 3]), 2)
    assert rollout.steps == 2 * frames + 1
    first_of_episode_2 = frames + 1  # after the autoreset step
    assert rollout.prev_done[frames].all()  # the reset step sees the done flag

    # the step-by-step values of the rollout equal one full-sequence pass over the whole
    # trial from an empty memory: the memory started empty and was carried across episodes
    history = rollout.history(agent.layout)
    with torch.no_grad():
        _, values, final_state = agent.model(rollout.obs, history, None)
    assert torch.allclose(values, rollout.value, atol=1e-4)

    # a second trial starts from an empty memory, not from the first trial's last one
    second = agent.run_trial(rollouts, task_slots(TASK, 6, [4, 5, 6]), 1)
    with torch.no_grad():
        _, fresh, _ = agent.model(second.obs, second.history(agent.layout), None)
        _, carried, _ = agent.model(second.obs, second.history(agent.layout), final_state)
    assert torch.allclose(fresh, second.value, atol=1e-4)
    assert not torch.allclose(carried, second.value, atol=1e-4)

    # what happened in episode 1 changes the output in episode 2 (memory spans episodes)
    obs = rollout.obs.clone()
    obs[2] += 0.5
    with torch.no_grad():
        _, perturbed, _ = agent.model(obs, history, None)
    assert not torch.allclose(perturbed[first_of_episode_2:], values[first_of_episode_2:])
    assert torch.allclose(perturbed[:2], values[:2])


def test_attention_is_causal_and_windowed() -> None:
    torch.manual_seed(0)
    memory = TrialMemory(16, attention=True, n_heads=4, window=5)
    ctx = torch.randn(20, 3, 16)
    out, _ = memory(ctx, memory.initial_state(3))
    changed = ctx.clone()
    changed[12:] += torch.randn(8, 3, 16)
    out2, _ = memory(changed, memory.initial_state(3))
    assert torch.allclose(out[:12], out2[:12], atol=1e-6)
    assert not torch.allclose(out[12:], out2[12:])
    mask = memory.causal_mask(0, 20)
    assert mask[3, 4] and not mask[4, 3] and mask[10, 5] and not mask[10, 6]
    # step-by-step with a carried state equals the full-sequence pass
    state = memory.initial_state(3)
    steps = []
    for t in range(20):
        y, state = memory(ctx[t:t + 1], state)
        steps.append(y)
    assert torch.allclose(torch.cat(steps), out, atol=1e-5)


def test_attention_policy_earlier_logits_ignore_later_steps(tiny_config) -> None:
    torch.manual_seed(0)
    env = IABVectorEnv(2, tiny_config)
    agent = RL2Agent(env.layout, RL2Config(memory="attention", attention_window=8), seed=1)
    rollout = agent.run_trial(LocalRollouts.from_env(env), task_slots(TASK, 1, [0, 1]), 2)
    history = rollout.history(agent.layout)
    with torch.no_grad():
        logits, values, _ = agent.model(rollout.obs, history, None)
        obs = rollout.obs.clone()
        obs[30:] = torch.randn_like(obs[30:])
        logits2, values2, _ = agent.model(obs, history, None)
    assert torch.allclose(logits[:30], logits2[:30], atol=1e-5)
    assert torch.allclose(values[:30], values2[:30], atol=1e-5)
    assert not torch.allclose(values[30:], values2[30:])
