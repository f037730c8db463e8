"""Policy-gradient maths every agent uses: the masked action distribution, GAE, the clipped
PPO loss and update, observation scaling and layer initialisation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

# Logit given to masked choices. Finite (not -inf) so log_softmax and entropy stay NaN-free;
# exp(-1e9 - max) underflows to exactly 0, so masked choices have probability 0.
MASKED_LOGIT = -1e9

# How a frame's reward is credited to the action: "joint" (one reward, one advantage and one
# probability ratio for the whole joint action of B*K heads) or "base_station" (base station
# b's share of the reward, info["reward_bs"], its own value, advantage and ratio over its K
# heads: benchmarks/research/RESULTS.md, "Factored credit end to end")
CreditKind = Literal["joint", "base_station"]

# The environment already scales every observation field to O(1); a fixed clip guards against
# outliers (e.g. a huge backlog) without running statistics that would drift between tasks.
OBS_CLIP = 10.0


def scale_observation(obs: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Observation -> float32 tensor clipped to [-OBS_CLIP, OBS_CLIP] (stateless)."""
    t = torch.as_tensor(obs, dtype=torch.float32)
    return t.clamp(-OBS_CLIP, OBS_CLIP)


def layer_init(layer: nn.Linear, std: float = float(np.sqrt(2)), bias: float = 0.0
               ) -> nn.Linear:
    """Orthogonal weights with gain ``std`` and constant bias (CleanRL's init)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class MaskedMultiCategorical:
    """Independent categoricals, one per action head, each over its allowed values only.

    ``logits`` and ``mask`` have shape (..., heads, choices); invalid choices get
    :data:`MASKED_LOGIT` before the softmax, so they are never sampled and carry no
    probability mass, entropy or gradient. Log-probabilities and entropies are summed over
    heads (the joint action of one frame).
    """

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor) -> None:
        self.mask = mask.bool()
        self.logits = logits.masked_fill(~self.mask, MASKED_LOGIT)
        self.log_probs = torch.log_softmax(self.logits, dim=-1)

    def _allowed_log_probs(self) -> torch.Tensor:
        # exp of the ~-1e9 masked entries takes libm's slow underflow path (10x slower):
        # zero them first; callers make sure they contribute nothing
        return self.log_probs.masked_fill(~self.mask, 0.0)

    def probs(self) -> torch.Tensor:
        """(..., heads, choices), exactly 0 on masked choices."""
        return self._allowed_log_probs().exp().masked_fill(~self.mask, 0.0)

    def sample(self, uniform: torch.Tensor | None = None) -> torch.Tensor:
        """(..., heads) int64 by inverse-CDF sampling, one uniform per head: ``uniform``
        (..., heads) in [0, 1) when given (the rollout layer's counter-based noise), else
        torch's global generator. A masked choice has zero width in the CDF, so it can never
        be drawn: choice i is taken when cdf[i-1] < u <= cdf[i], and u lies in (0, cdf[-1]]."""
        cdf = self.probs().cumsum(dim=-1)
        total = cdf[..., -1:]
        if uniform is None:
            open_unit = 1.0 - torch.rand_like(total)
        else:  # 1 - u in float64 first: rounding u to float32 could give exactly 0
            open_unit = (1.0 - uniform.double()).to(total.dtype).reshape(total.shape)
        u = open_unit * total  # (0, total]
        index = (cdf < u).sum(dim=-1, keepdim=True)
        return index.clamp_max(cdf.shape[-1] - 1).squeeze(-1)

    def mode(self) -> torch.Tensor:
        return self.logits.argmax(dim=-1)

    def head_log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """Each head's log-probability (..., heads) of ``action`` (..., heads)."""
        return self.log_probs.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """Joint log-probability (...) of ``action`` (..., heads)."""
        return self.head_log_prob(action).sum(-1)

    def credited_log_prob(self, action: torch.Tensor, credit: CreditKind, n_bs: int
                          ) -> torch.Tensor:
        """The log-probability a credit scheme's ratio is over: joint (...), or per base
        station (..., B), the sum over its heads (heads are base-station-major: head
        b*K + k is base station b's channel k)."""
        if credit == "joint":
            return self.log_prob(action)
        per_head = self.head_log_prob(action)
        return per_head.reshape(*per_head.shape[:-1], n_bs, -1).sum(-1)

    def entropy(self) -> torch.Tensor:
        """Joint entropy (...): sum over heads of each head's masked entropy (masked choices
        have log-probability 0 after :meth:`_allowed_log_probs`, so they add 0)."""
        log_p = self._allowed_log_probs()
        return -(log_p.exp() * log_p).sum(dim=(-1, -2))


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
                next_nonterminal: torch.Tensor, continues: torch.Tensor, gamma: float,
                gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a (T, N) rollout.

    ``next_values[t]`` is V(s_{t+1}); ``next_nonterminal[t]`` is 0 where s_{t+1} is terminal
    (no bootstrap) and ``continues[t]`` is 0 where the advantage recursion stops (an episode
    or trial boundary). Truncation sets ``continues=0`` but keeps ``next_nonterminal=1``: the
    value of the final observation is bootstrapped. Returns (advantages, returns)."""
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    deltas = rewards + gamma * next_nonterminal * next_values - values
    for t in reversed(range(steps)):
        last = deltas[t] + gamma * gae_lambda * continues[t] * last
        advantages[t] = last
    return advantages, advantages + values


def masked_mean(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the entries with weight 1; ``weight`` has ``x``'s leading shape
    (a per-base-station ``x`` (..., B) shares its sample's weight (...))."""
    w = weight.reshape(*weight.shape, *(1,) * (x.dim() - weight.dim())).expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1.0)


