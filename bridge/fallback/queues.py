"""Byte queues of the batched simulator: traffic arrivals, the 1 ms ticks of a frame, and the
per-link backlog and head-of-line age the observation shows.

Queues are byte cursors along each UE's path (see :mod:`bridge.fallback.core`): plane 0 of
``qcur`` counts the bytes that entered the donor, plane h + 1 the bytes that left hop plane h
(served or dropped). Everything is integer arithmetic except the split of a backhaul link's
capacity in proportion to backlogs, which is truncated to whole bytes, so byte conservation is
exact. The ticks run over the first ``n_ue_max`` UE columns only: the padding UEs behind them
never receive traffic, so their queues stay empty and skipping them changes nothing.
"""

from __future__ import annotations

import numpy as np

from bridge.model import rng

H_MAX = 3  # donor -> IAB -> IAB -> UE at most


class QueueMixin:
    """The queue half of :class:`~bridge.fallback.core.BatchedIABCore` (its arrays live there)."""

    N: int
    U: int
    L: int
    T: int
    D: int
    H: int
    qcur: np.ndarray
    ring: np.ndarray

    # ------------------------------------------------------------------ indexing
    def _index_hops(self, H: int | None = None) -> None:
        """Hop planes: every UE's path is aligned at the end over the batch's H planes (the
        last plane is the access hop, earlier ones backhaul hops or padding). A padding plane
        is a pass-through whose cursor always equals the arrivals."""
        N, L = self.N, self.L
        self.H = H if H is not None else max(1, int(self.hop_valid.sum(axis=2).max()))
        H = self.H
        # the UE columns that can carry traffic: padding UEs are the trailing ones
        self.n_ue_max = Ue = max(1, int(self.n_ue.max()))
        self.n_links_used = self.I + Ue
        length = self.hop_valid[:, :Ue].sum(axis=2)  # (N, Ue) hops of each UE's path
        plane_link = np.full((H, N, Ue), L, dtype=np.int64)
        for h in range(H):
            src = h - (H - length)  # index into the front-aligned path
            real = src >= 0
            plane_link[h][real] = np.take_along_axis(
                self.hop_link[:, :Ue], np.clip(src, 0, H_MAX - 1)[..., None],
                axis=2)[..., 0][real]
        self.plane_pad = plane_link == L  # (H, N, Ue) pass-through planes (and padding UEs)
        self.plane_pad[H - 1] = False
        # the pass-through entries of the backhaul planes, flat, and their arrivals' entries
        self._pad_flat = np.flatnonzero(self.plane_pad[: H - 1])
        self._pad_src = self._pad_flat % (N * Ue)
        # ticks: floor(p (j+1) / T) - floor(p j / T) packets of p = q T + r arrive in tick j,
        # that is q + _tick_split[j, r]
        T = self.T
        j = np.arange(T + 1)[:, None]
        cum = (np.arange(T)[None] * j) // T
        self._tick_split = cum[1:] - cum[:-1]  # (T, T)
        row = np.arange(N)[None, :, None] * (L + 1)
        self.access_flat = (row[0] + plane_link[H - 1]).ravel()
        self.backhaul_flat = (row + plane_link[: H - 1]).ravel()
        # backhaul links are the first I link indices; "no link" (L) becomes bin I, so the
        # per-tick segment sums run over N (I + 1) bins
        I = self.I
        self._backhaul_bins = (np.arange(N)[None, :, None] * (I + 1)
                               + np.minimum(plane_link[: H - 1], I)).ravel()
        self._n_backhaul_bins = N * (I + 1)
        hop_flat = (row + plane_link).ravel()
        self._hop_perm = np.argsort(hop_flat, kind="stable")
        ordered = hop_flat[self._hop_perm]
        self._seg_starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self._seg_links = ordered[self._seg_starts]

    # ------------------------------------------------------------------ views
    @property
    def arrived(self) -> np.ndarray:
        """(N, U) cumulative bytes that entered the donor for each UE (a view)."""
        return self.qcur[0]

    @property
    def cursor(self) -> np.ndarray:
        """(N, U, H) cumulative bytes that left each hop plane, served or dropped (a view).
        Paths are aligned at the end: plane H-1 is the access hop; a plane before a UE's
        first hop is a pass-through that equals the arrivals."""
        return self.qcur[1: self.H + 1].transpose(1, 2, 0)

    @property
    def delivered_or_dropped(self) -> np.ndarray:
        """(N, U) bytes that left each UE's path: the access hop's cursor (a view)."""
        return self.qcur[self.H]

    def bytes_in_queues(self) -> np.ndarray:
        """(N,) bytes still queued anywhere in each network."""
        return np.where(self.ue_valid, self.arrived - self.delivered_or_dropped, 0).sum(axis=1)

    def _on_fraction(self) -> float:
        t = self.config.traffic
        return 1.0 if t.off_mean_s == 0 else t.on_mean_s / (t.on_mean_s + t.off_mean_s)

    # ------------------------------------------------------------------ traffic
    def _traffic(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This frame's arrivals: on/off Markov per UE, Poisson packet count per frame (normal
        approximation, rounded, never negative), spread evenly over the frame's ticks.
        Returns bytes per tick (T, N, n_ue_max) and bytes per environment (N,)."""
        cfg, t = self.config, self.config.traffic
        # only the UE columns that can carry traffic (the padding UEs behind them get no
        # packets whatever their on/off state, which is left as it is)
        Ue = self.n_ue_max
        key_part = self._ue_key_part[:Ue]
        onoff = self.onoff[:, :Ue]  # a view
        if t.off_mean_s > 0:
            u = rng.to_uniform(self._words(rng.STREAM_ONOFF, frame + 1, key_part))
            p_off = min(1.0, cfg.dynamics.frame_s / t.on_mean_s)
            p_on = min(1.0, cfg.dynamics.frame_s / t.off_mean_s)
            onoff[...] = np.where(onoff, u >= p_off, u < p_on)
        lam = self.rate_bps[:, None] * cfg.dynamics.frame_s / (8 * t.packet_bytes)
        lam = lam * (onoff & self.ue_valid[:, :Ue])
        z = rng.to_normal(self._words(rng.STREAM_ARRIVALS, frame, key_part))
        packets = np.maximum(0, np.rint(lam + np.sqrt(lam) * z)).astype(np.int64)
        arrived = packets.sum(axis=1) * t.packet_bytes
        whole, rest = np.divmod(packets, self.T)
        per_tick = self._tick_split.take(rest, axis=1)  # (T, N, Ue)
        per_tick += whole
        per_tick *= t.packet_bytes
        return per_tick, arrived

    def _words(self, stream: int, counter: np.ndarray, index_part: np.ndarray) -> np.ndarray:
        """(N, X) hash words ``hash(key, stream, counter[n], x)`` with ``index_part`` the
        precomputed ``x * KEY_MULT[2]`` (see rng.hash_keys; the sum is modular, so the
        per-environment part is added once)."""
        base = counter.astype(np.uint64) * rng.KEY_MULT[1]
        base += self.key
        base += rng.stream_part(stream)
        words = base[:, None] + index_part
        return rng.mix64(words, np.empty_like(words))

    # ------------------------------------------------------------------ ticks
    def _run_queues(self, frame: np.ndarray, capacity: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Serve the frame's ticks. ``capacity`` (N*(L+1),) bytes per tick per link (the last
        column of each row is the "no link" sink). Returns delivered bytes per UE, dropped and
        arrived bytes per environment."""
        N, H, D, Ue = self.N, self.H, self.D, self.n_ue_max
        per_tick, arrived = self._traffic(frame)
        cap_access = capacity[self.access_flat].reshape(N, Ue)
        # backhaul capacity per bin (link < I, or the "no link" sink of capacity 0)
        per_row = capacity.reshape(N, self.L + 1)
        cap_bins = np.concatenate([per_row[:, : self.I], per_row[:, self.L:]], axis=1)
        cap_bins = cap_bins.astype(np.float64).ravel()
        # contiguous working copy of the cursors of the UE columns that carry traffic
        q = np.ascontiguousarray(self.qcur[: H + 1, :, :Ue])
        ring = self.ring
        arrived_now, cursor = q[0], q[1:]
        access, access_up = q[H], q[H - 1]
        backhaul, backhaul_up = q[1:H], q[: H - 1]
        pad_flat, pad_src = self._pad_flat, self._pad_src
        backhaul_flat = backhaul.reshape(-1)  # a view: q is contiguous
        start = access.sum(axis=1)
        delivered = np.zeros((N, Ue), dtype=np.int64)
        serve = np.empty((N, Ue), dtype=np.int64)
        backlog = np.empty((H - 1, N, Ue), dtype=np.int64)
        # the backhaul share's per-tick scratch (float share per UE, its whole bytes)
        scratch = (np.empty(backlog.shape), np.empty(backlog.shape, dtype=np.int64))
        for j in range(self.T):
            # the ring is indexed by a batch-wide tick counter: slot s holds the cumulative
            # arrivals at the end of the tick D ticks ago, i.e. the expiry cursor
            slot = (self.global_tick + j) % D
            arrived_now += per_tick[j]
            if len(pad_flat):  # pass-through planes follow the arrivals
                backhaul_flat[pad_flat] = arrived_now.take(pad_src)
            # bytes older than the budget leave every hop (dropped)
            np.maximum(cursor, ring[slot], out=cursor)
            # access hop: one UE per link, served up to the link's capacity
            np.subtract(access_up, access, out=serve)
            np.minimum(serve, cap_access, out=serve)
            if H > 1:
                self._serve_backhaul(backhaul, backhaul_up, backlog, cap_bins, scratch)
            access += serve
            delivered += serve
            ring[slot] = arrived_now
        self.qcur[: H + 1, :, :Ue] = q
        self.global_tick += self.T
        dropped = access.sum(axis=1) - start - delivered.sum(axis=1)
        out = np.zeros((N, self.U), dtype=np.int64)
        out[:, :Ue] = delivered
        return out, dropped, arrived

    def _serve_backhaul(self, backhaul: np.ndarray, backhaul_up: np.ndarray,
                        backlog: np.ndarray, cap_bins: np.ndarray,
                        scratch: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """One tick on the backhaul hops: a link's capacity is split in proportion to the
        backlogs of the UEs it carries (exactly 1 when it covers them all), whole bytes.
        The share is computed per link (bin) and then handed to its UEs."""
        np.subtract(backhaul_up, backhaul, out=backlog)
        share = np.bincount(self._backhaul_bins, weights=backlog.ravel(),
                            minlength=self._n_backhaul_bins)
        np.maximum(share, 1.0, out=share)
        np.divide(cap_bins, share, out=share)
        np.minimum(share, 1.0, out=share)
        if scratch is None:
            scratch = (np.empty(backlog.shape), np.empty(backlog.shape, dtype=np.int64))
        served, whole = scratch
        share.take(self._backhaul_bins, out=served.reshape(-1), mode="clip")  # in range
        served *= backlog
        # truncated to whole bytes (the cast astype(int64) does)
        np.copyto(whole, served, casting="unsafe")
        backhaul += whole

    # ------------------------------------------------------------------ observation
    def _link_queues(self) -> tuple[np.ndarray, np.ndarray]:
        """Per link: bytes waiting at its transmitter, and the head-of-line age in ticks."""
        Ue = self.n_ue_max
        q = np.ascontiguousarray(self.qcur[: self.H + 1, :, :Ue])
        backlog = q[:-1] - q[1:]  # (H, N, Ue); 0 on pass-through planes
        # the oldest byte at hop h is byte number cursor[h]; the ring holds the cumulative
        # arrivals at the end of the last D ticks, so its age is D minus the ticks whose
        # arrivals it had already passed
        # (counted as uint8, D <= 255: a sum without a cast per element; an age is 0 where
        # nothing waits, a product instead of a select)
        passed = np.less_equal(self.ring[:, None], q[None, 1:]).view(np.uint8).sum(
            axis=0, dtype=np.uint8) if self.D < 256 else \
            (self.ring[:, None] <= q[None, 1:]).sum(axis=0, dtype=np.int16)
        age = np.subtract(self.D, passed, dtype=np.int16)
        age *= backlog > 0
        # per-link sum and max over the (UE, hop) pairs a link carries: segments of a static
        # sort of the flat link index
        size = self.N * (self.L + 1)
        per_link = np.zeros(size)
        hol = np.zeros(size)
        per_link[self._seg_links] = np.add.reduceat(backlog.ravel()[self._hop_perm],
                                                    self._seg_starts)
        hol[self._seg_links] = np.maximum.reduceat(age.ravel()[self._hop_perm],
                                                   self._seg_starts)
        per_link = per_link.reshape(self.N, self.L + 1)[:, : self.L]
        return per_link, hol.reshape(self.N, self.L + 1)[:, : self.L]
