"""Trial memory: RL^2's hidden state spans a trial's episodes and resets between trials; the
attention mask is causal."""

from __future__ import annotations

import torch

from agents.base import pin_task
from agents.networks import ActorCritic, TrialMemory
from agents.rl2 import RL2Agent, RL2Config, TrialPolicy
from bridge.fallback.env import IABVectorEnv
from bridge.tasks import Task

TASK = Task(n_ue=4, ue_speed_mps=1.0, ue_rate_mbps=50.0, blockage_prob=0.1,
            incumbent_activity=0.1, topology="star")


class RecordingPolicy(TrialPolicy):
    """Keeps the GRU hidden state seen before every step."""

    def __init__(self, model: ActorCritic) -> None:
        super().__init__(model)
        self.hidden_before: list[torch.Tensor] = []

    def __call__(self, obs, mask, history):  # type: ignore[override]
        self.hidden_before.append(self.state[0].clone())
        return super().__call__(obs, mask, history)


def test_rl2_memory_carries_across_episodes_and_resets_between_trials(tiny_config) -> None:
    torch.manual_seed(0)
    env = IABVectorEnv(3, tiny_config)
    agent = RL2Agent(env.layout, RL2Config(), seed=0)
    task = TASK
    frames = tiny_config.dynamics.episode_frames
    policy = RecordingPolicy(agent.model)
    rollout = agent.run_trial(env, pin_task(env, task, 5), 2, policy)
    assert rollout.steps == 2 * frames + 1
    first_of_episode_2 = frames + 1  # after the autoreset step
    assert rollout.prev_done[frames].all()  # the reset step sees the done flag
    assert torch.all(policy.hidden_before[0] == 0)
    assert policy.hidden_before[first_of_episode_2].abs().sum() > 0  # carried, not reset
    # a second trial starts from an empty memory
    agent.run_trial(env, pin_task(env, task, 6), 1, policy)
    assert torch.all(policy.hidden_before[rollout.steps] == 0)

    # the update's full-sequence pass reproduces the step-by-step values of the rollout
    with torch.no_grad():
        _, values, _ = agent.model(rollout.obs, rollout.history(agent.layout), None)
    assert torch.allclose(values, rollout.value, atol=1e-4)

    # what happened in episode 1 changes the output in episode 2 (memory spans episodes)
    obs = rollout.obs.clone()
    obs[2] += 0.5
    with torch.no_grad():
        _, perturbed, _ = agent.model(obs, rollout.history(agent.layout), None)
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
    rollout = agent.run_trial(env, pin_task(env, TASK, 1), 2)
    history = rollout.history(agent.layout)
    with torch.no_grad():
        logits, values, _ = agent.model(rollout.obs, history, None)
        obs = rollout.obs.clone()
        obs[30:] = torch.randn_like(obs[30:])
        logits2, values2, _ = agent.model(obs, history, None)
    assert torch.allclose(logits[:30], logits2[:30], atol=1e-5)
    assert torch.allclose(values[:30], values2[:30], atol=1e-5)
    assert not torch.allclose(values[30:], values2[30:])
