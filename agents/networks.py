"""Policy networks: a link-set encoder with shared per-link weights, a per-(base station,
channel, link) scheduling head, and an optional trial memory (GRU, or causal attention + GRU).

Every network maps a sequence (T, N, ...) to logits (T, N, B*K, 1+L) and values (T, N); a
rollout calls it with T = 1 and carries the memory state, an update calls it once over whole
trials, and both give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from agents.allocation_policy import AllocationKind, CoverageKind, SequentialAllocation
from agents.feedback import FEEDBACK_KINDS
from agents.policy_gradient import CreditKind, layer_init, scale_observation
from bridge.layout import ObservationLayout

MemoryKind = Literal["none", "gru", "attention"]


@dataclass
class History:
    """What a meta-learner sees of the previous step: its action as a per-(link, channel)
    schedule (T, N, L, K), its reward (T, N) and whether it ended an episode (T, N)."""

    prev_schedule: torch.Tensor
    prev_reward: torch.Tensor
    prev_done: torch.Tensor


def action_to_schedule(action: torch.Tensor, layout: ObservationLayout) -> torch.Tensor:
    """(..., B*K) action -> (..., L, K) float, 1 where link l was scheduled on channel k.

    Lossless: a link has one transmitting base station, so the schedule gives back the action.
    """
    lead = action.shape[:-1]
    one_hot = nn.functional.one_hot(action.long(), layout.n_choices)[..., 1:]  # (..., BK, L)
    per_bs = one_hot.reshape(*lead, layout.n_bs, layout.n_channels, layout.n_links)
    return per_bs.sum(-3).transpose(-1, -2).float()


class LinkSetEncoder(nn.Module):
    """Embeds every link row with the same MLP (the 28 rows are a set, padded rows masked)
    and pools them with the global features into a context vector."""

    def __init__(self, layout: ObservationLayout, link_hidden: int, hidden: int,
                 with_history: bool) -> None:
        super().__init__()
        self.layout = layout
        self.with_history = with_history
        link_in = layout.link_features + (layout.n_channels if with_history else 0)
        global_in = layout.n_channels + 1 + (2 if with_history else 0)
        # the per-link MLP runs on 28 rows per sample: it dominates the cost, so keep it narrow
        self.link_mlp = nn.Sequential(layer_init(nn.Linear(link_in, link_hidden)), nn.Tanh(),
                                      layer_init(nn.Linear(link_hidden, link_hidden)), nn.Tanh())
        self.context = nn.Sequential(
            layer_init(nn.Linear(2 * link_hidden + global_in, hidden)), nn.Tanh())

    def forward(self, fields: dict[str, torch.Tensor], history: History | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> per-link embeddings (..., L, H) and context (..., H)."""
        links, valid = fields["links"], fields["valid"]
        extra_global: list[torch.Tensor] = []
        if self.with_history:
            assert history is not None, "this encoder needs the previous action/reward/done"
            links = torch.cat([links, history.prev_schedule], dim=-1)
            extra_global = [history.prev_reward.unsqueeze(-1), history.prev_done.unsqueeze(-1)]
        emb = self.link_mlp(links) * valid
        count = valid.sum(-2).clamp_min(1.0)
        mean = emb.sum(-2) / count
        # tanh embeddings lie in [-1, 1]: -2 on padded rows keeps them out of the max
        peak = torch.where(valid > 0, emb, torch.full_like(emb, -2.0)).amax(-2)
        glob = torch.cat([fields["incumbent"], fields["time_frac"].unsqueeze(-1),
                          *extra_global], dim=-1)
        return emb, self.context(torch.cat([mean, peak, glob], dim=-1))