def normalize_advantages(adv: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Zero-mean, unit-std advantages over the entries with weight 1."""
    mean = masked_mean(adv, weight)
    var = masked_mean((adv - mean) ** 2, weight)
    return (adv - mean) / (var.sqrt() + 1e-8)


@dataclass
class PPOLossConfig:
    """The knobs of the clipped PPO objective."""

    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    norm_adv: bool = True


def ppo_loss(new_logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor,
             new_value: torch.Tensor, old_value: torch.Tensor, returns: torch.Tensor,
             entropy: torch.Tensor, weight: torch.Tensor, cfg: PPOLossConfig
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped surrogate + (clipped) value loss - entropy bonus, averaged over the samples with
    ``weight`` 1 (reset steps of next-step autoreset carry weight 0). Returns (loss, stats).

    With per-base-station credit the log-probabilities, advantages, values and returns have
    a trailing base-station axis (..., B) (``weight`` and ``entropy`` do not): each base
    station's ratio is clipped on its own and a sample's surrogate and value loss are the
    sums over its base stations; advantages are normalised over all (sample, base station)
    entries."""
    logratio = new_logprob - old_logprob
    ratio = logratio.exp()
    adv = normalize_advantages(advantages, weight) if cfg.norm_adv else advantages

    def per_sample(x: torch.Tensor) -> torch.Tensor:
        # per-base-station terms (..., B) add up to a sample's term, as the joint one would
        return x.sum(-1) if x.dim() > weight.dim() else x

    pg_loss = masked_mean(per_sample(torch.max(
        -adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef))), weight)
    if cfg.clip_vloss:
        v_clipped = old_value + (new_value - old_value).clamp(-cfg.clip_coef, cfg.clip_coef)
        v_loss = 0.5 * masked_mean(per_sample(torch.max((new_value - returns) ** 2,
                                                        (v_clipped - returns) ** 2)), weight)
    else:
        v_loss = 0.5 * masked_mean(per_sample((new_value - returns) ** 2), weight)
    ent = masked_mean(entropy, weight)
    loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1) - logratio, weight).item()
        clipfrac = masked_mean(((ratio - 1).abs() > cfg.clip_coef).float(), weight).item()
    stats = {"policy_loss": pg_loss.item(), "value_loss": v_loss.item(), "entropy": ent.item(),
             "approx_kl": approx_kl, "clipfrac": clipfrac}
    return loss, stats


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    var = returns.var().item()
    return float("nan") if var == 0 else 1.0 - (returns - values).var().item() / var


def linear_schedule(start: float, progress: float) -> float:
    """Linearly annealed value: ``start`` at progress 0, 0 at progress 1."""
    return start * max(0.0, 1.0 - progress)


# evaluate(index) -> (new logprob, entropy, new value), each shaped like data[key][index],
# optionally followed by an auxiliary loss term (a scalar added to the PPO loss, e.g. the
# teacher term, agents.teacher) whose value is reported as ``aux_loss``
Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]


def ppo_update(evaluate: Evaluate, data: dict[str, torch.Tensor], n_items: int,
               optimizer: torch.optim.Optimizer, parameters: list[nn.Parameter],
               cfg: PPOLossConfig, update_epochs: int, num_minibatches: int,
               max_grad_norm: float, target_kl: float | None = None) -> dict[str, float]:
    """PPO epochs over ``n_items`` items (single transitions for a feed-forward policy, whole
    trials for a recurrent one, tasks for MAML's outer step). ``data`` holds ``logprob``,
    ``advantages``, ``value``, ``returns`` and ``valid`` with the item axis first. Returns the
    last minibatch's statistics."""
    mb_size = max(1, n_items // num_minibatches)
    stats: dict[str, float] = {}
    for _ in range(update_epochs):
        perm = torch.randperm(n_items)
        for start in range(0, n_items, mb_size):
            idx = perm[start:start + mb_size]
            new_logprob, entropy, new_value, *aux = evaluate(idx)
            loss, stats = ppo_loss(new_logprob, data["logprob"][idx], data["advantages"][idx],
                                   new_value, data["value"][idx], data["returns"][idx],
                                   entropy, data["valid"][idx], cfg)
            if aux:
                loss = loss + aux[0]
                stats["aux_loss"] = float(aux[0].detach())
            optimizer.zero_grad()
            loss.backward()
            stats["grad_norm"] = float(nn.utils.clip_grad_norm_(parameters, max_grad_norm))
            optimizer.step()
        if target_kl is not None and stats["approx_kl"] > target_kl:
            break
    return stats
