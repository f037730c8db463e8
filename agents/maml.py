"""MAML for policy gradients: meta-learns an initialisation that one (or a few) inner
policy-gradient steps on a task's episodes turn into a good scheduler for that task.

Inner step (per task):  phi = theta - inner_lr * grad L_in(theta; D_0), with functional
parameters (``torch.func.functional_call``). The meta-gradient flows through phi(theta):

* ``first_order``: grad L_in is treated as a constant (FOMAML);
* ``dice``: L_in is the Loaded-DiCE objective, whose gradients of every order are unbiased
  estimators of the return's, so the Hessian term includes the dependence of the sampled
  episodes on theta;
* ``lvc``: the low-variance-curvature objective (ProMP): per-step importance ratio only.

All three give the same inner step; they differ only in the meta-gradient. The outer step is
PPO-clipped over the meta-batch of tasks, recomputing phi(theta) in every epoch. Meta-testing
runs :meth:`MAMLAgent.adapt`, which replays the same inner step on the held-out task.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.func import functional_call

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
    linear_schedule,
    load_checkpoint,
    masked_mean,
    normalize_advantages,
    ppo_update,
    save_checkpoint,
    seed_everything,
)
from agents.networks import ActorCritic
from agents.ppo import episode_return_stats
from agents.rollout import Rollout, records_by_episode
from agents.rollouts import (
    EnvSlot,
    EnvSource,
    PolicySnapshot,
    RolloutBackend,
    draw_sample_seeds,
    opened,
    source_envs,
    task_slots,
)
from bridge.layout import ObservationLayout
from bridge.tasks import Task, TaskDistribution

MetaGradient = Literal["first_order", "dice", "lvc"]
Params = dict[str, torch.Tensor]


def magic_box(x: torch.Tensor) -> torch.Tensor:
    """DiCE's operator: evaluates to 1, its derivative is magic_box(x) * dx."""
    return torch.exp(x - x.detach())


def inner_objective(logprob: torch.Tensor, advantages: torch.Tensor, valid: torch.Tensor,
                    estimator: MetaGradient) -> torch.Tensor:
    """Inner-loop loss (to minimise) of (T, E) episodes, one episode per column starting at
    t = 0. Every estimator has the policy gradient mean(grad logprob * A) as first
    derivative; higher derivatives differ (see the module docstring)."""
    if estimator == "dice":
        # Loaded DiCE: sum_t [box(S_t) - box(S_{t-1})] A_t, S_t = sum_{t' <= t} log pi_t'
        cumulative = torch.cumsum(logprob * valid, dim=0)
        surrogate = (magic_box(cumulative) - magic_box(cumulative - logprob * valid)) \
            * advantages
    elif estimator == "lvc":
        surrogate = magic_box(logprob) * advantages
    elif estimator == "first_order":
        surrogate = logprob * advantages
    else:
        raise ValueError(f"meta_gradient={estimator!r}: expected 'first_order', 'dice' or "
                         "'lvc'")
    return -masked_mean(surrogate, valid)


def adapt_parameters(params: Params, loss: torch.Tensor, lr: float, create_graph: bool
                     ) -> Params:
    """One SGD step phi = params - lr * grad(loss). With ``create_graph`` the step stays
    differentiable (second-order meta-gradient); without it grad is a constant."""
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph,
                                allow_unused=True)
    return {n: params[n] if g is None else params[n] - lr * g for n, g in
            zip(names, grads, strict=True)}


@dataclass
class MAMLConfig:
    """MAML hyperparameters."""

    meta_gradient: MetaGradient = "dice"
    inner_lr: float = 0.01  # one step moves the 40-head joint policy ~5-10 nats (KL)
    inner_steps: int = 1
    outer_lr: float = 1e-3
    anneal_lr: bool = True
    adam_eps: float = 1e-5
    outer_epochs: int = 3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    ent_coef: float = 0.003
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64
    link_hidden: int = 32
    rank: int = 16
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
        return PPOLossConfig(self.clip_coef, True, self.ent_coef, self.vf_coef, True)


@dataclass
class TaskBatch:
    """One task's episodes, (T, E, ...) tensors, with advantages from the critic."""

    obs: torch.Tensor
    mask: torch.Tensor
    action: torch.Tensor
    logprob: torch.Tensor
    value: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    valid: torch.Tensor


def split_by_task(rollout: Rollout, n_tasks: int, gamma: float, gae_lambda: float,
                  reward_scale: float = 1.0) -> list[TaskBatch]:
    """Environments i*E..(i+1)*E-1 of a rollout belong to task i."""
    advantages, returns = rollout.episode_advantages(gamma, gae_lambda, reward_scale)
    per = rollout.num_envs // n_tasks
    out = []
    for i in range(n_tasks):
        s = slice(i * per, (i + 1) * per)
        out.append(TaskBatch(rollout.obs[:, s], rollout.mask[:, s], rollout.action[:, s],
                             rollout.logprob[:, s], rollout.value[:, s], advantages[:, s],
                             returns[:, s], rollout.valid[:, s]))
    return out


