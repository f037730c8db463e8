"""Sequential (structured) allocation policy: the (base station, channel) heads are decided
one by one in bridge.allocation's head order, each head seeing what the earlier choices left
to serve.

Head h's logits = the network's static per-(link, channel) score (SchedulingHead) + a small
learned function of the dynamic features earlier choices change (bridge.allocation.FEATURES:
useful capacity min(cap, remaining)/cap, its log, remaining backlog fraction, covered flag,
channels already given), masked by the action mask and the half-duplex block (hard) and,
with ``coverage="hard"``, by "backlog already covered" (the issue measured that a hard
coverage mask caps the headroom, so the default is soft).

The joint log-probability is exact: log p(a) = sum_h log p_h(a_h | a_<h), and the features of
a prefix do not depend on the parameters, so an update recomputes every head's conditional
in one batched pass from the stored action (teacher forcing: ``model(obs, prefix=action)``).
The entropy is the chain-rule sum of the per-head entropies given the prefix, an unbiased
estimate of the joint entropy under the policy's own actions. Sampling uses one uniform per
head (the rollout layer's counter-based noise), so a rollout is reproducible; the mode picks
the best choice of every head in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from agents.policy_gradient import MASKED_LOGIT, MaskedMultiCategorical, layer_init
from bridge.allocation import FEATURES, Allocation, channel_heads, replay
from bridge.layout import ObservationLayout

AllocationKind = Literal["independent", "sequential"]
CoverageKind = Literal["soft", "hard"]
_COVERED = FEATURES.index("covered")
_LOG_BYTES = FEATURES.index("log_bytes")


class AllocationScorer(nn.Module):
    """Dynamic logit term of one head: (..., L, F) features -> (..., L).

    ``linear(features) + mlp(features)``, the linear part starting as ``prior * log_bytes``:
    with ``prior`` 1 and a near-zero MLP an untrained policy weights each link by the bytes
    the choice would move now (relative to the base station's best link; a covered link gets the
    floor), greedy's rule made soft; both terms are learned."""

    def __init__(self, hidden: int = 16, prior: float = 1.0) -> None:
        super().__init__()
        self.mlp = nn.Sequential(layer_init(nn.Linear(len(FEATURES), hidden)), nn.Tanh(),
                                 layer_init(nn.Linear(hidden, 1), std=0.01))
        self.linear = nn.Linear(len(FEATURES), 1, bias=False)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[0, _LOG_BYTES] = prior

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (self.linear(features) + self.mlp(features)).squeeze(-1)


