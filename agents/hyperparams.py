"""Agent hyper-parameters: the fields every agent shares, defined once, and their validation.

Each agent's config is a dataclass validated like the scenario (:mod:`bridge.config`): a
value of the wrong type or outside its range raises :class:`ConfigError` naming
``agents.<agent>.<field>``, the value and the allowed range, and :func:`config_from_table`
refuses unknown fields. The experiment file's ``[agents.<name>]`` tables and
``--set agents.<name>.<field>=value`` arrive here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from agents.policy_gradient import PPOLossConfig
from bridge.config import ConfigError, _f, _Section

WarmStart = Literal["none", "greedy_max_sinr", "proportional_fair", "greedy_measured_sinr"]


@dataclass
class AgentConfig(_Section):
    """The hyper-parameters PPO, RL^2 and MAML share (same meaning, same defaults)."""

    _section_name = "agents"

    anneal_lr: bool = True  # learning rate linearly to 0 over the training run
    adam_eps: float = _f(1e-5, lo=0.0, hi=1.0, open_lo=True)
    gamma: float = _f(0.99, lo=0.0, hi=1.0)
    gae_lambda: float = _f(0.95, lo=0.0, hi=1.0)
    clip_coef: float = _f(0.2, lo=0.0, hi=10.0, open_lo=True)
    ent_coef: float = _f(0.003, lo=0.0, hi=10.0)
    vf_coef: float = _f(0.5, lo=0.0, hi=100.0)
    max_grad_norm: float = _f(0.5, lo=0.0, hi=1e6, open_lo=True)
    hidden: int = _f(64, lo=1, hi=4_096)
    link_hidden: int = _f(32, lo=1, hi=4_096)
    rank: int = _f(16, lo=1, hi=1_024)
    # fixed reward multiplier for the critic's targets: per-frame rewards are O(1) and
    # returns over 40-200 frames at gamma 0.99 reach ~30, which made the value loss (and its
    # gradient through the shared encoder) swamp the policy gradient
    reward_scale: float = _f(0.1, lo=0.0, hi=1e6, open_lo=True)
    # initial idle logit of every head. The sequential policy's link logits start at
    # log(bytes moved / the best link's), 0 for the best and floored at -5 for a covered or
    # empty link (bridge.allocation.LOG_USEFUL_FLOOR): at -6 an untrained policy idles less
    # than it schedules even a covered link. At -1 an untrained policy left 47% of the heads
    # that could schedule idle (19% at -6, which are covered or blocked), and PPO from
    # scratch sampled 0.79 of the adaptive heuristic, at -6 0.97. On the small network it
    # costs PPO from scratch's mode (0.95 -> 0.64-0.74, one seed); -4.5 restores it (0.95)
    # but costs the main network 1% sampled, 2% mode: an open trade-off
    # (benchmarks/research/RESULTS.md: "Per-base-station credit in the agents, the idle
    # logit, ...", "The small network, one seed", "The idle logit between the two networks")
    idle_bias: float = _f(-6.0, lo=-100.0, hi=100.0)
    # heads decided channel by channel on what earlier choices left
    # (agents.allocation_policy), or independently (the factorised head, which cannot
    # represent a coordinated allocation: benchmarks/research/RESULTS.md); coverage "hard"
    # also masks covered links
    allocation: Literal["independent", "sequential"] = "sequential"
    coverage: Literal["soft", "hard"] = "soft"
    # the sequential policy's initial weight on log(bytes a choice moves now): an untrained
    # policy picks links with probability ~ bytes^prior (greedy's rule made soft; higher is
    # sharper); learned from there
    allocation_prior: float = _f(1.0, lo=0.0, hi=100.0)
    # what turns CQI into bytes for that bookkeeping: scenario facts, which the registry
    # sets from the scenario config (not hyper-parameters to tune)
    channel_hz: float = _f(50e6, lo=0.0, hi=1e12, open_lo=True)
    frame_s: float = _f(0.01, lo=0.0, hi=1.0, open_lo=True)
    # warm start (agents.warm_start): behaviour cloning from this heuristic before RL, on
    # warm_start_rounds episodes of warm_start_tasks training tasks x warm_start_replicas
    # (those env-steps count in the meta-training budget); "none" starts from random weights
    warm_start: WarmStart = "none"
    warm_start_rounds: int = _f(2, lo=1, hi=10_000)
    warm_start_tasks: int = _f(16, lo=1, hi=4_096)
    warm_start_replicas: int = _f(4, lo=1, hi=4_096)
    warm_start_epochs: int = _f(4, lo=1, hi=10_000)
    # what the network sees of earlier frames' SINR measurements (agents.feedback):
    # "penalty" replaces each link-channel's CQI by CQI minus the running interference
    # penalty the adaptive heuristic tracks, kept over the episodes of a rollout job. On by
    # default: it took multi-task PPO + fine-tune from 0.83 to 0.94 and RL^2 from 0.82 to
    # 0.92 of the adaptive heuristic (benchmarks/research/RESULTS.md, "Feedback memory");
    # "penalty_ordered" also decides the channels in the heuristic's order (most interfered
    # first): fine-tune 0.99 -> 1.00-1.01 and attention 0.98 -> 0.99-1.01 sampled, SINR
    # violations 0.35 -> 0.33 and 0.34 -> 0.32 (RESULTS.md, "The channel order in the
    # policy"); "penalty_ordered_debounced" also holds busy, in the view's action mask, the
    # channels the heuristic's sensing debounce holds busy (the warm-started agents collide
    # with incumbents about twice as often as the heuristic), which on one seed cost
    # fine-tune and MAML 1.2-1.8% throughput for 0.003-0.006 fewer SINR violations
    # (RESULTS.md, "Why multi-task PPO and MAML schedule with more SINR violations")
    feedback_memory: Literal["none", "penalty", "penalty_ordered",
                             "penalty_ordered_debounced"] = "penalty_ordered"
    # how a frame's reward is credited (agents.policy_gradient.CreditKind): "joint" (one
    # advantage and ratio for the whole 40-head action) or "base_station" (each base
    # station's share of the reward, info["reward_bs"], with its own value, advantage and
    # ratio over its heads)
    credit: Literal["joint", "base_station"] = "joint"

    @property
    def base_learning_rate(self) -> float:
        """The learning rate annealing starts from (each agent names its own field)."""
        raise NotImplementedError


@dataclass
class PPOUpdateConfig(AgentConfig):
    """The clipped-PPO update the feed-forward and the recurrent agents both run."""

    learning_rate: float = _f(1e-3, lo=0.0, hi=1.0, open_lo=True)
    num_minibatches: int = _f(4, lo=1, hi=65_536)
    update_epochs: int = _f(4, lo=1, hi=10_000)
    norm_adv: bool = True
    clip_vloss: bool = True
    # teacher term (agents.teacher): teacher_coef x the NLL of the warm-start heuristic's
    # action at the states RL visits (0: none)
    teacher_coef: float = _f(0.0, lo=0.0, hi=1e3)

    def _validate(self) -> None:
        from agents.teacher import check_teacher

        check_teacher(self)

    @property
    def base_learning_rate(self) -> float:
        return self.learning_rate

    @property
    def loss(self) -> PPOLossConfig:
        return PPOLossConfig(self.clip_coef, self.clip_vloss, self.ent_coef, self.vf_coef,
                             self.norm_adv)


C = TypeVar("C", bound=AgentConfig)


def config_from_table(cls: type[C], table: dict[str, Any], where: str) -> C:
    """``cls`` built from a TOML table; unknown fields are refused, naming ``where``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of fields, got {table!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"unknown field {where}.{unknown[0]}; known fields: {sorted(known)}")
    return cls(**table)
