"""RL^2 meta-learners: a recurrent policy fed (observation, previous action, previous reward,
done flag) that adapts inside its memory over a trial of several episodes of one task.

``memory="gru"`` is plain RL^2; ``memory="attention"`` puts causal multi-head self-attention
over the trial's recent steps in front of the GRU. The memory resets only at trial starts;
GAE runs across the whole trial; PPO updates run full-sequence passes over whole trials
(minibatches are sets of trials), so no Python loop over time is in the update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from agents.allocation_policy import AllocationKind, CoverageKind, allocation_arch, sample_action
from agents.base import (
    CURVE_METRICS,
    Agent,
    Budget,
    Callback,
    TrainingRun,
)
from agents.core import (
    MaskedMultiCategorical,
    PPOLossConfig,
    explained_variance,
    linear_schedule,
    load_checkpoint,
    ppo_update,
    save_checkpoint,
    seed_everything,
)
from agents.networks import ActorCritic, History, action_to_schedule, recurrent_step
from agents.ppo import episode_return_stats
from agents.rollout import Rollout, records_by_episode
from agents.rollouts import (
    EnvSlot,
    EnvSource,
    PolicySnapshot,
    RolloutBackend,
    draw_sample_seeds,
    job_steps,
    opened,
    source_envs,
    task_slots,
)
from bridge.layout import ObservationLayout
from bridge.tasks import Task, TaskDistribution


@dataclass
class RL2Config:
    """Hyperparameters of the recurrent meta-learners."""

    memory: Literal["gru", "attention"] = "gru"
    trial_episodes: int | None = None  # None: the budget's adapt_episodes + 1
    learning_rate: float = 1e-3
    anneal_lr: bool = True
    adam_eps: float = 1e-5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.003
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64
    link_hidden: int = 32
    rank: int = 16
    attention_heads: int = 4
    attention_window: int = 64
    # trials per iteration at most: a main-study trial batch of 32 x 163 steps took 6-18 s,
    # so the wall-clock cap overshot by a whole iteration; 16 halves it and doubles updates
    max_trial_envs: int = 16
    reward_scale: float = 0.1  # fixed multiplier of the critic's targets (see PPOConfig)
    idle_bias: float = -1.0  # initial idle logit: start scheduling more than idling
    # heads decided one by one on what earlier choices left (agents.allocation_policy);
    # channel_hz/frame_s turn CQI into bytes (agents.registry sets them from the scenario)
    allocation: AllocationKind = "sequential"
    coverage: CoverageKind = "soft"
    channel_hz: float = 50e6
    frame_s: float = 0.01

    @property
    def loss(self) -> PPOLossConfig:
        return PPOLossConfig(self.clip_coef, self.clip_vloss, self.ent_coef, self.vf_coef,
                             self.norm_adv)


@dataclass
class RL2State:
    """What a recurrent agent carries between decisions: its memory and the previous step
    (the caller reports reward and done with :meth:`RL2Agent.observe`)."""

    memory: Any
    prev_action: torch.Tensor
    prev_reward: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    prev_done: torch.Tensor = field(default_factory=lambda: torch.zeros(0))


class RL2Agent(Agent):
    """RL^2 (GRU) or, with ``memory="attention"``, the attention + GRU meta-learner."""

    name = "rl2"

    def __init__(self, layout: ObservationLayout, config: RL2Config | None = None,
                 seed: int = 0) -> None:
        self.layout = layout
        self.config = config or RL2Config()
        self.seed = seed
        self.name = "rl2" if self.config.memory == "gru" else "attention"
        seed_everything(seed)
        cfg = self.config
        self.model = ActorCritic(layout, cfg.hidden, cfg.link_hidden, cfg.rank,
                                 memory=cfg.memory, attention_heads=cfg.attention_heads,
                                 attention_window=cfg.attention_window,
                                 idle_bias=cfg.idle_bias, **allocation_arch(cfg))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate,
                                          eps=cfg.adam_eps)
        self.env_steps = 0

    def run_trial(self, rollouts: RolloutBackend, slots: Sequence[EnvSlot], episodes: int
                  ) -> Rollout:
        """One trial of ``episodes`` episodes on every slot (rollout jobs of
        ``rollouts.envs_per_job`` slots), memory reset at the trial's start only."""
        return rollouts.collect([(slots, PolicySnapshot.capture(self.model))],
                                episodes=episodes, trial=True)

    def update(self, rollout: Rollout) -> dict[str, float]:
        """PPO epochs over whole trials; each minibatch is one full-sequence forward pass."""
        cfg = self.config
        advantages, returns = rollout.trial_advantages(cfg.gamma, cfg.gae_lambda,
                                                       cfg.reward_scale)
        history = rollout.history(self.layout)
        # items are trials (environments): put the environment axis first
        data = {"logprob": rollout.logprob.T, "advantages": advantages.T,
                "value": rollout.value.T, "returns": returns.T, "valid": rollout.valid.T}

        def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            sub = History(history.prev_schedule[:, idx], history.prev_reward[:, idx],
                          history.prev_done[:, idx])
            logits, value, _ = self.model(rollout.obs[:, idx], sub, None,
                                          prefix=rollout.action[:, idx])
            dist = MaskedMultiCategorical(logits, rollout.mask[:, idx])
            return (dist.log_prob(rollout.action[:, idx]).T, dist.entropy().T, value.T)

        stats = ppo_update(evaluate, data, rollout.num_envs, self.optimizer,
                           list(self.model.parameters()), cfg.loss, cfg.update_epochs,
                           min(cfg.num_minibatches, rollout.num_envs), cfg.max_grad_norm)
        stats["explained_variance"] = explained_variance(rollout.value.flatten(),
                                                         returns.flatten())
        return stats

    def meta_train(self, envs: EnvSource, tasks: TaskDistribution, budget: Budget,
                   callback: Callback | None = None) -> dict[str, Any]:
        """Trials on training tasks (a new task and deployment per environment per trial)."""
        cfg = self.config
        episodes = cfg.trial_episodes or budget.adapt_episodes + 1
        n = min(budget.num_envs, cfg.max_trial_envs)
        rng = np.random.default_rng(self.seed + 4_243)
        run = TrainingRun(callback, budget.max_meta_train_s)
        with opened(envs, budget.envs_per_job) as rollouts:
            per_iter = job_steps(episodes, rollouts.config.dynamics.episode_frames) * n
            iterations = max(1, budget.meta_train_env_steps // per_iter)
            for it in range(iterations):
                if cfg.anneal_lr:
                    self.optimizer.param_groups[0]["lr"] = linear_schedule(cfg.learning_rate,
                                                                          it / iterations)
                trial_tasks = tasks.sample("train", int(rng.integers(2**31)), n)
                inst_seeds = rng.integers(2**31, size=n)
                slots = [EnvSlot(t, int(s), 0, z) for t, s, z in
                         zip(trial_tasks, inst_seeds, draw_sample_seeds(n))]
                rollout = self.run_trial(rollouts, slots, episodes)
                self.env_steps += per_iter
                stats = self.update(rollout)
                stats.update(episode_return_stats(rollout))
                if run.record(stats, self.env_steps):
                    break
        return run.summary(self.env_steps)

    @torch.no_grad()
    def adapt(self, envs: EnvSource, task: Task, episodes: int, instance_seed: int = 0,
              num_envs: int | None = None) -> list[dict[str, float]]:
        """One trial of ``episodes + 1`` episodes on the held-out task; no gradient steps,
        adaptation happens in the memory."""
        n = source_envs(envs, num_envs)
        with opened(envs) as rollouts:
            rollout = self.run_trial(rollouts, task_slots(task, instance_seed,
                                                          draw_sample_seeds(n)), episodes + 1)
        return records_by_episode(rollout.episode_records, CURVE_METRICS)

    def initial_state(self, num_envs: int) -> RL2State:
        """State at a trial start: empty memory, no previous action."""
        return RL2State(memory=self.model.initial_state(num_envs),
                        prev_action=torch.zeros(num_envs, self.layout.action_size,
                                                dtype=torch.long),
                        prev_reward=torch.zeros(num_envs), prev_done=torch.zeros(num_envs))

    @staticmethod
    def observe(state: RL2State, reward: np.ndarray, done: np.ndarray) -> RL2State:
        """Record the reward and done flag the environment returned for the last action."""
        state.prev_reward = torch.as_tensor(reward, dtype=torch.float32)
        state.prev_done = torch.as_tensor(done, dtype=torch.float32)
        return state

    @torch.no_grad()
    def act(self, obs: np.ndarray, mask: np.ndarray, state: RL2State | None = None,
            deterministic: bool = False) -> tuple[np.ndarray, RL2State]:
        """One step; pass ``state=None`` at a trial start, then the returned state (updated
        with :meth:`observe` after the environment step)."""
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        if state is None:
            state = self.initial_state(obs_t.shape[0])
        history = History(action_to_schedule(state.prev_action, self.layout),
                          state.prev_reward, state.prev_done)
        logits, _, memory = recurrent_step(self.model, obs_t, history, state.memory)
        action, _ = sample_action(self.model, obs_t, torch.as_tensor(mask, dtype=torch.bool),
                                  logits, deterministic=deterministic)
        return action.numpy(), RL2State(memory, action, state.prev_reward, state.prev_done)

    def save(self, path: str | Path) -> None:
        save_checkpoint(path, {"model": self.model},
                        {"agent": self.name, "config": asdict(self.config), "seed": self.seed,
                         "layout": asdict(self.layout), "env_steps": self.env_steps})

    @classmethod
    def load(cls, path: str | Path) -> RL2Agent:
        payload = load_checkpoint(path)
        meta = payload["meta"]
        agent = cls(ObservationLayout(**meta["layout"]), RL2Config(**meta["config"]),
                    seed=meta["seed"])
        agent.model.load_state_dict(payload["modules"]["model"])
        agent.env_steps = meta["env_steps"]
        return agent


def attention_agent(layout: ObservationLayout, config: RL2Config | None = None,
                    seed: int = 0) -> RL2Agent:
    """The RNN-with-attention meta-learner (causal self-attention over the trial + GRU)."""
    cfg = config or RL2Config()
    cfg.memory = "attention"
    return RL2Agent(layout, cfg, seed)
