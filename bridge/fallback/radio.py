"""Radio of the batched simulator: geometry (path loss, LOS, shadowing, beam gains), block
fading, the SINR of the scheduled choices, their capacity in bytes per tick, and the CQI.

Shapes as in :mod:`bridge.fallback.core`. The link gains live in ``_gain_ext`` (N, L+1, L):
row ``l'`` is the gain of link l''s transmit beam at every receiver, and the extra row L is
zero, the "source" of an idle choice, so the interference sum needs no activity mask. The
interference pairs read a compact copy over the links in use, ``_pair_gain`` (N, Lc+1, Lc),
whose entries are negated where the (parent of l', receiver) path is NLOS: one gather gives
the gain and the fading table.
"""

from __future__ import annotations

import numpy as np

from bridge.layout import OBS_BOUND, SNR_SCALE_DB
from bridge.model import external, rng
from bridge.model.channel import (
    coherence_frames,
    panel_coordinates,
    spectral_efficiency,
    umi_los_probability,
    umi_pathloss_db,
    upa_gain_lin,
    upa_gain_pq,
)

GEOMETRY_BLOCK = 256  # environments per block of the geometry update
CACHE_BLOCK = 1 << 16  # elements per block of the per-frame pair and fading arrays


class RadioMixin:
    """The radio half of :class:`~bridge.fallback.core.BatchedIABCore` (its arrays live there)."""

    N: int
    B: int
    L: int
    K: int
    I: int
    U: int

    @property
    def gain_lin(self) -> np.ndarray:
        """(N, L', L) linear gain of link l''s transmission at link l's receiver (a view)."""
        return self._gain_ext[:, : self.L]

    # ------------------------------------------------------------------ geometry
    def _update_geometry(self, m: np.ndarray, moved_m: np.ndarray) -> None:
        """Recompute path loss, LOS, shadowing and beam gains of the masked environments.
        ``moved_m`` (N, U) is how far each UE walked since the last update. Blocks of
        ``GEOMETRY_BLOCK`` environments at a time keep the many temporaries in cache."""
        index = np.flatnonzero(m)
        every = len(index) == self.N
        for start in range(0, len(index), GEOMETRY_BLOCK):
            stop = min(start + GEOMETRY_BLOCK, len(index))
            # a contiguous run of environments is a slice: views instead of copies
            block = slice(start, stop) if every else index[start:stop]
            self._update_geometry_block(block, stop - start, moved_m)

    def _update_geometry_block(self, sel: slice | np.ndarray, n: int, moved_m: np.ndarray
                               ) -> None:
        """:meth:`_update_geometry` of the ``n`` environments ``sel``. Only the links of the
        first ``n_links_used`` indices are computed: the padding UEs behind them have no link
        (their gains stay 0)."""
        cfg, r = self.config, self.config.radio
        I, Lc = self.I, self.n_links_used
        bs = self.bs_xyz[sel]  # (n, B, 3)
        rx = np.concatenate([bs[:, 1: 1 + I], self.ue_xyz[sel, : Lc - I]], axis=1)  # (n, Lc, 3)
        vec = rx[:, None, :, :] - bs[:, :, None, :]  # (n, B, Lc, 3)
        d2d = np.hypot(vec[..., 0], vec[..., 1])
        d3d = np.maximum(np.sqrt(d2d**2 + vec[..., 2] ** 2), 1e-6)
        unit = vec / d3d[..., None]
        moved = np.concatenate([np.zeros((n, I)), moved_m[sel, : Lc - I]],
                               axis=1)[:, None, :]
        los, shadow_db = self._large_scale(sel, d2d, moved)
        self.los[sel, :, :Lc] = los
        fade_off = np.where(los, 0, len(self.fade_los))
        self._fade_off[sel, :, :Lc] = fade_off
        parent = self.link_parent[sel, :Lc]  # (n, Lc)
        # flat indices into (n, B, Lc) arrays: (parent of l', receiver r) and (parent of l, l)
        flat_own = (np.arange(n)[:, None] * self.B + parent) * Lc + np.arange(Lc)
        flat = flat_own[:, :, None] + (np.arange(Lc) - np.arange(Lc)[:, None])
        los_sig = los.take(flat_own)
        self._los_sig[sel, :Lc] = los_sig
        self._fade_off_sig[sel, :Lc] = np.where(los_sig, 0, len(self.fade_los))
        pl = umi_pathloss_db(d2d, cfg.topology.bs_height_m, self.rx_height[None, None, :Lc],
                             r.carrier_ghz, los)
        tx_gain, rx_gain = self._beam_gains(unit, flat, flat_own, d2d)
        # everything but the transmit beam, linear: power x path gain x receive beam gain
        # an NLOS path arrives spread over clusters, so a beam aimed at the peer collects
        # only part of the array gain (radio.nlos_beam_loss_db)
        loss_db = pl + shadow_db + np.where(los, 0.0, r.nlos_beam_loss_db)
        path = (10 ** ((self.p_channel_dbm - loss_db) / 10)) * rx_gain  # (n, B, Lc)
        gain = path.take(flat) * tx_gain  # (n, Lc', Lc)
        # no coupling from an IAB node to its own MT, from/to links that do not exist
        gain = np.where(self._gain_zero[sel, :Lc, :Lc], 0.0, gain)
        self._gain_ext[sel, :Lc, :Lc] = gain
        # the interference pairs' table (row Lc: an idle source)
        self._pair_gain[sel, :Lc] = self._signed_gain(gain, los.take(flat))
        self.sig_lin[sel, :Lc] = np.diagonal(gain, axis1=1, axis2=2)
        rel_speed = np.concatenate([np.zeros((n, I)),
                                    np.repeat(self.speed[sel, None], Lc - I, 1)], axis=1)
        self.coh[sel, :Lc] = coherence_frames(rel_speed + r.scatterer_speed_mps, r.carrier_ghz,
                                              self.config.dynamics.frame_s)
        if self.ext_channels.any():
            self._external_geometry(sel, n, rx, bs[np.arange(n)[:, None], parent])

    @staticmethod
    def _signed_gain(gain: np.ndarray, los: np.ndarray) -> np.ndarray:
        """The pairs' table entries: the gain of (source link l', receiver r), negated where
        the (parent of l', r) path is NLOS (Rayleigh fading), so one gather gives both (a
        zero gain stays +0: its fading does not matter)."""
        return np.where(los, gain, -gain) + 0.0

    def _refresh_pair_tables(self, index: np.ndarray) -> None:
        """Rebuild the interference pairs' table of environments ``index`` from the gains
        and the LOS states (after their state was copied in)."""
        Lc = self.n_links_used
        parent = self.link_parent[index, :Lc]  # (n, Lc')
        los = np.take_along_axis(self.los[index, :, :Lc], parent[:, :, None], axis=1)
        self._pair_gain[index, :Lc] = self._signed_gain(self._gain_ext[index, :Lc, :Lc], los)

    def _external_geometry(self, sel: slice | np.ndarray, n: int, rx: np.ndarray,
                           parent_xyz: np.ndarray) -> None:
        """The external interferer's power at every receiver of the environments ``sel``
        (its receive beam on its own parent; bridge.model.external)."""
        r, Lc = self.config.radio, self.n_links_used
        backhaul = self.link_is_backhaul[:Lc]
        rows = np.where(backhaul, r.bs_array[0], r.ue_array[0])
        cols = np.where(backhaul, r.bs_array[1], r.ue_array[1])
        power = external.received_power_mw(self.ext_xyz[sel], self.ext_eirp_dbm[sel], rx,
                                           parent_xyz, rows, cols, r.carrier_ghz)
        self.ext_rx_mw[sel, :Lc] = np.where(self.link_valid[sel, :Lc], power, 0.0)

    def _large_scale(self, sel: slice | np.ndarray, d2d: np.ndarray, moved: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """LOS state and shadowing (dB) of every (base station, receiver) pair of the
        environments ``sel``, receivers ``0 .. n_links_used - 1``."""
        r, Lc = self.config.radio, self.n_links_used
        if r.deterministic:
            return np.ones_like(d2d, dtype=bool), np.zeros_like(d2d)
        br, br_change = self._geo_br
        # spatially consistent LOS and shadowing: latents re-drawn / AR(1) in distance
        change = rng.to_uniform(self._geo_words(sel, rng.STREAM_LOS, br_change))
        redraw = change < 1 - np.exp(-moved / r.los_corr_m)
        fresh = rng.to_uniform(self._geo_words(sel, rng.STREAM_LOS, br))
        los_u = np.where(redraw, fresh, self.los_u[sel, :, :Lc])
        self.los_u[sel, :, :Lc] = los_u
        fresh_b = rng.to_uniform(self._geo_words(sel, rng.STREAM_BLOCK, br))
        blk_u = np.where(redraw, fresh_b, self.blk_u[sel, :, :Lc])
        self.blk_u[sel, :, :Lc] = blk_u
        los = (los_u < umi_los_probability(d2d)) & (
            blk_u >= self.blockage[sel][:, None, None])
        if r.backhaul_los:
            los |= self.planned_los[sel, :, :Lc]
        corr = np.where(los, r.shadowing_corr_los_m, r.shadowing_corr_nlos_m)
        rho = np.exp(-moved / corr)
        z = rng.to_normal(self._geo_words(sel, rng.STREAM_SHADOW, br))
        shadow_x = rho * self.shadow_x[sel, :, :Lc] + np.sqrt(1 - rho**2) * z
        self.shadow_x[sel, :, :Lc] = shadow_x
        return los, shadow_x * np.where(los, r.shadowing_los_db, r.shadowing_nlos_db)

    def _geo_words(self, sel: slice | np.ndarray, stream: int, br_part: np.ndarray
                   ) -> np.ndarray:
        """(n, B, Lc) words ``hash(key, stream, geo_index, b, r)``; ``br_part`` is the
        precomputed (b, r) part of the modular sum (see rng.hash_keys)."""
        base = self.geo_index[sel].astype(np.uint64) * rng.KEY_MULT[1]
        base += self.key[sel]
        base += rng.stream_part(stream)
        words = base[:, None, None] + br_part
        return rng.mix64(words, np.empty_like(words))

    def _beam_gains(self, unit: np.ndarray, flat: np.ndarray, flat_own: np.ndarray,
                    d2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Transmit beam gain of every link at every receiver (n, Lc', Lc), float32, and the
        receive beam gain of every receiver toward every base station (n, B, Lc). ``flat``
        and ``flat_own`` index (n, B, Lc) arrays (see :meth:`_update_geometry_block`)."""
        r, Lc = self.config.radio, self.n_links_used
        # transmit beam of link l' (from its parent toward its receiver), seen at receiver r;
        # float32 for the big (n, L', L) part: beam gains need no more precision
        comp = [np.ascontiguousarray(unit[..., c], dtype=np.float32) for c in range(3)]
        bore_tx = tuple(c.take(flat_own)[:, :, None] for c in comp)  # (n, L', 1)
        dir_tx = tuple(c.take(flat) for c in comp)  # (n, L', L) parent(l') -> receiver r
        tx_gain = upa_gain_pq(*panel_coordinates(dir_tx, bore_tx), *r.bs_array)
        # receive beam of r (toward its own parent), seen from every base station b
        bore_rx = -unit.reshape(-1, 3)[flat_own]  # (n, L, 3)
        backhaul = self.link_is_backhaul[:Lc]
        rows = np.where(backhaul, r.bs_array[0], r.ue_array[0])
        cols = np.where(backhaul, r.bs_array[1], r.ue_array[1])
        rx_gain = np.empty_like(d2d)  # (n, B, L)
        for dims in {(int(a), int(b)) for a, b in zip(rows, cols)}:
            sel = (rows == dims[0]) & (cols == dims[1])
            rx_gain[:, :, sel] = upa_gain_lin(-unit[:, :, sel], bore_rx[:, None, sel], *dims)
        return tx_gain, rx_gain

    def _move_ues(self, m: np.ndarray) -> np.ndarray:
        """Random-direction walk over one geometry period for the environments of ``m``;
        returns the distance each UE moved (0 outside ``m``)."""
        d = self.config.dynamics
        period_s = d.geometry_update_frames * d.frame_s
        key = self.key[:, None]
        u_idx = np.arange(self.U)[None]
        turn = rng.to_uniform(rng.hash_keys(key, rng.STREAM_MOBILITY, self.geo_index[:, None],
                                            u_idx, 1))
        new_heading = 2 * np.pi * rng.to_uniform(
            rng.hash_keys(key, rng.STREAM_MOBILITY, self.geo_index[:, None], u_idx, 2))
        heading = np.where(turn < period_s / d.direction_hold_s, new_heading, self.heading)
        step = np.where(m[:, None] & self.ue_valid, self.speed[:, None] * period_s, 0.0)
        half = self.config.topology.area_m / 2
        xy = self.ue_xyz[..., :2] + step[..., None] * np.stack(
            [np.cos(heading), np.sin(heading)], axis=-1)
        # reflect at the area's borders (and turn around)
        over = np.abs(xy) > half
        xy = np.where(over, np.sign(xy) * (2 * half) - xy, xy)
        heading = np.where(over[..., 0], np.pi - heading, heading)
        heading = np.where(over[..., 1], -heading, heading)
        moving = m[:, None] & self.ue_valid
        self.heading = np.where(moving, heading, self.heading)
        self.ue_xyz[..., :2] = np.where(moving[..., None], xy, self.ue_xyz[..., :2])
        return step

    # ------------------------------------------------------------------ fading
    # Block fading: the power gain of (tx base station b, rx link r, channel k) in a frame is
    # table[hash(key, STREAM_FADING, frame // coh[r], b, r, k)], from the Rician table when
    # that pair is LOS, else the Rayleigh one; coh[r] is the receiver's coherence in frames.
    # The hash is a linear combination of the keys modulo 2^64 (bridge.model.rng.hash_keys),
    # so the parts that do not change between frames are precomputed and added once.
    def _fading_base(self, frame: np.ndarray) -> np.ndarray:
        """(N, L) uint64: the key, stream, block and receiver part of every fading hash."""
        M = rng.KEY_MULT
        block = (frame[:, None] // self.coh).astype(np.uint64)
        block *= M[1]
        block += (self.key + rng.stream_part(rng.STREAM_FADING))[:, None]
        block += self._fade_rx_part
        return block

    def _work(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A preallocated scratch array for a temporary of the step (never returned): big
        temporaries allocated anew every frame cost page faults and cache misses."""
        key = (name, shape)
        buf = self._workspace.get(key)
        if buf is None:
            buf = self._workspace[key] = np.empty(shape, dtype=dtype)
        return buf

    def _fading_lookup(self, words: np.ndarray, table_offset: np.ndarray, name: str,
                       table: np.ndarray | None = None) -> np.ndarray:
        """Fading power gains from hash words (mixed in place; they already carry the mixer's
        ``+ GOLDEN``, see rng.mix64_top_golden) and the per-word table offset (0: Rician,
        len(fade_los): Rayleigh; same leading axis as ``words`` or broadcast to each of its
        rows), into the scratch array ``name``, from ``table`` (default ``_fade_table``).
        Large arrays go in blocks of rows, so the mixer's passes stay in cache."""
        table = self._fade_table if table is None else table
        out = self._work(name, words.shape, np.float64)
        rows = max(1, CACHE_BLOCK // max(1, words[0].size)) if words.size > CACHE_BLOCK \
            else len(words)
        same = table_offset.shape == words.shape
        scratch = self._work(name + "_scratch", (min(rows, len(words)),) + words.shape[1:],
                             np.uint64)
        shift = np.uint64(64 - self._fade_bits)
        for start in range(0, len(words), rows):
            block = slice(start, start + rows)
            w = words[block]
            rng.mix64_top_golden(w, scratch[: len(w)])  # only the top bits index the table
            index = np.right_shift(w, shift, out=w).view(np.int64)
            index += table_offset[block] if same else table_offset
            table.take(index, out=out[block], mode="clip")
        return out

    def _signal_fading(self, frame: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        """(K, N, Lc) fading on the own path (parent -> receiver) of the links in use
        (``n_links_used``), channel-major. A scratch array: valid until the next call."""
        Lc = self.n_links_used
        if self.config.radio.deterministic:
            return np.ones((self.K, self.N, Lc))
        base = self._fading_base(frame) if base is None else base
        words = np.add(self._fade_static_sig_k, base[:, :Lc],
                       out=self._work("sig_words", self._fade_static_sig_k.shape, np.uint64))
        return self._fading_lookup(words, self._fade_off_sig[:, :Lc], "sig_fade")

    # ------------------------------------------------------------------ link budget
    def _sinr(self, frame: np.ndarray, link: np.ndarray, active: np.ndarray,
              sig_fade: np.ndarray) -> np.ndarray:
        """SINR (dB) of every choice (N, B, K), -inf where idle: the scheduled link's signal
        over noise + co-channel interference from every other active base station (the
        transmit beam of the link it schedules, at this receiver) + incumbents.
        Computed base-station-major ((B, N, K))."""
        link_b = np.ascontiguousarray(link.transpose(1, 0, 2))
        active_b = link_b >= 0
        safe_b = np.maximum(link_b, 0)  # idle choices read link 0 (their result is -inf)
        own = self._row_L_b + safe_b  # (B, N, K) flat (n, link)
        signal = self.sig_lin.take(own)
        signal *= sig_fade.take(self._sig_fade_row_b + safe_b)
        interference = self._interference(frame, link_b, active_b, safe_b)
        interference += self.incumbent[None] * self.inc_mw
        if self.ext_channels.any():
            interference = interference + external.external_interference_mw(
                self.ext_rx_mw, safe_b.transpose(1, 0, 2), self.ext_channels,
                external.interferer_on(self.key, frame, self.ext_activity)).transpose(1, 0, 2)
        # 10 log10(max(signal, 1e-30) / (noise + interference)), -inf where idle (set by
        # index after the log: log10 of zeros takes a slow path for every one)
        interference += self.noise_mw.take(safe_b)
        np.maximum(signal, 1e-30, out=signal)
        signal /= interference
        np.log10(signal, out=signal)
        signal *= 10
        signal.reshape(-1)[np.flatnonzero(link_b < 0)] = -np.inf
        return np.ascontiguousarray(signal.transpose(1, 0, 2))

    def _interference(self, frame: np.ndarray, link_b: np.ndarray, active_b: np.ndarray,
                      safe_b: np.ndarray) -> np.ndarray:
        """(B, N, K) co-channel interference at the receiver each base station schedules:
        the sum over the other active base stations b' (in order) of the gain of the link b'
        schedules at that receiver times the block fading of the (b', receiver) path. Pairs
        (victim, b', N, K) are formed for a block of victims at a time (cache)."""
        B, N, K, Lc = self.B, self.N, self.K, self.n_links_used
        # idle sources read the zero row Lc of the pair tables
        source = np.where(active_b, link_b, Lc)
        source *= Lc
        source += self._row_pair_b  # (B', N, K) flat (n, source link, 0)
        source = source[self._others]  # (B, B-1, N, K): the other base stations of each
        fading = not self.config.radio.deterministic
        if fading:
            base = self._frame_base.take(self._row_L_b + safe_b)  # (B, N, K)
        interference = np.zeros((B, N, K))
        if B == 1:
            return interference
        step = max(1, CACHE_BLOCK // ((B - 1) * N * K))
        for b0 in range(0, B, step):
            victims = slice(b0, min(B, b0 + step))
            nv = victims.stop - b0
            # the other base stations of each victim, in order: a base station does not
            # interfere with itself, and leaving out its zero term changes no sum
            shape = (nv, B - 1, N, K)
            flat = np.add(source[victims], safe_b[victims, None],
                          out=self._work("pair_flat", shape, np.int64))
            coupling = self._pair_gain.take(flat, out=self._work("pair_gain", shape,
                                                                 np.float64), mode="clip")
            if fading:
                words = np.add(base[victims, None], self._fade_static_bk_o[victims],
                               out=self._work("pair_words", shape, np.uint64))
                # the (b', receiver) path's fading table: Rayleigh where the entry is
                # negative (NLOS; b' is the parent of the source link)
                nlos = np.less(coupling, 0.0, out=self._work("pair_nlos", shape, np.bool_))
                offset = self._work("pair_offset", shape, np.int64)
                np.copyto(offset, nlos)  # a cast and a shift: cheaper than a mixed product
                np.left_shift(offset, self._fade_bits, out=offset)
                # the Rayleigh half of the table is negated: (-gain) x (-fading) is the
                # product of their magnitudes, bit for bit
                coupling *= self._fading_lookup(words, offset, "pair_fade",
                                                self._fade_table_signed)
            else:
                np.abs(coupling, out=coupling)
            coupling.sum(axis=1, out=interference[victims])
        return interference

    def _capacity(self, sinr_db: np.ndarray, link: np.ndarray, active: np.ndarray
                  ) -> np.ndarray:
        """(N*(L+1),) bytes per tick of every link (the last column of each row is the "no
        link" sink): truncated Shannon per scheduled channel, summed over channels."""
        N, L, r = self.N, self.L, self.config.radio
        # idle choices have SINR -inf, so spectral efficiency 0 and 0 bytes: they add 0 to
        # the bin of link 0 (no change to any sum)
        se = spectral_efficiency(sinr_db, r.se_efficiency, r.se_cap_bps_hz, r.se_min_sinr_db)
        se *= self.bytes_per_tick_factor
        bytes_tick = np.floor(se, out=se).astype(np.int64)
        cap_idx = self._row_cap + np.maximum(link, 0)
        capacity = np.bincount(cap_idx.ravel(), weights=bytes_tick.ravel(),
                               minlength=N * (L + 1))
        return capacity.astype(np.int64)

    def _cqi(self, sig_fade: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(N, L, K) float32 CQI from the channel-major signal fading (K, N, Lc); 0 on the
        padding links. Written into ``out`` (zero on the padding links), by default ``cqi``
        in place."""
        Lc = self.n_links_used
        snr_db = np.multiply(self.sig_lin[:, :Lc], sig_fade,
                             out=self._work("cqi", sig_fade.shape, np.float64))
        snr_db /= self._noise_nl
        np.maximum(snr_db, 1e-30, out=snr_db)
        np.log10(snr_db, out=snr_db)
        snr_db *= 10
        snr_db /= SNR_SCALE_DB
        # clipped to the observation's bound before the rounding to float32: the same values
        # (rounding is monotone and the bound exact)
        np.clip(snr_db, -OBS_BOUND, OBS_BOUND, out=snr_db)
        cqi = self.cqi if out is None else out  # the padding links stay 0
        cqi[:, :Lc] = snr_db.transpose(1, 2, 0)
        # links that do not exist show 0 (a few rows, by index: no masked pass)
        cqi[self._invalid_nl] = 0.0
        return cqi