def pool_batches(batches: list[TaskBatch]) -> TaskBatch:
    """One batch holding the episodes of ``batches`` side by side (same length T)."""
    return TaskBatch(*(torch.cat([getattr(b, f) for b in batches], dim=1)
                       for f in ("obs", "mask", "action", "logprob", "value", "advantages",
                                 "returns", "valid")))


class MAMLAgent(Agent):
    """MAML over the link-set policy; a separate (non-adapted) critic gives the advantages."""

    name = "maml"

    def __init__(self, layout: ObservationLayout, config: MAMLConfig | None = None,
                 seed: int = 0) -> None:
        self.layout = layout
        self.config = config or MAMLConfig()
        self.seed = seed
        seed_everything(seed)
        cfg = self.config
        self.actor = ActorCritic(layout, cfg.hidden, cfg.link_hidden, cfg.rank,
                                 idle_bias=cfg.idle_bias, **allocation_arch(cfg))
        self.critic = ActorCritic(layout, cfg.hidden, cfg.link_hidden, cfg.rank)
        self.optimizer = torch.optim.Adam(
            [*self.actor.parameters(), *self.critic.parameters()], lr=cfg.outer_lr,
            eps=cfg.adam_eps)
        self.env_steps = 0

    # ------------------------------------------------------------------ pieces
    def theta(self) -> Params:
        return dict(self.actor.named_parameters())

    def policy(self, params: Params, obs: torch.Tensor, mask: torch.Tensor,
               action: torch.Tensor) -> MaskedMultiCategorical:
        """The policy with ``params`` on the stored ``action`` (teacher-forced when the
        allocation is sequential)."""
        logits, _, _ = functional_call(self.actor, params, (obs,), {"prefix": action})
        return MaskedMultiCategorical(logits, mask)

    def inner_loss(self, params: Params, batch: TaskBatch) -> torch.Tensor:
        dist = self.policy(params, batch.obs, batch.mask, batch.action)
        adv = normalize_advantages(batch.advantages, batch.valid)
        return inner_objective(dist.log_prob(batch.action), adv, batch.valid,
                               self.config.meta_gradient)

    def adapted(self, params: Params, batches: list[TaskBatch], create_graph: bool) -> Params:
        """The inner loop: one adaptation step per batch, in order."""
        for batch in batches:
            params = adapt_parameters(params, self.inner_loss(params, batch),
                                      self.config.inner_lr, create_graph)
        return params

    def snapshot(self, params: Params | None = None) -> PolicySnapshot:
        """The sampling policy for the rollout layer: the actor with ``params`` (default
        theta)."""
        return PolicySnapshot.capture(self.actor, params)

    def collect(self, rollouts: RolloutBackend,
                groups: list[tuple[list[EnvSlot], PolicySnapshot]], episode: int) -> Rollout:
        """Episode ``episode`` of every group's slots; values from the (non-adapted) critic,
        evaluated on the whole rollout at once."""
        rollout = rollouts.collect(groups, first_episode=episode)
        with torch.no_grad():
            rollout.value = self.critic(rollout.obs)[1]
            rollout.next_value = self.critic(rollout.final_obs)[1]
        return rollout

    # ------------------------------------------------------------------ meta-training
    def meta_train(self, envs: EnvSource, tasks: TaskDistribution, budget: Budget,
                   callback: Callback | None = None) -> dict[str, Any]:
        """Meta-batches of ``meta_batch_tasks`` training tasks x ``adapt_envs`` environments;
        every task's episodes are rollout jobs of their own (its policy is its own phi)."""
        cfg = self.config
        n_tasks, per_task = budget.meta_batch_tasks, budget.adapt_envs
        rng = np.random.default_rng(self.seed + 9_151)
        second_order = cfg.meta_gradient != "first_order"
        run = TrainingRun(callback, budget.max_meta_train_s)
        with opened(envs, budget.envs_per_job) as rollouts:
            frames = rollouts.config.dynamics.episode_frames
            per_iter = (cfg.inner_steps + 1) * n_tasks * per_task * frames
            iterations = max(1, budget.meta_train_env_steps // per_iter)
            for it in range(iterations):
                if cfg.anneal_lr:
                    self.optimizer.param_groups[0]["lr"] = linear_schedule(cfg.outer_lr,
                                                                          it / iterations)
                batch_tasks = tasks.sample("train", int(rng.integers(2**31)), n_tasks)
                inst_seeds = [int(s) for s in rng.integers(2**31, size=n_tasks)]
                inner: list[list[TaskBatch]] = []  # [step][task]
                sampling = [self.snapshot()] * n_tasks
                for step in range(cfg.inner_steps + 1):
                    rollout = self.collect(
                        rollouts, [(task_slots(t, s, draw_sample_seeds(per_task)), policy)
                                   for t, s, policy in zip(batch_tasks, inst_seeds, sampling)],
                        step)
                    if step == 0:
                        pre = episode_return_stats(rollout)
                    batches = split_by_task(rollout, n_tasks, cfg.gamma, cfg.gae_lambda,
                                            cfg.reward_scale)
                    if step < cfg.inner_steps:
                        inner.append(batches)
                        sampling = [
                            self.snapshot(self.adapted(
                                self.theta(), [inner[s][i] for s in range(len(inner))],
                                create_graph=False))
                            for i in range(n_tasks)]
                self.env_steps += per_iter
                outer = batches
                data = {key: torch.stack([getattr(b, key) for b in outer])
                        for key in ("logprob", "advantages", "value", "returns", "valid")}

                def evaluate(idx: torch.Tensor, inner: list[list[TaskBatch]] = inner,
                             outer: list[TaskBatch] = outer
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
                    logps, ents, values = [], [], []
                    for i in idx.tolist():
                        phi = self.adapted(self.theta(), [step[i] for step in inner],
                                           create_graph=second_order)
                        dist = self.policy(phi, outer[i].obs, outer[i].mask,
                                           outer[i].action)
                        logps.append(dist.log_prob(outer[i].action))
                        ents.append(dist.entropy())
                        values.append(self.critic(outer[i].obs)[1])
                    return torch.stack(logps), torch.stack(ents), torch.stack(values)

                stats = ppo_update(evaluate, data, n_tasks, self.optimizer,
                                   [*self.actor.parameters(), *self.critic.parameters()],
                                   cfg.loss, cfg.outer_epochs, 1, cfg.max_grad_norm)
                post = episode_return_stats(rollout)
                stats.update(post)
                # does the inner step help? pre: theta's episodes, post: phi's (same tasks)
                for key in ("episode_return", "throughput_mbps"):
                    stats[f"pre_adapt_{key}"] = pre.get(f"episode_{key}", float("nan"))
                    stats[f"post_adapt_{key}"] = post.get(f"episode_{key}", float("nan"))
                stats["adapt_gain_return"] = (stats["post_adapt_episode_return"]
                                              - stats["pre_adapt_episode_return"])
                if run.record(stats, self.env_steps):
                    break
        return run.summary(self.env_steps)

    # ------------------------------------------------------------------ meta-test
    def adapt(self, envs: EnvSource, task: Task, episodes: int, instance_seed: int = 0,
              num_envs: int | None = None) -> list[dict[str, float]]:
        """Episode k runs the policy after the meta-trained inner loop on the k episodes seen
        so far. Up to ``inner_steps`` episodes this is exactly the meta-training inner loop
        (one step per episode); beyond it, the last inner step is recomputed from the
        previous step's parameters with all episodes since pooled (a less noisy gradient of
        the same size), instead of stacking more steps than the initialisation was trained
        for: stacked steps of ``inner_lr`` drifted off and made later episodes worse
        (measured on training tasks: 38 -> 44 -> 26 -> 26 Mb/s on the small study)."""
        cfg = self.config
        n = source_envs(envs, num_envs)
        theta = {k: v.detach().requires_grad_(True) for k, v in self.theta().items()}
        params = theta
        seen: list[TaskBatch] = []
        curve: list[dict[str, float]] = []
        with opened(envs) as rollouts:
            for episode in range(episodes + 1):
                rollout = self.collect(
                    rollouts, [(task_slots(task, instance_seed, draw_sample_seeds(n)),
                                self.snapshot(params))], episode)
                curve.extend(records_by_episode(
                    [dict(r, episode=0) for r in rollout.episode_records], CURVE_METRICS))
                if episode < episodes:
                    seen.append(split_by_task(rollout, 1, cfg.gamma, cfg.gae_lambda,
                                              cfg.reward_scale)[0])
                    steps = seen if len(seen) <= cfg.inner_steps else (
                        seen[:cfg.inner_steps - 1]
                        + [pool_batches(seen[cfg.inner_steps - 1:])])
                    params = {k: v.detach().requires_grad_(True) for k, v in
                              self.adapted(theta, steps, create_graph=False).items()}
        return curve

    @torch.no_grad()
    def act(self, obs: np.ndarray, mask: np.ndarray, state: Any = None,
            deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """Act with the meta-learned initialisation (``state`` may carry adapted params)."""
        actor = self.actor
        if isinstance(state, dict):  # adapted parameters: a network that holds them
            actor = copy.deepcopy(self.actor)
            actor.load_state_dict({k: v.detach() for k, v in state.items()}, strict=False)
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        logits, _, _ = actor(obs_t)
        action, _ = sample_action(actor, obs_t, torch.as_tensor(mask, dtype=torch.bool), logits,
                                  deterministic=deterministic)
        return action.numpy(), state

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path) -> None:
        save_checkpoint(path, {"actor": self.actor, "critic": self.critic},
                        {"agent": self.name, "config": asdict(self.config), "seed": self.seed,
                         "layout": asdict(self.layout), "env_steps": self.env_steps})

    @classmethod
    def load(cls, path: str | Path) -> MAMLAgent:
        payload = load_checkpoint(path)
        meta = payload["meta"]
        agent = cls(ObservationLayout(**meta["layout"]), MAMLConfig(**meta["config"]),
                    seed=meta["seed"])
        agent.actor.load_state_dict(payload["modules"]["actor"])
        agent.critic.load_state_dict(payload["modules"]["critic"])
        agent.env_steps = meta["env_steps"]
        return agent