class SequentialAllocation(nn.Module):
    """The allocation bookkeeping and scorer an ActorCritic carries when
    ``allocation="sequential"``. ``channel_hz`` and ``frame_s`` turn CQI into bytes per frame
    (the scenario's channel bandwidth and frame length)."""

    def __init__(self, layout: ObservationLayout, channel_hz: float, frame_s: float,
                 coverage: CoverageKind = "soft", hidden: int = 16, prior: float = 1.0) -> None:
        super().__init__()
        if coverage not in ("soft", "hard"):
            raise ValueError(f"coverage={coverage!r}: expected 'soft' or 'hard'")
        self.layout = layout
        self.channel_hz = channel_hz
        self.frame_s = frame_s
        self.coverage = coverage
        self.scorer = AllocationScorer(hidden, prior)

    def _allocation(self, obs: torch.Tensor) -> Allocation:
        flat = obs.detach().reshape(-1, obs.shape[-1]).cpu().numpy()
        return Allocation.from_observation(flat, self.layout, self.channel_hz, self.frame_s)

    def prepare(self, obs: torch.Tensor, action: torch.Tensor) -> TeacherForcing:
        """The replay of stored actions (..., B*K) on their observations (..., D): what
        every head saw when the action was drawn. It does not depend on the parameters, so
        an update prepares it once per batch and indexes it per minibatch
        (``prefix[idx]``) instead of replaying every head again on every epoch."""
        lead = action.shape[:-1]
        alloc = self._allocation(obs)
        blocked, feats = replay(alloc, action.detach().reshape(-1, action.shape[-1]).numpy(),
                                self.layout.n_channels, features=True)
        assert feats is not None
        return TeacherForcing(
            action=action,
            blocked=torch.from_numpy(blocked).reshape(*lead, blocked.shape[-1]),
            features=torch.from_numpy(feats.astype(np.float32)).reshape(*lead,
                                                                        *feats.shape[1:]),
            parent=torch.from_numpy(alloc.parent).reshape(*lead, -1))

    def teacher_forced(self, obs: torch.Tensor, logits: torch.Tensor,
                       prefix: torch.Tensor | TeacherForcing) -> torch.Tensor:
        """Logits (..., B*K, 1+L) of every head conditioned on the heads before it in
        ``prefix`` (the stored action (..., B*K), or its prepared replay, :meth:`prepare`): static
        logits + scorer(features of the head's channel), link choices the prefix blocks, and
        links of other base stations, set to MASKED_LOGIT. One batched pass."""
        tf = prefix if isinstance(prefix, TeacherForcing) else self.prepare(obs, prefix)
        k_channels = self.layout.n_channels
        heads = torch.arange(tf.blocked.shape[-1])
        head_bs, head_k = heads // k_channels, heads % k_channels
        dynamic = self.scorer(tf.features)[..., head_k, :]  # (..., B*K, L)
        own = tf.parent.unsqueeze(-2) == head_bs[:, None]
        block = tf.blocked.unsqueeze(-1) | ~own
        if self.coverage == "hard":
            block = block | (tf.features[..., head_k, :, _COVERED] > 0)
        links = (logits[..., 1:] + dynamic).masked_fill(block, MASKED_LOGIT)
        return torch.cat([logits[..., :1], links], dim=-1)

    def sample(self, obs: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor,
               uniform: torch.Tensor | None = None, deterministic: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Action (N, B*K), its joint log-probability (N,) and the chain-rule entropy (N,),
        channel by channel: uniform[:, h] drives head h (torch's generator without
        ``uniform``); ``deterministic`` takes each head's best choice given the earlier
        ones.

        The choices are drawn in numpy float32 (one pass per channel, every base station of
        the channel at once). When autograd is on, the log-probability and entropy are
        recomputed differentiably by teacher forcing on the drawn action."""
        if uniform is None:
            uniform = torch.rand(logits.shape[:2], dtype=torch.float64)
        action, logprob, entropy = self._sample_numpy(obs, logits, mask, uniform,
                                                      deterministic)
        if torch.is_grad_enabled() and logits.requires_grad:
            dist = MaskedMultiCategorical(self.teacher_forced(obs, logits, action), mask)
            return action, dist.log_prob(action), dist.entropy()
        return action, logprob, entropy

    def _scorer_numpy(self) -> Any:
        """The scorer as a numpy float32 function (N, L, F) -> (N, L)."""
        lin = self.scorer.linear.weight.detach().numpy()[0]
        w1, b1 = (t.detach().numpy() for t in (self.scorer.mlp[0].weight,
                                                 self.scorer.mlp[0].bias))
        w2, b2 = (t.detach().numpy() for t in (self.scorer.mlp[2].weight,
                                                 self.scorer.mlp[2].bias))

        def score(features: np.ndarray) -> np.ndarray:
            hidden = np.tanh(features @ w1.T + b1)
            return features @ lin + (hidden @ w2.T + b2)[..., 0]

        return score

    def _sample_numpy(self, obs: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor,
                      uniform: torch.Tensor, deterministic: bool
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, heads, _ = logits.shape
        n_bs, k_channels = self.layout.n_bs, self.layout.n_channels
        alloc = self._allocation(obs)
        score = self._scorer_numpy()
        static = logits.detach().numpy()
        allowed = mask.numpy()
        u_all = (1.0 - uniform.double().numpy()).astype(np.float32)
        action = np.zeros((n, heads), dtype=np.int64)
        logprob = np.zeros(n, dtype=np.float32)
        entropy = np.zeros(n, dtype=np.float32)
        for k in range(k_channels):
            idx = channel_heads(n_bs, k_channels, k)
            features = alloc.channel_features(k).astype(np.float32)  # (N, L, F)
            links = static[:, idx, 1:] + score(features)[:, None, :]  # (N, B, L)
            if self.coverage == "hard":
                links = np.where(features[:, None, :, _COVERED] > 0, MASKED_LOGIT, links)
            head = np.concatenate([static[:, idx, :1], links], axis=2)
            ok = allowed[:, idx]
            head = np.where(ok, head, MASKED_LOGIT).astype(np.float32)
            top = head.max(axis=2, keepdims=True)
            log_p = head - top - np.log(np.exp(head - top).sum(axis=2, keepdims=True))
            log_p = np.where(ok, log_p, 0.0).astype(np.float32)
            prob = np.where(ok, np.exp(log_p), 0.0).astype(np.float32)
            if deterministic:
                choice = head.argmax(axis=2)
            else:
                cdf = prob.cumsum(axis=2)
                threshold = u_all[:, idx] * cdf[:, :, -1]
                choice = np.minimum((cdf < threshold[:, :, None]).sum(axis=2),
                                    head.shape[2] - 1)
            final, blocked = alloc.resolve_half_duplex(k, choice - 1)
            # a blocked head could only idle: its choice is certain (log-prob, entropy 0)
            action[:, idx] = final + 1
            free = ~blocked
            logprob += np.where(free, np.take_along_axis(log_p, choice[..., None],
                                                         axis=2)[..., 0], 0.0).sum(axis=1)
            entropy -= np.where(free, (prob * log_p).sum(axis=2), 0.0).sum(axis=1)
        return (torch.from_numpy(action), torch.from_numpy(logprob),
                torch.from_numpy(entropy))


@dataclass
class TeacherForcing:
    """A stored action (..., B*K) with its replay: the half-duplex block (..., B*K) each head
    saw, the features (..., K, L, F) of every link on every channel before that channel's
    choices, and each link's transmitter (..., L). Indexing (``tf[idx]``, ``tf[:, idx]``)
    selects along the leading axes of every part, as on the action tensor."""

    action: torch.Tensor
    blocked: torch.Tensor
    features: torch.Tensor
    parent: torch.Tensor

    def __getitem__(self, idx: Any) -> TeacherForcing:
        return TeacherForcing(self.action[idx], self.blocked[idx], self.features[idx],
                              self.parent[idx])


def teacher_forcing(model: nn.Module, obs: torch.Tensor, action: torch.Tensor
                    ) -> torch.Tensor | TeacherForcing:
    """What an update passes as ``prefix`` for a batch of stored actions: the prepared
    replay when ``model`` allocates sequentially, the action itself otherwise (both index
    the same way)."""
    sequential = getattr(model, "allocation", None)
    if isinstance(sequential, SequentialAllocation):
        return sequential.prepare(obs, action)
    return action


def allocation_arch(config: Any) -> dict[str, Any]:
    """The ActorCritic arguments of an agent config's allocation fields (``allocation``,
    ``coverage``, ``channel_hz``, ``frame_s``, ``allocation_prior``) and its
    ``feedback_memory``."""
    return {k: getattr(config, k) for k in ("allocation", "coverage", "channel_hz", "frame_s",
                                            "feedback_memory", "allocation_prior")}


def scenario_allocation(config: Any) -> dict[str, float]:
    """``channel_hz`` and ``frame_s`` of a ScenarioConfig, as agent-config overrides."""
    return {"channel_hz": config.radio.channel_bandwidth_hz,
            "frame_s": config.dynamics.frame_s}


def sample_action(model: nn.Module, obs: torch.Tensor, mask: torch.Tensor,
                  logits: torch.Tensor, uniform: torch.Tensor | None = None,
                  deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The one sampling hook of every agent: action (N, B*K) and its log-probability (N,)
    from ``model``'s static logits (N, B*K, 1+L); sequential when the model carries a
    :class:`SequentialAllocation`, independent heads otherwise."""
    sequential = getattr(model, "allocation", None)
    if isinstance(sequential, SequentialAllocation):
        action, logprob, _ = sequential.sample(obs, logits, mask, uniform, deterministic)
        return action, logprob
    dist = MaskedMultiCategorical(logits, mask)
    action = dist.mode() if deterministic else dist.sample(uniform)
    return action, dist.log_prob(action)


def joint_log_prob_table(model: nn.Module, obs: torch.Tensor, mask: torch.Tensor
                         ) -> tuple[np.ndarray, torch.Tensor]:
    """Every joint action of one observation (1, D) and its teacher-forced log-probability:
    the brute-force reference of the tests (tiny layouts only)."""
    import itertools

    choices = [np.flatnonzero(row) for row in mask[0].numpy()]
    actions = np.array(list(itertools.product(*choices)), dtype=np.int64)
    obs_rep = obs.expand(len(actions), -1)
    logits, _, _ = model(obs_rep, prefix=torch.from_numpy(actions))
    dist = MaskedMultiCategorical(logits, mask.expand(len(actions), -1, -1))
    return actions, dist.log_prob(torch.from_numpy(actions))