class SchedulingHead(nn.Module):
    """Logits of the MultiDiscrete action from link embeddings and a memory/context vector.

    score(l, k) = key(link l) . query_k(memory) + gains(link l) . [cqi_lk, sinr_lk,
    scheduled_lk, incumbent_k]: a low-rank bilinear term plus per-link weights on the
    channel-specific measurements. A link's score is the same on every base station; the mask
    keeps only its own transmitter. Idle gets one logit per (base station, channel).
    """

    def __init__(self, layout: ObservationLayout, link_dim: int, memory_dim: int,
                 rank: int, idle_bias: float = 0.0, cqi_prior: float = 0.0) -> None:
        super().__init__()
        self.layout = layout
        self.rank = rank
        # 0.01 gain: a near-uniform initial policy over the allowed values (CleanRL's actor init)
        self.link_key = layer_init(nn.Linear(link_dim, rank), std=0.01)
        self.link_gain = layer_init(nn.Linear(link_dim, 4), std=0.01)
        with torch.no_grad():
            # cqi_prior > 0 starts from a soft "prefer the better channel" (max-SNR) scheduler
            self.link_gain.bias[0] = cqi_prior
        self.channel_query = layer_init(nn.Linear(memory_dim, layout.n_channels * rank), std=1.0)
        # idle_bias < 0 starts the policy scheduling more often than uniform-with-idle does
        self.idle = layer_init(nn.Linear(memory_dim, layout.n_bs * layout.n_channels), std=0.01,
                               bias=idle_bias)

    def forward(self, fields: dict[str, torch.Tensor], link_emb: torch.Tensor,
                memory: torch.Tensor, prev_schedule: torch.Tensor | None) -> torch.Tensor:
        lay = self.layout
        lead = memory.shape[:-1]
        key = self.link_key(link_emb)  # (..., L, r)
        query = self.channel_query(memory).reshape(*lead, lay.n_channels, self.rank)
        score = torch.einsum("...lr,...kr->...lk", key, query)
        sched = prev_schedule if prev_schedule is not None else torch.zeros_like(fields["cqi"])
        measured = torch.stack([fields["cqi"], fields["sinr"], sched,
                                fields["incumbent"].unsqueeze(-2).expand_as(sched)], dim=-1)
        score = score + (measured * self.link_gain(link_emb).unsqueeze(-2)).sum(-1)
        link_logits = score.transpose(-1, -2).unsqueeze(-3).expand(
            *lead, lay.n_bs, lay.n_channels, lay.n_links)
        idle = self.idle(memory).reshape(*lead, lay.n_bs, lay.n_channels, 1)
        return torch.cat([idle, link_logits], dim=-1).reshape(*lead, lay.action_size,
                                                               lay.n_choices)


