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

from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from agents.policy_gradient import MASKED_LOGIT, MaskedMultiCategorical, layer_init
from bridge.allocation import FEATURES, Allocation, head_order, replay
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
        self.order = head_order(layout.n_bs, layout.n_channels)

    def _allocation(self, obs: torch.Tensor) -> Allocation:
        flat = obs.detach().reshape(-1, obs.shape[-1]).cpu().numpy()
        return Allocation.from_observation(flat, self.layout, self.channel_hz, self.frame_s)

    def _blocked_links(self, features: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        """(..., L) True where a head may not pick the link: half duplex (the whole head),
        and with hard coverage also links whose backlog is covered."""
        out = blocked.unsqueeze(-1).expand(features.shape[:-1])
        if self.coverage == "hard":
            out = out | (features[..., _COVERED] > 0)
        return out

    def teacher_forced(self, obs: torch.Tensor, logits: torch.Tensor, prefix: torch.Tensor
                       ) -> torch.Tensor:
        """Logits (..., B*K, 1+L) of every head conditioned on the heads before it in
        ``prefix`` (..., B*K): static logits + scorer(features), link choices the prefix
        blocks set to MASKED_LOGIT. One batched pass (the loop is over heads, in numpy)."""
        lead = logits.shape[:-2]
        alloc = self._allocation(obs)
        blocked, feats = replay(alloc, prefix.detach().reshape(-1, prefix.shape[-1]).numpy(),
                                self.layout.n_channels, features=True)
        assert feats is not None
        features = torch.from_numpy(feats).float().reshape(*lead, *feats.shape[1:])
        block = self._blocked_links(features, torch.from_numpy(blocked).reshape(
            *lead, blocked.shape[-1]))
        # the scorer runs only where a head's base station transmits the link (the action
        # mask allows nothing else): about 1/B of the entries
        head_bs = torch.arange(prefix.shape[-1]) // self.layout.n_channels
        own = torch.from_numpy(alloc.parent).reshape(*lead, 1, -1) == head_bs[:, None]
        own = own.expand(features.shape[:-1])
        dynamic = torch.zeros(features.shape[:-1])
        dynamic = dynamic.masked_scatter(own, self.scorer(features[own]))
        links = (logits[..., 1:] + dynamic).masked_fill(block | ~own, MASKED_LOGIT)
        return torch.cat([logits[..., :1], links], dim=-1)

    def sample(self, obs: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor,
               uniform: torch.Tensor | None = None, deterministic: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Action (N, B*K), its joint log-probability (N,) and the chain-rule entropy (N,),
        head by head: uniform[:, h] drives head h (torch's generator without ``uniform``);
        ``deterministic`` takes each head's best choice given the earlier ones.

        Without autograd (rollouts) the loop runs in numpy float32 on the same arithmetic:
        40 small torch calls per head cost about 3 ms, the numpy loop a fraction of that;
        the update recomputes the log-probabilities in torch by teacher forcing."""
        if not torch.is_grad_enabled() and not logits.requires_grad:
            if uniform is None:
                uniform = torch.rand(logits.shape[:2], dtype=torch.float64)
            return self._sample_numpy(obs, logits, mask, uniform, deterministic)
        n, heads, _ = logits.shape
        k_channels = self.layout.n_channels
        alloc = self._allocation(obs)
        action = torch.zeros(n, heads, dtype=torch.long)
        logprob = torch.zeros(n)
        entropy = torch.zeros(n)
        for h in self.order:
            b, k = divmod(int(h), k_channels)
            features = torch.from_numpy(alloc.features(b, k)).float()
            block = self._blocked_links(features, torch.from_numpy(alloc.blocked[:, b, k]))
            links = (logits[:, h, 1:] + self.scorer(features)).masked_fill(block, MASKED_LOGIT)
            dist = MaskedMultiCategorical(torch.cat([logits[:, h, :1], links], -1)[:, None],
                                          mask[:, h][:, None])
            u = None if uniform is None else uniform[:, h:h + 1]
            choice = dist.mode() if deterministic else dist.sample(u)
            action[:, h] = choice[:, 0]
            logprob = logprob + dist.log_prob(choice)
            entropy = entropy + dist.entropy()
            alloc.assign(b, k, choice[:, 0].numpy() - 1)
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
        k_channels = self.layout.n_channels
        alloc = self._allocation(obs)
        score = self._scorer_numpy()
        static = logits.detach().numpy()
        allowed = mask.numpy()
        u_all = (1.0 - uniform.double().numpy()).astype(np.float32)
        action = np.zeros((n, heads), dtype=np.int64)
        logprob = np.zeros(n, dtype=np.float32)
        entropy = np.zeros(n, dtype=np.float32)
        rows = np.arange(n)
        for h in self.order:
            b, k = divmod(int(h), k_channels)
            features = alloc.features(b, k).astype(np.float32)
            block = np.broadcast_to(alloc.blocked[:, b, k, None], features.shape[:-1])
            if self.coverage == "hard":
                block = block | (features[..., _COVERED] > 0)
            links = np.where(block, MASKED_LOGIT, static[:, h, 1:] + score(features))
            head = np.concatenate([static[:, h, :1], links], axis=1)
            ok = allowed[:, h]
            head = np.where(ok, head, MASKED_LOGIT).astype(np.float32)
            top = head.max(axis=1, keepdims=True)
            log_p = head - top - np.log(np.exp(head - top).sum(axis=1, keepdims=True))
            log_p = np.where(ok, log_p, 0.0).astype(np.float32)
            prob = np.where(ok, np.exp(log_p), 0.0).astype(np.float32)
            if deterministic:
                choice = head.argmax(axis=1)
            else:
                cdf = prob.cumsum(axis=1)
                threshold = u_all[:, h] * cdf[:, -1]
                choice = np.minimum((cdf < threshold[:, None]).sum(axis=1), head.shape[1] - 1)
            action[:, h] = choice
            logprob += log_p[rows, choice]
            entropy -= (prob * log_p).sum(axis=1)
            alloc.assign(b, k, choice - 1)
        return (torch.from_numpy(action), torch.from_numpy(logprob),
                torch.from_numpy(entropy))


def allocation_arch(config: Any) -> dict[str, Any]:
    """The ActorCritic arguments of an agent config's allocation fields (``allocation``,
    ``coverage``, ``channel_hz``, ``frame_s``)."""
    return {k: getattr(config, k) for k in ("allocation", "coverage", "channel_hz", "frame_s")}


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
