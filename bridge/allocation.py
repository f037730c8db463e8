"""What is left to serve after some allocation choices: head order, remaining backlog and the
half-duplex state, batched over N environments (numpy only). Shared by the channel-by-channel
heuristics, the structured (sequential) policy and the upper bound's diagnostics.

An allocation of one frame is built head by head in :func:`head_order`: channel-major, and on
each channel the base stations in index order, so a parent (lower index) decides before its
IAB children. Every choice of link ``l`` on channel ``k`` uses up the capacity the link would
have there (estimated from its CQI, interference-free, as a scheduler would) from the link's
backlog, and a backhaul choice (link ``l < n_iab``, received by IAB node ``l + 1``) blocks
that IAB node on channel ``k`` (half duplex: it cannot transmit where it receives).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bridge.layout import BACKLOG_SCALE_BYTES, SNR_SCALE_DB, ObservationLayout
from bridge.model.channel import spectral_efficiency

# the per-(head, link) features :meth:`Allocation.features` returns, in order
FEATURES = ("useful_frac", "log_useful", "log_bytes", "remaining_frac", "covered",
            "channels_given")
# logs of the useful-capacity fraction and of the bytes a choice moves are floored here (a
# covered link, or one without backlog)
LOG_USEFUL_FLOOR = -5.0


def frame_capacity_bytes(cqi_db: np.ndarray, channel_hz: float, frame_s: float,
                         overhead: float = 0.18) -> np.ndarray:
    """Bytes a link could move in one frame on a channel at its CQI (no interference)."""
    return spectral_efficiency(cqi_db) * channel_hz * frame_s * (1 - overhead) / 8


def head_order(n_bs: int, n_channels: int) -> np.ndarray:
    """Flat head indices ``b * K + k`` in decision order: channel-major, base stations in
    index order on each channel (parents before their IAB children)."""
    k, b = np.meshgrid(np.arange(n_channels), np.arange(n_bs), indexing="ij")
    return (b * n_channels + k).ravel()


class Allocation:
    """The state of a partly built allocation of N environments.

    ``capacity`` (N, L, K) bytes a link moves on a channel in one frame; ``backlog`` (N, L)
    bytes queued for it at the frame start. ``remaining`` (N, L) is the backlog not yet
    covered by the choices so far; ``blocked`` (N, B, K) is True where a base station may not
    transmit because it receives its backhaul there; ``given`` (N, L) counts the channels a
    link got so far."""

    def __init__(self, capacity: np.ndarray, backlog: np.ndarray, n_bs: int,
                 parent: np.ndarray | None = None) -> None:
        self.capacity = np.asarray(capacity, dtype=np.float64)
        self.backlog = np.asarray(backlog, dtype=np.float64)
        n, n_links, n_channels = self.capacity.shape
        if self.backlog.shape != (n, n_links):
            raise ValueError(f"backlog has shape {self.backlog.shape}; expected {(n, n_links)}")
        self.n_bs = n_bs
        self.n_iab = n_bs - 1
        self.remaining = self.backlog.copy()
        self.blocked = np.zeros((n, n_bs, n_channels), dtype=bool)
        self.given = np.zeros((n, n_links), dtype=np.int64)
        self.rows = np.arange(n)
        # (N, L) transmitting base station of every link (-1: no such link), if known
        self.parent = np.full((n, n_links), -1) if parent is None else np.asarray(parent)
        self._own_cache: np.ndarray | None = None

    @classmethod
    def from_observation(cls, obs: np.ndarray, layout: ObservationLayout, channel_hz: float,
                         frame_s: float) -> Allocation:
        """The empty allocation of observations ``obs`` (N, D): capacity from the CQI field,
        backlog from the backlog field."""
        f = layout.split(np.asarray(obs))
        cap = frame_capacity_bytes(f["cqi"].astype(np.float64) * SNR_SCALE_DB, channel_hz,
                                   frame_s)
        parent = np.where(f["valid"][..., 0] > 0, f["parent"].argmax(axis=-1), -1)
        return cls(cap, f["backlog_mb"][..., 0].astype(np.float64) * BACKLOG_SCALE_BYTES,
                   layout.n_bs, parent)

    @property
    def n_channels(self) -> int:
        return int(self.capacity.shape[2])

    def open_links(self, b: int, k: int, allowed: np.ndarray, backlogged: bool = False
                   ) -> np.ndarray:
        """(N, L) links base station ``b`` may still pick on channel ``k``: ``allowed`` (the
        action mask's link columns of that head) minus a half-duplex block; with
        ``backlogged``, also only links whose backlog is not covered yet (the hard form)."""
        ok = allowed & ~self.blocked[:, b, k, None]
        return ok & (self.remaining > 0) if backlogged else ok

    def assign(self, b: int, k: int, link: np.ndarray) -> np.ndarray:
        """Record base station ``b``'s choice on channel ``k``: ``link`` (N,) link index, -1
        idle. Returns the capacity (N,) bytes credited to the chosen links (0 where idle)."""
        link = np.asarray(link, dtype=np.int64)
        chosen = link >= 0
        safe = np.where(chosen, link, 0)
        give = np.where(chosen, self.capacity[self.rows, safe, k], 0.0)
        self.remaining[self.rows, safe] -= give
        self.given[self.rows, safe] += chosen
        # a backhaul link (index < n_iab) is received by IAB node link + 1: silent on k
        bh = chosen & (safe < self.n_iab)
        self.blocked[self.rows[bh], safe[bh] + 1, k] = True
        return give

    def channel_features(self, k: int) -> np.ndarray:
        """(N, L, F) what earlier choices changed, for every link's choice on channel ``k``
        by its own transmitter (the names in :data:`FEATURES`): the fraction of the link's
        capacity on ``k`` that would still move bytes (min(capacity, remaining) / capacity),
        the log of the bytes it moves relative to the best link of the same transmitter
        (both floored), the uncovered fraction of the link's backlog, whether it is covered
        (or empty), and the share of the channels it already got.

        One array serves every head of the channel: a link's features depend only on the
        choices of its own transmitter, which decided on earlier channels; a base station's
        choices on ``k`` change only its own links (and, through half duplex, whether a child
        may transmit at all, which :meth:`resolve_half_duplex` handles)."""
        cap = self.capacity[:, :, k]
        rem = np.maximum(self.remaining, 0.0)
        useful = np.where(cap > 0, np.minimum(cap, rem) / np.maximum(cap, 1e-9), 0.0)
        log_useful = np.log(np.maximum(useful, np.exp(LOG_USEFUL_FLOOR)))
        moved = np.minimum(cap, rem)
        # best bytes among each transmitter's links, read back at every link
        best_bs = np.where(self._own, moved[:, None, :], 0.0).max(axis=2)
        best = np.take_along_axis(best_bs, np.maximum(self.parent, 0), axis=1)
        log_bytes = np.log(np.maximum(moved / np.maximum(best, 1e-9),
                                      np.exp(LOG_USEFUL_FLOOR)))
        rem_frac = np.where(self.backlog > 0, rem / np.maximum(self.backlog, 1e-9), 0.0)
        covered = (rem <= 0).astype(np.float64)
        given = self.given / max(1, self.n_channels)
        return np.stack([useful, log_useful, log_bytes, rem_frac, covered, given], axis=-1)

    @property
    def _own(self) -> np.ndarray:
        """(N, B, L) True where base station b transmits link l."""
        if self._own_cache is None:
            self._own_cache = self.parent[:, None, :] == np.arange(self.n_bs)[None, :, None]
        return self._own_cache

    def resolve_half_duplex(self, k: int, links: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every base station's choice on channel ``k`` at once: ``links`` (N, B) the link
        each would pick (-1 idle). A base station whose parent picked its backhaul link on
        ``k`` may not transmit there: its choice becomes idle. Returns the final choices
        (N, B) and the block (N, B) each base station saw; the allocation is advanced."""
        links = np.array(links, dtype=np.int64)
        blocked = np.zeros(links.shape, dtype=bool)
        # only lower-index base stations (parents) block b, so one pass in index order
        # settles every block
        for b in range(self.n_bs):
            blocked[:, b] = self.blocked[:, b, k]
            links[blocked[:, b], b] = -1
            self._block_children(k, links[:, b])
        self._assign_channel(k, links)
        return links, blocked

    def _block_children(self, k: int, link: np.ndarray) -> None:
        bh = (link >= 0) & (link < self.n_iab)
        self.blocked[self.rows[bh], link[bh] + 1, k] = True

    def _assign_channel(self, k: int, links: np.ndarray) -> None:
        """Credit choices (N, B) on channel ``k`` (half duplex already applied)."""
        chosen = links >= 0
        safe = np.where(chosen, links, 0)
        rows = self.rows[:, None]
        give = np.where(chosen, self.capacity[rows, safe, k], 0.0)
        taken = np.zeros_like(self.remaining)
        np.add.at(taken, (np.broadcast_to(rows, safe.shape), safe), give)
        self.remaining -= taken
        count = np.zeros_like(self.given)
        np.add.at(count, (np.broadcast_to(rows, safe.shape), safe), chosen)
        self.given += count


def channel_heads(n_bs: int, n_channels: int, k: int) -> np.ndarray:
    """Flat head indices ``b * K + k`` of channel ``k``, base stations in index order."""
    return np.arange(n_bs) * n_channels + k


def replay(alloc: Allocation, action: np.ndarray, n_channels: int,
           features: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Replay actions (N, B*K) channel by channel on ``alloc`` (advanced in place). Returns
    the half-duplex block (N, B*K) each head saw before its choice and, with ``features``,
    the features (N, K, L, F) of every link on every channel before that channel's choices
    (teacher forcing: what a sequential policy conditioned on when it produced ``action``;
    head ``b * K + k`` reads channel ``k``'s rows of the links ``b`` transmits)."""
    action = np.asarray(action, dtype=np.int64)
    n, heads = action.shape
    blocked = np.zeros((n, heads), dtype=bool)
    feats = np.zeros((n, n_channels, alloc.capacity.shape[1], len(FEATURES))) \
        if features else None
    for k in range(n_channels):
        idx = channel_heads(alloc.n_bs, n_channels, k)
        if feats is not None:
            feats[:, k] = alloc.channel_features(k)
        _, blocked[:, idx] = alloc.resolve_half_duplex(k, action[:, idx] - 1)
    return blocked, feats


def inside_coverage(alloc: Allocation, action: np.ndarray, n_channels: int) -> np.ndarray:
    """(N,) True where every scheduled choice of ``action`` went to a link whose backlog was
    still uncovered by the earlier choices (the hard coverage mask would have allowed it)."""
    action = np.asarray(action, dtype=np.int64)
    ok = np.ones(action.shape[0], dtype=bool)
    for h in head_order(alloc.n_bs, n_channels):
        b, k = divmod(int(h), n_channels)
        link = action[:, h] - 1
        chosen = link >= 0
        rem = alloc.remaining[alloc.rows, np.where(chosen, link, 0)]
        ok &= ~chosen | (rem > 0)
        alloc.assign(b, k, link)
    return ok


# score(alloc, k) -> (N, L) preference of every link on channel k (higher is better);
# served(link (N,), bytes credited (N,), chosen (N,)) is told every choice
Score = Callable[[Allocation, int], np.ndarray]
Served = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


def channel_by_channel(alloc: Allocation, mask: np.ndarray, score: Score,
                       served: Served | None = None) -> np.ndarray:
    """The channel-by-channel scheduler: head by head in :func:`head_order`, each base station
    serves the allowed link with the best ``score`` among those whose backlog is not covered
    yet (idle when none is left); half duplex holds by construction. ``mask`` (N, B*K, 1+L)
    is the action mask; returns the action (N, B*K)."""
    n, heads, _ = mask.shape
    n_channels = alloc.n_channels
    allowed = mask[:, :, 1:].reshape(n, alloc.n_bs, n_channels, -1)
    action = np.zeros((n, heads), dtype=np.int64)
    rows = alloc.rows
    for h in head_order(alloc.n_bs, n_channels):
        b, k = divmod(int(h), n_channels)
        ok = alloc.open_links(b, k, allowed[:, b, k, :], backlogged=True)
        value = np.where(ok, score(alloc, k), -np.inf)
        best = value.argmax(axis=1)
        chosen = np.isfinite(value[rows, best])
        action[:, h] = np.where(chosen, best + 1, 0)
        give = alloc.assign(b, k, np.where(chosen, best, -1))
        if served is not None:
            served(best, give, chosen)
    return action
