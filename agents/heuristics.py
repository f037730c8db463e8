"""Classical schedulers as batched policies: random (masked), round-robin, greedy max-SINR and
proportional-fair. They read only the observation and the action mask, like a learned agent.
"""

from __future__ import annotations

import numpy as np

from bridge.allocation import Allocation, channel_by_channel
from bridge.config import ScenarioConfig
from bridge.layout import (
    ObservationLayout,
    half_duplex_conflicts,
)


def resolve_half_duplex(action: np.ndarray, layout: ObservationLayout) -> np.ndarray:
    """Idle an IAB node's transmissions on channels where its parent schedules its backhaul
    (the policy knows its joint action, so it need not waste the choice)."""
    a = action.reshape(action.shape[0], layout.n_bs, layout.n_channels)
    return np.where(half_duplex_conflicts(a - 1), 0, a).reshape(action.shape)


class Heuristic:
    """Base class: ``act(obs (N, D), mask (N, B*K, C)) -> (N, B*K)`` int64."""

    name = "heuristic"

    def __init__(self, layout: ObservationLayout, seed: int = 0) -> None:
        self.layout = layout
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.frame = 0

    def reset(self, num_envs: int) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.frame = 0

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        action = self._act(np.asarray(obs), np.asarray(mask, dtype=bool))
        self.frame += 1
        return resolve_half_duplex(action, self.layout)

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # per-(N, B, K, L) scores -> the best allowed link, idle where none is allowed
    def _pick(self, score: np.ndarray, mask: np.ndarray) -> np.ndarray:
        n = mask.shape[0]
        lay = self.layout
        allowed = mask[:, :, 1:].reshape(n, lay.n_bs, lay.n_channels, lay.n_links)
        s = np.where(allowed, score, -np.inf)
        best = s.argmax(axis=-1)
        ok = np.isfinite(np.take_along_axis(s, best[..., None], axis=-1)[..., 0])
        return np.where(ok, best + 1, 0).reshape(n, -1)

    def _fields(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return self.layout.split(obs)


class RandomMasked(Heuristic):
    """Uniform over the allowed values of every entry (idle included)."""

    name = "random"

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        noise = self.rng.random(mask.shape)
        return np.where(mask, noise, -1.0).argmax(axis=-1)


class RoundRobin(Heuristic):
    """Each base station cycles through its backlogged children across channels and frames.
    A backhaul link gets at most half of the channels in a frame, so that its IAB node (which
    cannot transmit where it receives) always keeps channels of its own."""

    name = "round_robin"

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        n = obs.shape[0]
        lay = self.layout
        f = self._fields(obs)
        backlog = f["backlog_mb"][..., 0] > 0  # (N, L)
        allowed = mask[:, :, 1:].reshape(n, lay.n_bs, lay.n_channels, lay.n_links)
        child = allowed.any(axis=2)  # (N, B, L): b's children (on any free channel)
        pref = child & backlog[:, None, :]
        child = np.where(pref.any(axis=-1, keepdims=True), pref, child)
        # rank of each child among its siblings, and how many siblings there are
        rank = np.cumsum(child, axis=-1) - 1
        count = child.sum(axis=-1)  # (N, B)
        slot = (self.frame * lay.n_channels + np.arange(lay.n_channels))  # (K,)
        target = slot[None, None, :] % np.maximum(count[..., None], 1)  # (N, B, K)
        score = (child[:, :, None, :] & (rank[:, :, None, :] == target[..., None]))
        action = self._pick(score.astype(np.float64), mask)
        a = action.reshape(n, lay.n_bs, lay.n_channels)
        cap = max(1, lay.n_channels // 2)
        for i in range(lay.n_bs - 1):  # backhaul link i is action value i + 1
            on = a == i + 1
            a[on & (np.cumsum(on, axis=2) > cap)] = 0
        return a.reshape(n, -1)


class _ChannelByChannel(Heuristic):
    """Assigns channels one at a time: on channel k every base station serves the child that
    maximises ``_score`` among those whose backlog is not yet covered by the capacity already
    given to them; an IAB node whose backhaul got channel k stays silent on it. Parents
    decide before their IAB children, so half duplex is respected by construction."""

    def __init__(self, layout: ObservationLayout, seed: int = 0, channel_hz: float = 50e6,
                 frame_s: float = 0.01) -> None:
        super().__init__(layout, seed)
        self.channel_hz = channel_hz
        self.frame_s = frame_s

    def _score(self, cap: np.ndarray, remaining: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        alloc = Allocation.from_observation(obs, self.layout, self.channel_hz, self.frame_s)
        return channel_by_channel(
            alloc, mask, lambda a, k: self._score(a.capacity[:, :, k], a.remaining, k),
            lambda link, give, chosen: self._served(alloc.rows, link, give, chosen))

    def _served(self, rows: np.ndarray, link: np.ndarray, give: np.ndarray,
                chosen: np.ndarray) -> None:
        return None


class GreedyMaxSinr(_ChannelByChannel):
    """Max-SINR: on every channel, the backlogged child with the best channel quality there."""

    name = "greedy_max_sinr"

    def _score(self, cap: np.ndarray, remaining: np.ndarray, k: int) -> np.ndarray:
        return cap


class ProportionalFair(_ChannelByChannel):
    """Proportional fair: on every channel, the backlogged child maximising achievable rate
    over its exponentially averaged served rate (time constant ``window`` frames)."""

    name = "proportional_fair"
    window = 20.0

    def reset(self, num_envs: int) -> None:
        super().reset(num_envs)
        self.avg: np.ndarray | None = None

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        n = obs.shape[0]
        if getattr(self, "avg", None) is None or self.avg.shape[0] != n:
            self.avg = np.full((n, self.layout.n_links), 1.0)
        self._frame_served = np.zeros((n, self.layout.n_links))
        action = super()._act(obs, mask)
        beta = 1.0 / self.window
        self.avg = (1 - beta) * self.avg + beta * self._frame_served + 1e-6
        return action

    def _score(self, cap: np.ndarray, remaining: np.ndarray, k: int) -> np.ndarray:
        return np.minimum(cap, remaining) / self.avg

    def _served(self, rows: np.ndarray, link: np.ndarray, give: np.ndarray,
                chosen: np.ndarray) -> None:
        self._frame_served[rows[chosen], link[chosen]] += give[chosen]


HEURISTICS: dict[str, type[Heuristic]] = {
    cls.name: cls for cls in (RandomMasked, RoundRobin, GreedyMaxSinr, ProportionalFair)
}


def make_heuristic(name: str, layout: ObservationLayout, seed: int = 0,
                   config: ScenarioConfig | None = None) -> Heuristic:
    """A heuristic by name; ``config`` gives channel bandwidth and frame length."""
    if name not in HEURISTICS:
        raise ValueError(f"heuristic {name!r} is unknown; expected one of {sorted(HEURISTICS)}")
    cls = HEURISTICS[name]
    if issubclass(cls, _ChannelByChannel) and config is not None:
        return cls(layout, seed=seed, channel_hz=config.radio.channel_bandwidth_hz,
                   frame_s=config.dynamics.frame_s)
    return cls(layout, seed=seed)
