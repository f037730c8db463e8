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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.func import functional_call

from agents.agent import Agent, Callback, curve_points, episode_return_stats
from agents.allocation_policy import sample_action, teacher_forcing
from agents.budget import Budget
from agents.feedback import env_action, step_view, view_mask
from agents.hyperparams import AgentConfig, WarmStart
from agents.policy_gradient import (
    CreditKind,
    MaskedMultiCategorical,
    PPOLossConfig,
    masked_mean,
    normalize_advantages,
    ppo_update,
)
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
from agents.rollouts.trajectory import Rollout
from agents.teacher import teacher_labels
from bridge.config import _f
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
    derivative; higher derivatives differ (see the module docstring). With per-base-station
    credit ``logprob`` and ``advantages`` are (T, E, B) and a step's term is the sum over its
    base stations."""
    if logprob.dim() > valid.dim():
        valid = valid.unsqueeze(-1)
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
    if surrogate.dim() > 2:
        surrogate = surrogate.sum(-1)
    return -masked_mean(surrogate, valid.reshape(surrogate.shape))


def adapt_parameters(params: Params, loss: torch.Tensor, lr: float, create_graph: bool,
                     max_grad_norm: float = 0.0) -> Params:
    """One SGD step phi = params - lr * grad(loss). With ``create_graph`` the step stays
    differentiable (second-order meta-gradient); without it grad is a constant. A positive
    ``max_grad_norm`` rescales the gradient to at most that global norm first (the scale is
    part of the graph too)."""
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph,
                                allow_unused=True)
    if max_grad_norm > 0:
        norm = torch.sqrt(sum((g * g).sum() for g in grads if g is not None))
        scale = (max_grad_norm / (norm + 1e-6)).clamp(max=1.0)
        grads = tuple(None if g is None else g * scale for g in grads)
    return {n: params[n] if g is None else params[n] - lr * g for n, g in
            zip(names, grads, strict=True)}


@dataclass
class MAMLConfig(AgentConfig):
    """MAML hyperparameters."""

    _section_name = "agents.maml"

    # the meta-learners start from a clone of greedy max-SINR (their meta-training budget
    # pays for the demonstrations)
    warm_start: WarmStart = "greedy_max_sinr"
    # first-order by default: with the teacher term the second-order (DiCE) meta-gradient
    # reached norms of 10^5 and one seed in three collapsed (0.60 of the adaptive heuristic
    # zero-shot; clipping the inner step to norm 10 did not help: 0.64); first-order kept
    # norms of 10-46 and gave 0.98 sampled / 0.99 mode on that seed
    # (benchmarks/research/RESULTS.md, "MAML's meta-gradient"). "dice" and "lvc" remain
    meta_gradient: MetaGradient = "first_order"
    # one step moves the 40-head joint policy ~5-10 nats (KL)
    inner_lr: float = _f(0.01, lo=0.0, hi=100.0, open_lo=True)
    inner_steps: int = _f(1, lo=1, hi=100)
    # the inner step's gradient is rescaled to at most this global norm (0: not clipped)
    inner_max_grad_norm: float = _f(0.0, lo=0.0, hi=1e6)
    outer_lr: float = _f(1e-3, lo=0.0, hi=1.0, open_lo=True)
    outer_epochs: int = _f(3, lo=1, hi=10_000)
    # the teacher term (agents.teacher) on the adapted policy phi in the outer loss, as the
    # PPO agents have it during RL: teacher_coef x the NLL of greedy's action (on the feedback
    # memory's view) at the states phi visited, with 12 cloning epochs in the warm start
    # (benchmarks/research/RESULTS.md, "Per-base-station credit in the agents, the idle
    # logit, MAML's teacher term")
    teacher_coef: float = _f(2.0, lo=0.0, hi=1e3)
    warm_start_epochs: int = _f(12, lo=1, hi=10_000)

    def _validate(self) -> None:
        from agents.teacher import check_teacher

        check_teacher(self)

    @property
    def base_learning_rate(self) -> float:
        return self.outer_lr

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
    # the teacher-forcing replay of ``action`` (agents.allocation_policy.teacher_forcing),
    # prepared once: the inner and outer losses evaluate the same batch many times
    prefix: Any = None

    @property
    def forcing(self) -> Any:
        return self.action if self.prefix is None else self.prefix


def split_by_task(rollout: Rollout, n_tasks: int, gamma: float, gae_lambda: float,
                  reward_scale: float = 1.0, model: torch.nn.Module | None = None,
                  credit: CreditKind = "joint") -> list[TaskBatch]:
    """Environments i*E..(i+1)*E-1 of a rollout belong to task i; with ``model``, each
    batch carries its prepared teacher forcing."""
    advantages, returns = rollout.episode_advantages(gamma, gae_lambda, reward_scale, credit)
    per = rollout.num_envs // n_tasks
    out = []
    for i in range(n_tasks):
        s = slice(i * per, (i + 1) * per)
        prefix = None if model is None else teacher_forcing(model, rollout.obs[:, s],
                                                             rollout.action[:, s])
        out.append(TaskBatch(rollout.obs[:, s], rollout.mask[:, s], rollout.action[:, s],
                             rollout.logprob[:, s], rollout.value[:, s], advantages[:, s],
                             returns[:, s], rollout.valid[:, s], prefix))
    return out


def pool_batches(batches: list[TaskBatch]) -> TaskBatch:
    """One batch holding the episodes of ``batches`` side by side (same length T)."""
    return TaskBatch(*(torch.cat([getattr(b, f) for b in batches], dim=1)
                       for f in ("obs", "mask", "action", "logprob", "value", "advantages",
                                 "returns", "valid")))


class MAMLAgent(Agent):
    """MAML over the link-set policy; a separate (non-adapted) critic gives the advantages."""

    name = "maml"

    config_type = MAMLConfig
    config: MAMLConfig
    policy_module = "actor"

    def build(self) -> None:
        self.actor = self.network()
        self.critic = self.network(idle_bias=0.0)
        self.optimizer = self.adam([*self.actor.parameters(), *self.critic.parameters()])

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"actor": self.actor, "critic": self.critic}

    # ------------------------------------------------------------------ pieces
    def theta(self) -> Params:
        return dict(self.actor.named_parameters())

    def policy(self, params: Params, batch: TaskBatch) -> MaskedMultiCategorical:
        """The policy with ``params`` on the batch's stored actions (teacher-forced when the
        allocation is sequential)."""
        logits, _, _ = functional_call(self.actor, params, (batch.obs,),
                                       {"prefix": batch.forcing})
        return MaskedMultiCategorical(logits, batch.mask)

    def inner_loss(self, params: Params, batch: TaskBatch) -> torch.Tensor:
        dist = self.policy(params, batch)
        adv = normalize_advantages(batch.advantages, batch.valid)
        return inner_objective(self.credited(dist, batch), adv, batch.valid,
                               self.config.meta_gradient)

    def credited(self, dist: MaskedMultiCategorical, batch: TaskBatch) -> torch.Tensor:
        """The batch's log-probabilities under ``dist``, joint or per base station."""
        return dist.credited_log_prob(batch.action, self.config.credit, self.layout.n_bs)

    def adapted(self, params: Params, batches: list[TaskBatch], create_graph: bool) -> Params:
        """The inner loop: one adaptation step per batch, in order."""
        for batch in batches:
            params = adapt_parameters(params, self.inner_loss(params, batch),
                                      self.config.inner_lr, create_graph,
                                      self.config.inner_max_grad_norm)
        return params

    def snapshot(self, params: Params | None = None, deterministic: bool = False
                 ) -> PolicySnapshot:
        """The sampling policy for the rollout layer: the actor with ``params`` (default
        theta); its mode with ``deterministic``."""
        return PolicySnapshot.capture(self.actor, params, deterministic)

    def collect(self, rollouts: RolloutBackend,
                groups: list[tuple[list[EnvSlot], PolicySnapshot]], episode: int) -> Rollout:
        """Episode ``episode`` of every group's slots; values from the (non-adapted) critic,
        evaluated on the whole rollout at once."""
        return self.with_values(rollouts.collect(groups, first_episode=episode))

    def with_values(self, rollout: Rollout) -> Rollout:
        """``rollout`` with values from the (non-adapted) critic, evaluated on it at once."""
        with torch.no_grad():
            rollout.value = self.critic(rollout.obs)[1]
            rollout.next_value = self.critic(rollout.final_obs)[1]
        return rollout

    # ------------------------------------------------------------------ meta-training
    def meta_train(self, envs: EnvSource, tasks: TaskDistribution, budget: Budget,
                   callback: Callback | None = None) -> dict[str, Any]:
        """Meta-batches of ``meta_batch_tasks`` training tasks x ``adapt_envs`` environments;
        every task's episodes are rollout jobs of their own (its policy is its own phi)."""
        n_tasks, per_task = budget.meta_batch_tasks, budget.adapt_envs
        rng = np.random.default_rng(self.seed + 9_151)
        with opened(envs, budget.envs_per_job) as rollouts:
            frames = rollouts.config.dynamics.episode_frames
            per_iter = (self.config.inner_steps + 1) * n_tasks * per_task * frames
            self.warm_start(rollouts.config, tasks, budget)

            def iteration(it: int) -> dict[str, float]:
                batch_tasks = tasks.sample("train", int(rng.integers(2**31)), n_tasks)
                inst_seeds = [int(s) for s in rng.integers(2**31, size=n_tasks)]
                inner, outer, pre, rollout = self._meta_batch(rollouts, batch_tasks,
                                                              inst_seeds, per_task)
                stats = self._outer_update(inner, outer)
                post = episode_return_stats(rollout)
                stats.update(post)
                # does the inner step help? pre: theta's episodes, post: phi's (same tasks)
                for key in ("episode_return", "throughput_mbps"):
                    stats[f"pre_adapt_{key}"] = pre.get(f"episode_{key}", float("nan"))
                    stats[f"post_adapt_{key}"] = post.get(f"episode_{key}", float("nan"))
                stats["adapt_gain_return"] = (stats["post_adapt_episode_return"]
                                              - stats["pre_adapt_episode_return"])
                return stats

            return self.training_loop(self.rl_iterations(budget, per_iter), per_iter,
                                      iteration, callback)

    def _meta_batch(self, rollouts: RolloutBackend, batch_tasks: list[Task],
                    inst_seeds: list[int], per_task: int
                    ) -> tuple[list[list[TaskBatch]], list[TaskBatch], dict[str, float],
                               Rollout]:
        """The episodes of one meta-batch: each inner step's batches ([step][task]), the
        outer batches (after the inner loop), theta's episode statistics and the last
        rollout."""
        cfg = self.config
        n_tasks = len(batch_tasks)
        inner: list[list[TaskBatch]] = []
        sampling = [self.snapshot()] * n_tasks
        pre: dict[str, float] = {}
        for step in range(cfg.inner_steps + 1):
            rollout = self.collect(
                rollouts, [(task_slots(t, s, draw_sample_seeds(per_task)), policy)
                           for t, s, policy in zip(batch_tasks, inst_seeds, sampling)], step)
            if step == 0:
                pre = episode_return_stats(rollout)
            batches = split_by_task(rollout, n_tasks, cfg.gamma, cfg.gae_lambda,
                                    cfg.reward_scale, self.actor, cfg.credit)
            if step < cfg.inner_steps:
                inner.append(batches)
                sampling = [self.snapshot(self.adapted(self.theta(), [b[i] for b in inner],
                                                       create_graph=False))
                            for i in range(n_tasks)]
        return inner, batches, pre, rollout

    def _outer_update(self, inner: list[list[TaskBatch]], outer: list[TaskBatch]
                      ) -> dict[str, float]:
        """PPO-clipped outer step over the meta-batch's tasks, phi(theta) recomputed in every
        epoch (differentiably unless first-order)."""
        cfg = self.config
        second_order = cfg.meta_gradient != "first_order"
        data = {key: torch.stack([getattr(b, key) for b in outer])
                for key in ("logprob", "advantages", "value", "returns", "valid")}
        teacher = [] if cfg.teacher_coef > 0 else None
        for batch in outer if teacher is not None else ():
            labels = teacher_labels(cfg, self.layout, batch.obs, batch.mask)
            teacher.append((labels, teacher_forcing(self.actor, batch.obs, labels)))
        if cfg.credit != "joint":  # the rollouts stored the joint log-probability only
            olds = []
            for i, batch in enumerate(outer):
                phi = {k: v.detach() for k, v in self.adapted(
                    self.theta(), [step[i] for step in inner], create_graph=False).items()}
                with torch.no_grad():
                    olds.append(self.credited(self.policy(phi, batch), batch))
            data["logprob"] = torch.stack(olds)

        def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
            logps, ents, values, nll = [], [], [], []
            for i in idx.tolist():
                phi = self.adapted(self.theta(), [step[i] for step in inner],
                                   create_graph=second_order)
                dist = self.policy(phi, outer[i])
                logps.append(self.credited(dist, outer[i]))
                ents.append(dist.entropy())
                values.append(self.critic(outer[i].obs)[1])
                if teacher is not None:
                    labels, t_prefix = teacher[i]
                    logits, _, _ = functional_call(self.actor, phi, (outer[i].obs,),
                                                   {"prefix": t_prefix})
                    nll.append(masked_mean(-MaskedMultiCategorical(
                        logits, outer[i].mask).log_prob(labels), outer[i].valid))
            out = (torch.stack(logps), torch.stack(ents), torch.stack(values))
            if teacher is None:
                return out
            return (*out, cfg.teacher_coef * torch.stack(nll).mean())

        return ppo_update(evaluate, data, len(outer), self.optimizer,
                          [*self.actor.parameters(), *self.critic.parameters()], cfg.loss,
                          cfg.outer_epochs, 1, cfg.max_grad_norm)

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
                slots = task_slots(task, instance_seed, draw_sample_seeds(n))
                # the sampled policy and its mode on the same episodes, side by side
                rollout, mode = rollouts.collect_groups(
                    [(slots, self.snapshot(params)),
                     (slots, self.snapshot(params, deterministic=True))],
                    first_episode=episode)
                rollout = self.with_values(rollout)
                curve.extend(curve_points(rollout, mode, episode))
                if episode < episodes:
                    seen.append(split_by_task(rollout, 1, cfg.gamma, cfg.gae_lambda,
                                              cfg.reward_scale, self.actor, cfg.credit)[0])
                    steps = seen if len(seen) <= cfg.inner_steps else (
                        seen[:cfg.inner_steps - 1]
                        + [pool_batches(seen[cfg.inner_steps - 1:])])
                    params = {k: v.detach().requires_grad_(True) for k, v in
                              self.adapted(theta, steps, create_graph=False).items()}
        return curve

    @torch.no_grad()
    def act(self, obs: np.ndarray, mask: np.ndarray, state: Any = None,
            deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """Act with the meta-learned initialisation (``state`` may carry adapted params);
        with a feedback memory ``state`` is (params or None, memory) and so is the returned
        state."""
        kind = self.config.feedback_memory
        params, memory = (state if kind != "none" and state is not None else (state, None))
        actor = self.actor
        if isinstance(params, dict):  # adapted parameters: a network that holds them
            actor = copy.deepcopy(self.actor)
            actor.load_state_dict({k: v.detach() for k, v in params.items()}, strict=False)
        seen, memory = step_view(kind, self.layout, obs, memory)
        if kind != "none":
            state = (params, memory)
        obs_t = torch.as_tensor(seen, dtype=torch.float32)
        logits, _, _ = actor(obs_t)
        action, _ = sample_action(actor, obs_t, torch.as_tensor(view_mask(memory, mask),
                                                                dtype=torch.bool),
                                  logits, deterministic=deterministic)
        return env_action(memory, action.numpy()), state
