"""RL^2 meta-learners: a recurrent policy fed (observation, previous action, previous reward,
done flag) that adapts inside its memory over a trial of several episodes of one task.

``memory="gru"`` is plain RL^2; ``memory="attention"`` puts causal multi-head self-attention
over the trial's recent steps in front of the GRU. The memory resets only at trial starts;
GAE runs across the whole trial; PPO updates run full-sequence passes over whole trials
(minibatches are sets of trials), so no Python loop over time is in the update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from agents.agent import Agent, Callback, curve_points, episode_return_stats
from agents.allocation_policy import sample_action, teacher_forcing
from agents.budget import Budget
from agents.feedback import env_action, step_view, view_mask
from agents.hyperparams import PPOUpdateConfig, WarmStart
from agents.networks import History, action_to_schedule, recurrent_step
from agents.policy_gradient import (
    MaskedMultiCategorical,
    explained_variance,
    ppo_update,
)
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
from agents.rollouts.trajectory import Rollout
from agents.teacher import credited_log_prob, forced, teacher_labels, teacher_loss
from bridge.config import ConfigError, _f
from bridge.tasks import Task, TaskDistribution


@dataclass
class RL2Config(PPOUpdateConfig):
    """Hyperparameters of the recurrent meta-learners."""

    _section_name = "agents.rl2"

    warm_start: WarmStart = "greedy_max_sinr"  # as MAML's
    # the teacher term (agents.teacher) and a longer clone (no extra env-steps): RL^2 with
    # the feedback memory went from 0.92 / 0.95 (sampled / mode) of the adaptive heuristic
    # to 0.96 / 0.995 (RESULTS.md, "Feedback memory")
    teacher_coef: float = _f(2.0, lo=0.0, hi=1e3)
    warm_start_epochs: int = _f(12, lo=1, hi=10_000)
    memory: Literal["gru", "attention"] = "gru"
    # episodes per meta-training trial; None: the budget's adapt_episodes + 1. Five, not the
    # adaptation's eleven: a trial of 11 x 100 frames on 16 environments is 17,600
    # env-steps, which would leave two or three updates in the default budget; the memory
    # then runs past its training trials' length on held-out tasks (the few-shot curve shows
    # what that costs)
    trial_episodes: int | None = _f(5, lo=1, hi=10_000)
    attention_heads: int = _f(4, lo=1, hi=256)
    attention_window: int = _f(64, lo=1, hi=1_000_000)
    # trials per iteration at most: a main-study trial batch of 32 x 163 steps took 6-18 s;
    # 16 halves an iteration and doubles the updates per env-step
    max_trial_envs: int = _f(16, lo=1, hi=65_536)

    def _validate(self) -> None:
        super()._validate()
        if self.memory == "attention" and self.hidden % self.attention_heads:
            raise ConfigError(f"{self._section_name}.attention_heads={self.attention_heads}"
                              f" must divide {self._section_name}.hidden={self.hidden}")


@dataclass
class AttentionConfig(RL2Config):
    """The RNN-with-attention meta-learner: RL^2 with causal self-attention before the GRU."""

    _section_name = "agents.attention"

    memory: Literal["gru", "attention"] = "attention"


@dataclass
class RL2State:
    """What a recurrent agent carries between decisions: its memory and the previous step
    (the caller reports reward and done with :meth:`RL2Agent.observe`)."""

    memory: Any
    prev_action: torch.Tensor
    prev_reward: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    prev_done: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    feedback: Any = None  # the feedback memory (agents.feedback), if the agent has one


class RL2Agent(Agent):
    """RL^2 (GRU) or, with ``memory="attention"``, the attention + GRU meta-learner."""

    name = "rl2"

    config_type = RL2Config
    config: RL2Config

    def build(self) -> None:
        cfg = self.config
        self.name = "rl2" if cfg.memory == "gru" else "attention"
        self.model = self.network(memory=cfg.memory, attention_heads=cfg.attention_heads,
                                  attention_window=cfg.attention_window)
        self.optimizer = self.adam(self.model.parameters())

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model}

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
                                                       cfg.reward_scale, cfg.credit)
        history = rollout.history(self.layout)
        # items are trials (environments): put the environment axis first
        data = {"logprob": rollout.logprob.T, "advantages": advantages.transpose(0, 1),
                "value": rollout.value.transpose(0, 1), "returns": returns.transpose(0, 1),
                "valid": rollout.valid.T}

        prefix = teacher_forcing(self.model, rollout.obs, rollout.action)
        n_bs = self.layout.n_bs
        if cfg.credit != "joint":  # the rollout stored the joint log-probability only
            with torch.no_grad():
                data["logprob"] = credited_log_prob(
                    self.model, rollout.obs, self.model(rollout.obs, history, None)[0],
                    rollout.mask, prefix, rollout.action, cfg.credit).transpose(0, 1)
        teacher = None
        if cfg.teacher_coef > 0:
            labels = teacher_labels(cfg, self.layout, rollout.obs, rollout.mask)
            teacher = (labels, teacher_forcing(self.model, rollout.obs, labels))

        def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
            sub = History(history.prev_schedule[:, idx], history.prev_reward[:, idx],
                          history.prev_done[:, idx])
            obs = rollout.obs[:, idx]
            static, value, _ = self.model(obs, sub, None)
            dist = MaskedMultiCategorical(forced(self.model, obs, static, prefix[:, idx]),
                                          rollout.mask[:, idx])
            out = (dist.credited_log_prob(rollout.action[:, idx], cfg.credit, n_bs
                                          ).transpose(0, 1),
                   dist.entropy().T, value.transpose(0, 1))
            if teacher is None:
                return out
            labels, t_prefix = teacher
            return (*out, cfg.teacher_coef * teacher_loss(
                self.model, obs, static, rollout.mask[:, idx], t_prefix[:, idx],
                labels[:, idx], rollout.valid[:, idx]))

        stats = ppo_update(evaluate, data, rollout.num_envs, self.optimizer,
                           list(self.model.parameters()), cfg.loss, cfg.update_epochs,
                           min(cfg.num_minibatches, rollout.num_envs), cfg.max_grad_norm)
        stats["explained_variance"] = explained_variance(rollout.value.flatten(),
                                                         returns.flatten())
        return stats

    def meta_train(self, envs: EnvSource, tasks: TaskDistribution, budget: Budget,
                   callback: Callback | None = None) -> dict[str, Any]:
        """Trials on training tasks (a new task and deployment per environment per trial)."""
        episodes = self.config.trial_episodes or budget.adapt_episodes + 1
        n = min(budget.num_envs, self.config.max_trial_envs)
        rng = np.random.default_rng(self.seed + 4_243)
        with opened(envs, budget.envs_per_job) as rollouts:
            per_iter = job_steps(episodes, rollouts.config.dynamics.episode_frames) * n
            self.warm_start(rollouts.config, tasks, budget)

            def iteration(it: int) -> dict[str, float]:
                trial_tasks = tasks.sample("train", int(rng.integers(2**31)), n)
                inst_seeds = rng.integers(2**31, size=n)
                slots = [EnvSlot(t, int(s), 0, z) for t, s, z in
                         zip(trial_tasks, inst_seeds, draw_sample_seeds(n))]
                rollout = self.run_trial(rollouts, slots, episodes)
                stats = self.update(rollout)
                stats.update(episode_return_stats(rollout))
                return stats

            return self.training_loop(self.rl_iterations(budget, per_iter), per_iter,
                                      iteration, callback)

    @torch.no_grad()
    def adapt(self, envs: EnvSource, task: Task, episodes: int, instance_seed: int = 0,
              num_envs: int | None = None) -> list[dict[str, float]]:
        """One trial of ``episodes + 1`` episodes on the held-out task; no gradient steps,
        adaptation happens in the memory."""
        n = source_envs(envs, num_envs)
        slots = task_slots(task, instance_seed, draw_sample_seeds(n))
        with opened(envs) as rollouts:
            # the mode's own trial beside the sampled one: its memory holds what its own
            # choices revealed
            rollout, mode = rollouts.collect_groups(
                [(slots, PolicySnapshot.capture(self.model)),
                 (slots, PolicySnapshot.capture(self.model, deterministic=True))],
                episodes=episodes + 1, trial=True)
        return curve_points(rollout, mode)

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
        if state is None:
            state = self.initial_state(len(obs))
        seen, feedback = step_view(self.config.feedback_memory, self.layout, obs,
                                   state.feedback)
        obs_t = torch.as_tensor(seen, dtype=torch.float32)
        history = History(action_to_schedule(state.prev_action, self.layout),
                          state.prev_reward, state.prev_done)
        logits, _, memory = recurrent_step(self.model, obs_t, history, state.memory)
        action, _ = sample_action(self.model, obs_t, torch.as_tensor(
            view_mask(feedback, mask), dtype=torch.bool), logits, deterministic=deterministic)
        # the history keeps the view's action, as the rollout jobs store it
        return env_action(feedback, action.numpy()), RL2State(
            memory, action, state.prev_reward, state.prev_done, feedback)
