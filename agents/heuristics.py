"""Classical schedulers as batched policies: random (masked), round-robin, greedy max-SINR and
proportional-fair. They read only the observation and the action mask, like a learned agent.
"""

from __future__ import annotations

import numpy as np

from agents.feedback import PenaltyTracker, SensingDebounce, interference_order
from bridge.allocation import Allocation, channel_by_channel, frame_capacity_bytes
from bridge.config import ScenarioConfig
from bridge.layout import (
    SNR_SCALE_DB,
    ObservationLayout,
    half_duplex_conflicts,
)


def resolve_half_duplex(action: np.ndarray, layout: ObservationLayout) -> np.ndarray:
    """Idle an IAB node's transmissions on channels where its parent schedules its backhaul
    (the policy knows its joint action, so it need not waste the choice)."""
    a = action.reshape(action.shape[0], layout.n_bs, layout.n_channels)
    return np.where(half_duplex_conflicts(a - 1), 0, a).reshape(action.shape)


class Heuristic:
    """Base class: ``act(obs (N, D), mask (N, B*K, C)) -> (N, B*K)`` int64.

    Experience: :meth:`reset` starts N new deployments and forgets everything learned;
    between two resets every call of :meth:`act` is the next frame of the same N
    deployments, episode boundaries included (an episode's first observation has
    ``time_frac`` 0). The study's baseline phase resets once per held-out task, so an
    ``adaptive`` heuristic carries what it measured through that task's K + 1 episodes, as
    an agent adapts over them."""

    name = "heuristic"
    # True for a heuristic that learns from the measured feedback of earlier frames: its
    # value on a task is that of its last episode (as for an agent), not the mean
    adaptive = False
    # True when an action depends only on that frame's observation and mask (no state, no
    # random draws): such a heuristic may act on any batch of frames at once
    stateless = False

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
    decide before their IAB children, so half duplex is respected by construction.

    :meth:`_plan` is the general form: capacities from the CQI minus a per-(link, channel)
    SINR penalty, and the channels visited in a per-environment order (the first ones go to
    the links that lose least there: what a scheduler that knows, or has learned, where the
    interference is does)."""

    def __init__(self, layout: ObservationLayout, seed: int = 0, channel_hz: float = 50e6,
                 frame_s: float = 0.01) -> None:
        super().__init__(layout, seed)
        self.channel_hz = channel_hz
        self.frame_s = frame_s

    def _score(self, cap: np.ndarray, remaining: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self._plan(obs, mask)

    def _plan(self, obs: np.ndarray, mask: np.ndarray, penalty_db: np.ndarray | None = None,
              order: np.ndarray | None = None) -> np.ndarray:
        """The channel-by-channel action (N, B*K) with capacities at CQI minus
        ``penalty_db`` (N, L, K) dB and channels visited in ``order`` (N, K) (a permutation
        per environment; default 0..K-1)."""
        alloc = Allocation.from_observation(obs, self.layout, self.channel_hz, self.frame_s)
        if penalty_db is not None:
            cqi_db = self._fields(obs)["cqi"].astype(np.float64) * SNR_SCALE_DB
            alloc.capacity = frame_capacity_bytes(cqi_db - penalty_db, self.channel_hz,
                                                  self.frame_s)
        n, lay = obs.shape[0], self.layout
        if order is not None:
            alloc.capacity = np.take_along_axis(alloc.capacity, order[:, None, :], axis=2)
            grid = mask.reshape(n, lay.n_bs, lay.n_channels, -1)
            mask = np.take_along_axis(grid, order[:, None, :, None], axis=2).reshape(mask.shape)
        action = channel_by_channel(
            alloc, mask, lambda a, k: self._score(a.capacity[:, :, k], a.remaining, k),
            lambda link, give, chosen: self._served(alloc.rows, link, give, chosen))
        if order is None:
            return action
        # back from visiting order to the environment's channel order
        permuted = action.reshape(n, lay.n_bs, lay.n_channels)
        out = np.empty_like(permuted)
        np.put_along_axis(out, np.broadcast_to(order[:, None, :], permuted.shape), permuted,
                          axis=2)
        return out.reshape(n, -1)

    def _served(self, rows: np.ndarray, link: np.ndarray, give: np.ndarray,
                chosen: np.ndarray) -> None:
        return None


class GreedyMaxSinr(_ChannelByChannel):
    """Max-SINR: on every channel, the backlogged child with the best channel quality there."""

    name = "greedy_max_sinr"
    stateless = True

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


class GreedyMeasuredSinr(GreedyMaxSinr):
    """Greedy max-SINR on what the SINR measurements taught it about each deployment.

    The CQI is interference-free; the measured SINR of a scheduled link (the observation's
    ``sinr[K]``) is the same frame's signal over noise plus interference, so CQI - SINR is
    the interference penalty 10 log10(1 + I/N) that link met on that channel: a neighbour's
    interferer, co-channel cells of the own network, an incumbent sensing missed. The
    penalty is tracked per (environment, link, channel): a running mean over the first
    ``window`` measurements, then an exponential mean of time constant ``window``
    measurements; 0 (optimistic) until measured, so greedy tries every channel of a link
    before it believes it is clean. Capacities come from CQI minus the penalty; channels are
    visited the most interfered first, so they go to the links they hurt least.

    Sensing (:class:`agents.feedback.SensingDebounce`): an incumbent is persistent, so a
    channel reported busy, free and busy again in consecutive reports was most likely missed
    in between. Once such gaps make up more than ``debounce_above`` of the busy reports of an
    environment, a channel reported busy in the previous report is treated as busy for one
    more frame."""

    name = "greedy_measured_sinr"
    adaptive = True
    stateless = False
    window = 8.0
    debounce_above = 0.05
    reorder_channels = True

    def reset(self, num_envs: int) -> None:
        super().reset(num_envs)
        # the estimate agents.feedback gives a learned policy as its feedback memory
        self.tracker = PenaltyTracker(self.layout, num_envs, self.window)
        # the sensing debounce a learned policy can also read (feedback memory
        # "penalty_ordered_debounced")
        self.sensing = SensingDebounce(num_envs, self.debounce_above)

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if getattr(self, "tracker", None) is None or self.penalty_db.shape[0] != len(obs):
            self.reset(len(obs))
        f = self._fields(obs)
        self.tracker.update(f)
        suspect = self.sensing.update(f)
        order = (interference_order(self.penalty_db, f["valid"][..., 0] > 0)
                 if self.reorder_channels else None)
        return self._plan(obs, self.layout.idle_only_on(mask, suspect), self.penalty_db,
                          order)

    @property
    def penalty_db(self) -> np.ndarray:
        """(N, L, K) the interference penalty learned so far, dB."""
        return self.tracker.penalty_db

    @property
    def measured(self) -> np.ndarray:
        """(N, L, K) measurements taken of each pair."""
        return self.tracker.measured


HEURISTICS: dict[str, type[Heuristic]] = {
    cls.name: cls for cls in (RandomMasked, RoundRobin, GreedyMaxSinr, ProportionalFair,
                              GreedyMeasuredSinr)
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
