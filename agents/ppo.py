"""PPO baseline (CleanRL-style): multi-task training on the training split, then fine-tuning
on a held-out task with the same per-episode budget the meta-learners get."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from agents.agent import Agent, Callback, curve_points, episode_return_stats
from agents.allocation_policy import sample_action, teacher_forcing
from agents.budget import Budget
from agents.feedback import env_action, step_view, view_mask
from agents.hyperparams import PPOUpdateConfig, WarmStart
from agents.networks import ActorCritic, History
from agents.policy_gradient import MaskedMultiCategorical, explained_variance, ppo_update
from agents.rollouts import (
    EnvSlot,
    EnvSource,
    PolicySnapshot,
    draw_sample_seeds,
    opened,
    source_envs,
    task_slots,
)
from agents.rollouts.trajectory import ActFn, EnvCursor, Rollout, collect
from agents.teacher import credited_log_prob, forced, teacher_labels, teacher_loss
from bridge.config import _f
from bridge.tasks import Task, TaskDistribution


@dataclass
class PPOConfig(PPOUpdateConfig):
    """PPO hyperparameters (CleanRL's names and defaults where they fit this problem)."""

    _section_name = "agents.ppo"

    num_steps: int = _f(32, lo=1, hi=1_000_000)  # per environment per iteration (learn)
    target_kl: float | None = None
    cqi_prior: float = _f(0.0, lo=-100.0, hi=100.0)
    # iterations between new training deployments (pretraining only; every pretraining
    # iteration is one whole episode per environment, a rollout job of the rollout layer)
    resample_tasks_every: int = _f(4, lo=1, hi=1_000_000)
    # The study's baseline is PPO trained from scratch on the held-out task with the same
    # small adaptation budget the meta-learners get ("scratch"); "init" fine-tunes the
    # multi-task weights instead. Multi-task pretraining runs in meta_train only when
    # ``pretrain`` is set (it is wasted work for "scratch"), so by default PPO's meta-training
    # costs 0 env-steps.
    adapt_from: Literal["init", "scratch"] = "scratch"
    pretrain: bool = False
    adapt_learning_rate: float = _f(1e-3, lo=0.0, hi=1.0, open_lo=True)


@dataclass
class PPOFinetuneConfig(PPOConfig):
    """The strongest non-meta baseline: PPO pre-trained on the training tasks with the
    meta-learners' env-step budget (warm-started from the same teacher), then fine-tuned on
    each held-out task with the same adaptation budget."""

    _section_name = "agents.ppo_finetune"

    pretrain: bool = True
    adapt_from: Literal["init", "scratch"] = "init"
    warm_start: WarmStart = "greedy_max_sinr"
    # the teacher term (agents.teacher): with the feedback memory its teacher is greedy on
    # the effective CQI. Held-out ratio to the adaptive heuristic, sampled / mode (RESULTS.md,
    # "Feedback memory"): coefficient 0 0.94 / 0.96; 0.5 0.97 / 0.99 (2 seeds); 2.0 with
    # 12 cloning epochs (no extra env-steps) 0.98-0.99 / 0.99 (2 seeds)
    teacher_coef: float = _f(2.0, lo=0.0, hi=1e3)
    warm_start_epochs: int = _f(12, lo=1, hi=10_000)


def sampling_policy(model: ActorCritic, deterministic: bool = False) -> ActFn:
    """A rollout's act function for a memoryless actor-critic."""

    def act(obs: torch.Tensor, mask: torch.Tensor, history: History | None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, value, _ = model(obs)
        action, logprob = sample_action(model, obs, mask, logits, deterministic=deterministic)
        return action, logprob, value

    return act


def ppo_step(model: ActorCritic, optimizer: torch.optim.Optimizer, rollout: Rollout,
             cfg: PPOConfig) -> dict[str, float]:
    """One PPO update of a memoryless actor-critic on a rollout (transitions shuffled)."""
    advantages, returns = rollout.episode_advantages(cfg.gamma, cfg.gae_lambda,
                                                     cfg.reward_scale, cfg.credit)
    n = rollout.steps * rollout.num_envs
    obs = rollout.obs.reshape(n, -1)
    mask = rollout.mask.reshape(n, *rollout.mask.shape[2:])
    action = rollout.action.reshape(n, -1)
    per = advantages.shape[2:]  # () joint, (B,) per base station
    data = {"logprob": rollout.logprob.reshape(n), "advantages": advantages.reshape(n, *per),
            "value": rollout.value.reshape(n, *per), "returns": returns.reshape(n, *per),
            "valid": rollout.valid.reshape(n)}

    prefix = teacher_forcing(model, obs, action)  # replayed once, indexed per minibatch
    if cfg.credit != "joint":  # the rollout stored the joint log-probability only
        with torch.no_grad():
            data["logprob"] = credited_log_prob(model, obs, model(obs)[0], mask, prefix,
                                                action, cfg.credit)
    teacher = None
    if cfg.teacher_coef > 0:
        labels = teacher_labels(cfg, model.layout, rollout.obs, rollout.mask).reshape(n, -1)
        teacher = (labels, teacher_forcing(model, obs, labels))

    def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        static, value, _ = model(obs[idx])
        dist = MaskedMultiCategorical(forced(model, obs[idx], static, prefix[idx]), mask[idx])
        out = (dist.credited_log_prob(action[idx], cfg.credit, model.layout.n_bs),
               dist.entropy(), value)
        if teacher is None:
            return out
        labels, t_prefix = teacher
        return (*out, cfg.teacher_coef * teacher_loss(
            model, obs[idx], static, mask[idx], t_prefix[idx], labels[idx], data["valid"][idx]))

    stats = ppo_update(evaluate, data, n, optimizer, list(model.parameters()), cfg.loss,
                       cfg.update_epochs, cfg.num_minibatches, cfg.max_grad_norm,
                       cfg.target_kl)
    stats["explained_variance"] = explained_variance(rollout.value.flatten(), returns.flatten())
    return stats


class PPOAgent(Agent):
    """Memoryless link-set actor-critic trained with PPO."""

    name = "ppo"

    config_type = PPOConfig
    config: PPOConfig

    def build(self) -> None:
        self.model = self._new_model()
        self.optimizer = self.adam(self.model.parameters())

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model}

    def _new_model(self) -> ActorCritic:
        return self.network(cqi_prior=self.config.cqi_prior)

    # ------------------------------------------------------------------ training
    def learn(self, env: Any, total_env_steps: int, callback: Callback | None = None,
              cursor: EnvCursor | None = None) -> dict[str, Any]:
        """CleanRL's loop on any vector environment of this layout, in this process:
        rollouts of ``num_steps`` across episode boundaries (autoreset), one PPO update
        each, learning rate annealed to 0 over ``total_env_steps``."""
        cfg = self.config
        per_iter = cfg.num_steps * env.num_envs
        cursor = cursor or EnvCursor.start(env, seed=self.seed)

        def iteration(it: int) -> dict[str, float]:
            rollout = collect(env, cursor, cfg.num_steps, sampling_policy(self.model),
                              self.layout)
            return self._update(rollout)

        return self.training_loop(max(1, total_env_steps // per_iter), per_iter, iteration,
                                  callback)

    def _update(self, rollout: Rollout) -> dict[str, float]:
        stats = ppo_step(self.model, self.optimizer, rollout, self.config)
        stats.update(episode_return_stats(rollout))
        return stats

    def meta_train(self, envs: EnvSource, tasks: TaskDistribution, budget: Budget,
                   callback: Callback | None = None) -> dict[str, Any]:
        """Multi-task PPO through the rollout layer: each iteration is one episode per
        environment (``budget.num_envs`` of them); every ``resample_tasks_every`` iterations
        each environment gets a new training task and deployment. Without
        ``config.pretrain`` this returns at once (0 env-steps): the from-scratch baseline
        learns only inside :meth:`adapt`."""
        if not self.config.pretrain:
            return {"env_steps": self.env_steps, "wall_s": 0.0, "iterations": 0, "last": {}}
        rng = np.random.default_rng(self.seed + 7_771)
        n = budget.num_envs
        drawn: dict[str, Any] = {}
        with opened(envs, budget.envs_per_job) as rollouts:
            frames = rollouts.config.dynamics.episode_frames
            self.warm_start(rollouts.config, tasks, budget)

            def iteration(it: int) -> dict[str, float]:
                if it % self.config.resample_tasks_every == 0:
                    draw = int(rng.integers(2**31))
                    drawn.update(first=it, deployments=list(zip(
                        tasks.sample("train", draw, n),
                        (int(s) for s in rng.integers(2**31, size=n)))))
                slots = [EnvSlot(t, s, 0, z) for (t, s), z in
                         zip(drawn["deployments"], draw_sample_seeds(n))]
                rollout = rollouts.collect([(slots, PolicySnapshot.capture(self.model))],
                                           first_episode=it - drawn["first"])
                return self._update(rollout)

            return self.training_loop(self.rl_iterations(budget, n * frames), n * frames,
                                      iteration, callback)

    # ------------------------------------------------------------------ meta-test
    def adapt(self, envs: EnvSource, task: Task, episodes: int, instance_seed: int = 0,
              num_envs: int | None = None) -> list[dict[str, float]]:
        """Fine-tune with PPO on the held-out task: one update per adaptation episode
        (``num_envs`` environments, default: the size of a given vector env)."""
        cfg = self.config
        n = source_envs(envs, num_envs)
        model = copy.deepcopy(self.model) if cfg.adapt_from == "init" else self._new_model()
        optimizer = self.adam(model.parameters(), lr=cfg.adapt_learning_rate)
        curve: list[dict[str, float]] = []
        with opened(envs) as rollouts:
            for episode in range(episodes + 1):
                slots = task_slots(task, instance_seed, draw_sample_seeds(n))
                # the sampled policy and its mode on the same episodes, side by side
                rollout, mode = rollouts.collect_groups(
                    [(slots, PolicySnapshot.capture(model)),
                     (slots, PolicySnapshot.capture(model, deterministic=True))],
                    first_episode=episode)
                curve.extend(curve_points(rollout, mode, episode))
                if episode < episodes:
                    ppo_step(model, optimizer, rollout, cfg)
        return curve

    @torch.no_grad()
    def act(self, obs: np.ndarray, mask: np.ndarray, state: Any = None,
            deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """One decision; with a feedback memory ``state`` is that memory (None at a
        deployment's start, then the returned state), else None."""
        seen, memory = step_view(self.config.feedback_memory, self.layout, obs, state)
        act = sampling_policy(self.model, deterministic)
        action, _, _ = act(torch.as_tensor(seen, dtype=torch.float32),
                           torch.as_tensor(view_mask(memory, mask), dtype=torch.bool), None)
        return env_action(memory, action.numpy()), memory