class TrialMemory(nn.Module):
    """A GRU over the steps of a trial, optionally preceded by causal multi-head
    self-attention over the last ``window`` steps (an explicit mask: no step sees a later one).

    State: (GRU hidden (1, N, H), past contexts (N, <= window-1, H)); both empty/zero at a
    trial start, so the state resets only there."""

    def __init__(self, dim: int, attention: bool, n_heads: int = 4, window: int = 64) -> None:
        super().__init__()
        self.dim = dim
        self.window = window
        self.attention = nn.MultiheadAttention(dim, n_heads, batch_first=True) if attention \
            else None
        self.norm = nn.LayerNorm(dim) if attention else None
        self.gru = nn.GRU(dim, dim)
        for name, param in self.gru.named_parameters():
            if "weight" in name:
                nn.init.orthogonal_(param, 1.0)
            else:
                nn.init.constant_(param, 0.0)

    def initial_state(self, num_envs: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros(1, num_envs, self.dim), torch.zeros(num_envs, 0, self.dim))

    def causal_mask(self, n_past: int, steps: int) -> torch.Tensor:
        """(steps, n_past + steps) bool, True where query i may NOT attend key j: keys after
        the query, or more than ``window - 1`` steps before it."""
        query_pos = n_past + torch.arange(steps)[:, None]
        key_pos = torch.arange(n_past + steps)[None, :]
        return (key_pos > query_pos) | (key_pos <= query_pos - self.window)

    def forward(self, ctx: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """ctx (T, N, H) -> memory (T, N, H), new state."""
        hidden, past = state
        if self.attention is not None:
            assert self.norm is not None
            query = ctx.transpose(0, 1)  # (N, T, H)
            keys = torch.cat([past, query], dim=1)
            mask = self.causal_mask(past.shape[1], query.shape[1])
            attended, _ = self.attention(query, keys, keys, attn_mask=mask, need_weights=False)
            ctx = self.norm(query + attended).transpose(0, 1)
            past = keys[:, -(self.window - 1):] if self.window > 1 else keys[:, :0]
        out, hidden = self.gru(ctx, hidden)
        return out, (hidden, past)


class ActorCritic(nn.Module):
    """Link-set encoder -> (optional trial memory) -> scheduling head and value head."""

    def __init__(self, layout: ObservationLayout, hidden: int = 64, link_hidden: int = 32,
                 rank: int = 16, memory: MemoryKind = "none", attention_heads: int = 4,
                 attention_window: int = 64, idle_bias: float = 0.0,
                 cqi_prior: float = 0.0, allocation: AllocationKind = "independent",
                 coverage: CoverageKind = "soft", channel_hz: float = 50e6,
                 frame_s: float = 0.01, feedback_memory: str = "none",
                 credit: CreditKind = "joint", allocation_prior: float = 1.0) -> None:
        super().__init__()
        if credit not in ("joint", "base_station"):
            raise ValueError(f"credit={credit!r}: expected 'joint' or 'base_station'")
        if allocation not in ("independent", "sequential"):
            raise ValueError(f"allocation={allocation!r}: expected 'independent' or "
                             "'sequential'")
        if memory not in ("none", "gru", "attention"):
            raise ValueError(f"memory={memory!r}: expected 'none', 'gru' or 'attention'")
        if feedback_memory not in FEEDBACK_KINDS:
            raise ValueError(f"feedback_memory={feedback_memory!r}: expected one of "
                             f"{list(FEEDBACK_KINDS)}")
        self.layout = layout
        # the constructor arguments: a rollout worker rebuilds the same network from them
        self.arch = {"hidden": hidden, "link_hidden": link_hidden, "rank": rank,
                     "memory": memory, "attention_heads": attention_heads,
                     "attention_window": attention_window, "idle_bias": idle_bias,
                     "cqi_prior": cqi_prior, "allocation": allocation, "coverage": coverage,
                     "channel_hz": channel_hz, "frame_s": frame_s,
                     "feedback_memory": feedback_memory, "credit": credit,
                     "allocation_prior": allocation_prior}
        # the observations this network reads have agents.feedback's memory applied (by
        # the rollout job, the warm start or the agent's act): it computes nothing itself
        self.feedback_memory = feedback_memory
        self.memory_kind = memory
        self.with_history = memory != "none"
        self.encoder = LinkSetEncoder(layout, link_hidden, hidden, self.with_history)
        self.memory = None if memory == "none" else TrialMemory(
            hidden, attention=memory == "attention", n_heads=attention_heads,
            window=attention_window)
        self.head = SchedulingHead(layout, link_hidden, hidden, rank, idle_bias, cqi_prior)
        values = layout.n_bs if credit == "base_station" else 1
        self.value_head = nn.Sequential(layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
                                        layer_init(nn.Linear(hidden, values), std=1.0))
        # "base_station": one value per base station, of its share of the reward
        # (info["reward_bs"]), for per-base-station advantages (agents.policy_gradient)
        self.credit = credit
        # heads decided one by one on what earlier choices left (agents.allocation_policy)
        self.allocation = SequentialAllocation(layout, channel_hz, frame_s, coverage,
                                               prior=allocation_prior) \
            if allocation == "sequential" else None

    def initial_state(self, num_envs: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None if self.memory is None else self.memory.initial_state(num_envs)

    def forward(self, obs: torch.Tensor, history: History | None = None,
                state: tuple[torch.Tensor, torch.Tensor] | None = None,
                prefix: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """obs (T, N, D) (or (N, D) without memory) -> logits (..., B*K, 1+L), value (...)
        ((..., B) with per-base-station credit), new memory state. With sequential
        allocation the logits are the static scores unless ``prefix`` (..., B*K) (the stored
        action) is given: then every head is conditioned on the choices before it in that
        action (teacher forcing), which makes
        ``MaskedMultiCategorical(logits, mask).log_prob(prefix)`` the exact joint
        log-probability."""
        fields = self.layout.split(scale_observation(obs))
        link_emb, ctx = self.encoder(fields, history)
        if self.memory is not None:
            if state is None:
                state = self.memory.initial_state(ctx.shape[1])
            mem, state = self.memory(ctx, state)
        else:
            mem = ctx
        prev_schedule = history.prev_schedule if history is not None else None
        logits = self.head(fields, link_emb, mem, prev_schedule)
        if self.allocation is not None and prefix is not None:
            logits = self.allocation.teacher_forced(torch.as_tensor(obs), logits, prefix)
        value = self.value_head(mem)
        return logits, value if self.credit == "base_station" else value.squeeze(-1), state


def recurrent_step(model: ActorCritic, obs: torch.Tensor, history: History,
                   state: tuple[torch.Tensor, torch.Tensor] | None
                   ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """One step of a recurrent actor-critic: obs (N, D) and the previous step (N, ...) ->
    logits (N, B*K, 1+L), value (N,), the new memory state."""
    step_history = History(history.prev_schedule[None], history.prev_reward[None],
                           history.prev_done[None])
    logits, value, state = model(obs[None], step_history, state)
    return logits[0], value[0], state
