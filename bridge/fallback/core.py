"""The batched numpy simulator: N IAB networks stepped together, one frame per step.

State arrays have the environment axis first; the step has no Python loop over environments
or links (the loops are over the few ticks inside a frame and over blocks of the big
per-frame arrays). Speed comes from layout, not from other arithmetic: per-choice arrays of
the SINR are base-station-major so no operand is broadcast along the short channel axis, big
temporaries live in scratch arrays, work skips the padding UEs, and every element sees the
same floating-point operations in the same order as the plain formulas (a golden trace,
``benchmarks.golden_trace``, checks the results bit for bit). Randomness is counter-based
(:mod:`bridge.model.rng`), keyed by each environment's episode seed, so environment ``i``
evolves identically whatever batch it is in. Shapes: N environments, B base stations (donor +
``max_iab``), L links (``max_iab`` backhaul + ``max_ues`` access), U UEs, K channels, H = 3 hops.

Queues are byte cursors along each UE's path: ``arrived[u]`` counts bytes that entered the
donor, ``cursor[u, h]`` the bytes that have left hop h (served or dropped). Bytes between two
cursors wait at that hop, oldest first, so FIFO order and byte conservation hold exactly in
integer arithmetic. A backhaul link shared by several UEs splits its capacity in proportion to
their backlogs. Bytes older than the delay budget are dropped (latency violations).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bridge.config import ConfigError, ScenarioConfig
from bridge.fallback.queues import H_MAX, QueueMixin
from bridge.fallback.radio import RadioMixin
from bridge.instance import ScenarioInstance
from bridge.layout import (
    BACKLOG_SCALE_BYTES,
    LAST_SINR_SENTINEL,
    OBS_BOUND,
    SNR_SCALE_DB,
    ObservationLayout,
    half_duplex_conflicts,
    validate_action,
)
from bridge.metrics import episode_metrics, jain_index
from bridge.model import external, rng
from bridge.model.channel import fading_quantiles, noise_dbm
from bridge.tasks import TASK_DIMENSIONS

# fields that may differ between the environments of one batch (the task dimensions)
_TASK_PATHS = {path for path, _ in TASK_DIMENSIONS.values()}


def _shared_part(config: ScenarioConfig) -> dict:
    tree = config.to_dict()
    for path in _TASK_PATHS:
        section, key = path.split(".")
        tree[section].pop(key)
    return tree


def _count_last(flags: np.ndarray) -> np.ndarray:
    """``flags.sum(axis=-1)`` (int64) of a contiguous bool array: by popcount of its bytes
    taken 8 at a time when the last axis is a multiple of 8 long (numpy >= 2), without
    numpy's per-row reduction loop over a short axis."""
    n = flags.shape[-1]
    if n % 8 or not flags.flags.c_contiguous or not hasattr(np, "bitwise_count"):
        return flags.sum(axis=-1)
    words = np.bitwise_count(flags.view(np.uint64)).reshape(flags.shape[:-1] + (n // 8,))
    return words.sum(axis=-1, dtype=np.int64) if n > 8 else words[..., 0].astype(np.int64)


class BatchedIABCore(RadioMixin, QueueMixin):
    """N IAB networks in lock-step. Not a Gymnasium object: the env classes wrap it.

    The radio (:mod:`bridge.fallback.radio`) and the queues (:mod:`bridge.fallback.queues`)
    are mixins over the arrays held here; :meth:`step` reads as the frame's stages."""

    # per-environment arrays (leading axis N), cloned by :meth:`take`
    _STATE = (
        "n_ue", "speed", "rate_bps", "blockage", "inc_activity", "bs_valid", "bs_xyz",
        "link_valid", "link_parent", "rx_own_bs", "planned_los", "ue_valid", "hop_link",
        "hop_valid",
        "allowed", "ue_home", "heading_home", "key", "obs_links",
        "frame", "ue_xyz", "heading", "los_u", "blk_u", "shadow_x", "los", "_gain_ext",
        "sig_lin", "coh", "onoff", "incumbent", "incumbent_seen",
        "acc_delivered_ue", "acc_dropped",
        "acc_arrived", "acc_scheduled", "acc_sinr_viol", "acc_inc", "acc_hd", "acc_invalid",
        "acc_reward", "geo_index", "_los_sig", "_fade_off", "_fade_off_sig", "_allowed_ext",
        "_allowed_pad",
        "_gain_zero", "_idle_sinr",
        "ext_xyz", "ext_eirp_dbm", "ext_activity", "ext_channels", "miss_prob", "ext_rx_mw",
    )

    def __init__(self, config: ScenarioConfig, instances: Sequence[ScenarioInstance]) -> None:
        if len(instances) == 0:
            raise ConfigError("a batched core needs at least one scenario instance")
        self.config = config
        shared = _shared_part(config)
        for i, inst in enumerate(instances):
            if _shared_part(inst.config) != shared:
                raise ConfigError(
                    f"instance {i} differs from the batch's config outside the task "
                    f"dimensions {sorted(TASK_DIMENSIONS)}; one batch shares radio, timing, "
                    "traffic shape, padding and reward settings"
                )
        self.layout = ObservationLayout.from_config(config)
        self._obs_slices = self.layout.slices()
        r, d, t = config.radio, config.dynamics, config.traffic
        self.N = len(instances)
        self.B, self.L, self.K = config.n_bs_max, config.n_links_max, r.n_channels
        self.I, self.U = config.topology.max_iab, config.topology.max_ues
        self.T = d.ticks_per_frame
        self.D = max(1, int(round(t.delay_budget_s / d.tick_s)))
        self.channel_hz = r.channel_bandwidth_hz
        self.p_channel_dbm = r.bs_tx_power_dbm - 10 * np.log10(r.n_channels)
        nf = np.concatenate([np.full(self.I, r.noise_figure_iab_db),
                             np.full(self.U, r.noise_figure_ue_db)])
        self.noise_mw = 10 ** (noise_dbm(self.channel_hz, nf) / 10)  # (L,)
        self.inc_mw = 10 ** (r.incumbent_interference_dbm / 10)
        self.rx_height = np.concatenate([np.full(self.I, config.topology.bs_height_m),
                                         np.full(self.U, config.topology.ue_height_m)])
        self.link_is_backhaul = np.arange(self.L) < self.I
        self.fade_los, self.fade_nlos = fading_quantiles(r.rician_k_db)
        self._fade_table = np.concatenate([self.fade_los, self.fade_nlos])
        # the interference pairs' table: the Rayleigh half negated, so a negative (NLOS) pair
        # gain times its fading is the positive product (exact: only the sign differs)
        self._fade_table_signed = np.concatenate([self.fade_los, -self.fade_nlos])
        self._fade_bits = int(np.log2(len(self.fade_los)))
        M = rng.KEY_MULT
        self._fade_static_bk = (np.arange(self.B, dtype=np.uint64)[:, None] * M[2]
                                + np.arange(self.K, dtype=np.uint64)[None, :] * M[4])
        self._fade_rx_part = np.arange(self.L, dtype=np.uint64) * M[3]
        self._ue_key_part = np.arange(self.U, dtype=np.uint64) * M[2]
        self._k_key_part = np.arange(self.K, dtype=np.uint64) * M[2]
        self.bytes_per_tick_factor = self.channel_hz * d.tick_s * (1 - r.overhead) / 8
        self._load_instances(instances)
        self._index_rows()
        self._workspace: dict = {}
        self.instances = list(instances)

    def _index_rows(self) -> None:
        """Offsets of the step's flat takes, expanded to full (B, N, K) arrays: an operand
        broadcast along the short channel axis makes numpy loop 8 elements at a time, so the
        per-choice arrays are base-station-major and every operand spans (N, K)."""
        N, B, K, L = self.N, self.B, self.K, self.L
        n = np.arange(N)[:, None, None]
        # into allowed (N, B, L), and the (n, k) part of flat (N, L, K) indices
        self._row_allowed = np.ascontiguousarray(np.broadcast_to(
            (n * B + np.arange(B)[None, :, None]) * (L + 1), (N, B, K)))
        # the action mask without incumbents (copied, then the sensed channels set to idle)
        self._mask_free = np.ascontiguousarray(np.broadcast_to(
            self._allowed_ext[:, :, None, :], (N, B, K, 1 + L)))
        F = self.layout.link_features
        self._row_LF_sinr = np.ascontiguousarray(np.broadcast_to(
            n * (L * F) + self._obs_slices["sinr"].start + np.arange(K), (N, B, K)))

        def bnk(values: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(np.broadcast_to(values, (B, N, K)))

        n_b = np.arange(N)[None, :, None]
        self._row_L_b = bnk(n_b * L)  # into (N, L) arrays
        self._row_cap = np.ascontiguousarray(np.broadcast_to(n * (L + 1), (N, B, K)))
        Lc = self.n_links_used
        self._row_pair_b = bnk(n_b * ((Lc + 1) * Lc))  # into the pair tables (N, Lc+1, Lc)
        # into the signal fading (K, N, Lc) of the links in use
        self._sig_fade_row_b = bnk(np.arange(K)[None, None, :] * (N * Lc) + n_b * Lc)
        # (b', n, k) parts of the interference hashes and table offsets
        self._fade_static_bk_b = bnk(self._fade_static_bk[:, None, :])
        # the other base stations of each base station, in order (B, B-1), and the (b', n, k)
        # parts above for them: (B, B-1, N, K)
        self._others = np.array([[o for o in range(B) if o != b] for b in range(B)],
                                dtype=np.int64).reshape(B, B - 1)
        # (both static parts carry the mixer's first step, + GOLDEN: rng.mix64_top_golden)
        self._fade_static_bk_o = self._fade_static_bk_b[self._others] + rng.GOLDEN
        # (K, N, L) static part of the signal fading hashes: parent and channel
        self._fade_static_sig_k = (np.arange(K, dtype=np.uint64)[:, None, None]
                                   * rng.KEY_MULT[4]
                                   + self.link_parent[:, :Lc].astype(np.uint64)[None]
                                   * rng.KEY_MULT[2]) + rng.GOLDEN
        # (b, r) parts of the geometry's hashes (LOS, blockage, shadowing; LOS change)
        M = rng.KEY_MULT
        b_part = np.arange(B, dtype=np.uint64)[:, None] * M[2]
        self._geo_br = (b_part + np.arange(Lc, dtype=np.uint64) * M[3],
                        b_part + (np.arange(Lc, dtype=np.uint64) + np.uint64(7919)) * M[3])
        self._noise_nl = np.ascontiguousarray(np.broadcast_to(self.noise_mw[:Lc], (N, Lc)))
        # (n, l) of the links in use that do not exist (their CQI is 0)
        self._invalid_nl = np.nonzero(~self.link_valid[:, :Lc])
        # UE -> the base station serving it, flat over (N, B) (who delivered)
        self._ue_bs_flat = (np.arange(N)[:, None] * B + self.link_parent[:, self.I:]).ravel()

    # ------------------------------------------------------------------ instances
    def _load_instances(self, instances: Sequence[ScenarioInstance]) -> None:
        N, B, L, U, I = self.N, self.B, self.L, self.U, self.I
        self.n_ue = np.array([x.n_ue for x in instances], dtype=np.int64)
        self.speed = np.array([x.config.dynamics.ue_speed_mps for x in instances])
        self.rate_bps = np.array([x.config.traffic.ue_rate_mbps * 1e6 for x in instances])
        self.blockage = np.array([x.config.radio.blockage_prob for x in instances])
        self.inc_activity = np.array([x.config.dynamics.incumbent_activity for x in instances])
        # hidden deployment conditions (bridge.model.external)
        ext = external.batch_interferers(instances, self.K)
        self.ext_xyz, self.ext_eirp_dbm = ext["xyz"], ext["eirp_dbm"]
        self.ext_activity, self.ext_channels = ext["activity"], ext["channels"]
        self.miss_prob = np.array([x.config.dynamics.incumbent_miss_prob for x in instances])
        self.bs_valid = np.zeros((N, B), dtype=bool)
        self.bs_xyz = np.zeros((N, B, 3))
        self.link_valid = np.zeros((N, L), dtype=bool)
        self.link_parent = np.zeros((N, L), dtype=np.int64)
        self.ue_valid = np.zeros((N, U), dtype=bool)
        self.ue_home = np.zeros((N, U, 3))
        self.heading_home = np.zeros((N, U))
        self.hop_link = np.full((N, U, H_MAX), L, dtype=np.int64)  # L = "no link"
        self.hop_valid = np.zeros((N, U, H_MAX), dtype=bool)
        for n, inst in enumerate(instances):
            nb = 1 + inst.n_iab
            self.bs_valid[n, :nb] = True
            self.bs_xyz[n, :nb] = inst.bs_xyz
            self.bs_xyz[n, nb:] = inst.bs_xyz[0]  # padding sits on the donor, never used
            self.link_valid[n, : inst.n_iab] = True
            self.link_parent[n, : inst.n_iab] = inst.iab_parent
            self.link_valid[n, I: I + inst.n_ue] = True
            self.link_parent[n, I: I + inst.n_ue] = inst.ue_parent
            self.ue_valid[n, : inst.n_ue] = True
            self.ue_home[n, : inst.n_ue] = inst.ue_xyz
            self.ue_home[n, inst.n_ue:] = inst.bs_xyz[0] + np.array([1.0, 0.0, 0.0])
            self.heading_home[n, : inst.n_ue] = inst.ue_heading_rad
            for u in range(inst.n_ue):
                hops = inst.ue_hops(u)
                self.hop_link[n, u, : len(hops)] = hops
                self.hop_valid[n, u, : len(hops)] = True
        # backhaul hops: parent -> its IAB node's MT (planned line of sight)
        self.planned_los = np.zeros((N, B, L), dtype=bool)
        n_idx, l_idx = np.nonzero(self.link_valid[:, :I])
        self.planned_los[n_idx, self.link_parent[n_idx, l_idx], l_idx] = True
        self._index_hops()
        # the per-link part of the observation, kept between steps: the columns that never
        # change for a deployment, and the CQI and last SINR (:attr:`cqi`, :attr:`last_sinr`
        # are views), clipped as they are written; the queue columns are written per call
        s = self.layout.slices()
        self.obs_links = np.zeros((N, L, self.layout.link_features), dtype=np.float32)
        self.obs_links[..., 0] = self.link_valid
        self.obs_links[..., 1] = self.link_is_backhaul[None] & self.link_valid
        self.obs_links[..., s["parent"]] = (self.link_parent[..., None] == np.arange(B)) \
            & self.link_valid[..., None]
        # the base station whose own MT a link's receiver is (backhaul), else -1
        self.rx_own_bs = np.where(self.link_is_backhaul, np.arange(L) + 1, -1)[None].repeat(N, 0)
        # no coupling from an IAB node to its own MT, from/to links that do not exist
        self._gain_zero = ((self.link_parent[:, :, None] == self.rx_own_bs[:, None, :])
                           | ~self.link_valid[:, :, None] | ~self.link_valid[:, None, :])
        # allowed[n, b, l]: link l exists and base station b transmits it
        self.allowed = (self.link_valid[:, None, :]
                        & (self.link_parent[:, None, :] == np.arange(B)[None, :, None])
                        & self.bs_valid[:, :, None])
        # the action mask's rows: idle, then the allowed links (idle only under an incumbent)
        self._allowed_ext = np.concatenate([np.ones((N, B, 1), dtype=bool), self.allowed],
                                           axis=2)
        self._idle_only = np.arange(1 + L) == 0
        # allowed by action value (0 idle: not a link)
        self._allowed_pad = self._allowed_ext.copy()
        self._allowed_pad[..., 0] = False

    # ------------------------------------------------------------------ reset
    def reset(self, seeds: np.ndarray | Sequence[int], env_mask: np.ndarray | None = None) -> None:
        """Start a new episode in the environments of ``env_mask`` (all by default), keyed by
        ``seeds`` (one per environment; only the masked ones are used)."""
        N, U, L, K = self.N, self.U, self.L, self.K
        m = np.ones(N, dtype=bool) if env_mask is None else np.asarray(env_mask, dtype=bool)
        seeds = np.asarray(seeds, dtype=np.int64).reshape(N)
        if not hasattr(self, "frame"):
            self._allocate()
        self.key[m] = rng.seed_key(seeds[m]) if m.any() else self.key[m]
        self.frame[m] = 0
        self.geo_index[m] = 0
        self.ue_xyz[m] = self.ue_home[m]
        self.heading[m] = self.heading_home[m]
        key = self.key[:, None, None]
        b_idx = np.arange(self.B)[None, :, None]
        r_idx = np.arange(L)[None, None, :]
        self.los_u[m] = rng.to_uniform(rng.hash_keys(key, rng.STREAM_LOS, 0, b_idx, r_idx))[m]
        self.blk_u[m] = rng.to_uniform(rng.hash_keys(key, rng.STREAM_BLOCK, 0, b_idx, r_idx))[m]
        self.shadow_x[m] = rng.to_normal(rng.hash_keys(key, rng.STREAM_SHADOW, 0, b_idx,
                                                       r_idx))[m]
        # traffic on/off and incumbents start from their stationary distributions
        u_on = rng.to_uniform(rng.hash_keys(self.key[:, None], rng.STREAM_ONOFF, 0,
                                            np.arange(U)[None]))
        on_frac = self._on_fraction()
        self.onoff[m] = (u_on < on_frac)[m]
        u_inc = rng.to_uniform(rng.hash_keys(self.key[:, None], rng.STREAM_INCUMBENT, 0,
                                             np.arange(K)[None]))
        self.incumbent[m] = (u_inc < self.inc_activity[:, None])[m]
        self.incumbent_seen[m] = external.sensed_incumbents(
            self.key, np.zeros(N, dtype=np.int64), self.incumbent, self.miss_prob)[m]
        self.ring[:, m] = 0
        self.qcur[:, m] = 0
        for name in ("acc_delivered_ue", "acc_dropped",
                     "acc_arrived", "acc_scheduled", "acc_sinr_viol", "acc_inc", "acc_hd",
                     "acc_invalid", "acc_reward"):
            getattr(self, name)[m] = 0
        self.last_sinr[m] = self._idle_sinr[m]
        self._update_geometry(m, moved_m=np.zeros((N, U)))
        self.cqi[m] = self._cqi(self._signal_fading(self.frame - 1),
                                out=np.zeros_like(self.cqi))[m]

    def _allocate_pair_tables(self) -> None:
        """The interference pairs' table over the links in use only (derived from
        ``_gain_ext`` and ``_fade_off``, see :meth:`_refresh_pair_tables`)."""
        Lc = self.n_links_used
        self._pair_gain = np.zeros((self.N, Lc + 1, Lc))

    def _allocate(self) -> None:
        N, B, L, U, K, D = self.N, self.B, self.L, self.U, self.K, self.D
        self.key = np.zeros(N, dtype=np.uint64)
        self.frame = np.zeros(N, dtype=np.int64)
        self.geo_index = np.zeros(N, dtype=np.int64)
        self.ue_xyz = np.zeros((N, U, 3))
        self.heading = np.zeros((N, U))
        self.los_u = np.zeros((N, B, L))
        self.blk_u = np.zeros((N, B, L))
        self.shadow_x = np.zeros((N, B, L))
        self.los = np.zeros((N, B, L), dtype=bool)
        self._los_sig = np.zeros((N, L), dtype=bool)
        self._fade_off = np.zeros((N, B, L), dtype=np.int64)
        self._fade_off_sig = np.zeros((N, L), dtype=np.int64)
        self._gain_ext = np.zeros((N, L + 1, L))
        self._allocate_pair_tables()
        self.sig_lin = np.zeros((N, L))
        self.coh = np.ones((N, L), dtype=np.int64)
        self.onoff = np.zeros((N, U), dtype=bool)
        self.incumbent = np.zeros((N, K), dtype=bool)
        self.incumbent_seen = np.zeros((N, K), dtype=bool)
        self.ext_rx_mw = np.zeros((N, L))
        # hop-major (1 + H, N, U): plane 0 is the arrivals, plane h + 1 the cursor of hop h;
        # contiguous planes keep the per-tick arithmetic fast
        self.qcur = np.zeros((1 + H_MAX, N, U), dtype=np.int64)
        # cumulative arrivals at the end of the last D ticks, of the UEs that can carry traffic
        self.ring = np.zeros((D, N, self.n_ue_max), dtype=np.int64)
        self.global_tick = 0
        # last SINR of every (link, channel) as the observation shows it: the sentinel where
        # nothing was scheduled, 0 on links that do not exist
        self._idle_sinr = np.where(self.link_valid[..., None], np.float32(LAST_SINR_SENTINEL),
                                   np.float32(0.0)).astype(np.float32).repeat(K, axis=2)
        self.last_sinr[...] = self._idle_sinr
        self.cqi[...] = 0.0
        self._sinr_written: np.ndarray | None = None  # see _frame_outcome
        self.acc_delivered_ue = np.zeros((N, U), dtype=np.int64)
        for name in ("acc_dropped", "acc_arrived", "acc_scheduled", "acc_sinr_viol", "acc_inc",
                     "acc_hd", "acc_invalid"):
            setattr(self, name, np.zeros(N, dtype=np.int64))
        self.acc_reward = np.zeros(N)

    # ------------------------------------------------------------------ masks and obs
    @property
    def cqi(self) -> np.ndarray:
        """(N, L, K) float32 CQI as the observation shows it (a view of ``obs_links``)."""
        return self.obs_links[..., self._obs_slices["cqi"]]

    @property
    def last_sinr(self) -> np.ndarray:
        """(N, L, K) float32 last SINR / SNR_SCALE_DB of every (link, channel) as the
        observation shows it: the sentinel where nothing was scheduled, 0 on links that do
        not exist (a view of ``obs_links``)."""
        return self.obs_links[..., self._obs_slices["sinr"]]

    def action_mask(self) -> np.ndarray:
        """(N, B*K, 1+L) bool: allowed values of every action entry (see bridge.layout)."""
        N, B, K, L = self.N, self.B, self.K, self.L
        mask = self._mask_free.copy()  # idle and the base station's links
        # a channel an incumbent was seen on allows idle only
        mask.transpose(0, 2, 1, 3)[self.incumbent_seen] = self._idle_only
        return mask.reshape(N, B * K, 1 + L)

    def observation(self) -> np.ndarray:
        """(N, obs_size) float32 observation (layout in bridge.layout), written in place."""
        N, L, lay = self.N, self.L, self.layout
        obs = np.empty((N, lay.size), dtype=np.float32)
        F = lay.link_features
        links = obs[:, : L * F].reshape(N, L, F)
        s = self._obs_slices
        # validity, link type, transmitter (fixed per batch, values 0 and 1 like the
        # incumbents seen), CQI and last SINR (clipped when they were written): one copy;
        # the other columns are clipped as they are written (rounding to float32 is monotone
        # and the bound exact: the same values)
        np.copyto(obs[:, : L * F], self.obs_links.reshape(N, L * F))
        bound = OBS_BOUND
        backlog, hol_ticks = self._link_queues()
        backlog /= BACKLOG_SCALE_BYTES
        np.clip(backlog, -bound, bound, out=links[..., s["backlog_mb"].start])
        hol_ticks /= self.D
        np.clip(hol_ticks, -bound, bound, out=links[..., s["hol_delay"].start])
        obs[:, L * F: L * F + self.K] = self.incumbent_seen
        time_frac = (self.frame / self.config.dynamics.episode_frames).astype(np.float32)
        np.clip(time_frac, -bound, bound, out=obs[:, -1])
        return obs

    # ------------------------------------------------------------------ step
    def effective_allocation(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Apply the rules to a validated (N, B*K) action: masked choices and half-duplex
        conflicts become idle. Returns the allocation that reaches the channel (link index
        per (N, B, K), -1 idle) and the counts of what was removed."""
        value = action.reshape(self.N, self.B, self.K)  # 0 idle, else link + 1
        ok = self._allowed_pad.take(self._row_allowed + value)
        ok &= ~self.incumbent_seen[:, None, :]
        invalid = value > 0
        invalid &= ~ok
        link = value * ok
        link -= 1
        conflict = half_duplex_conflicts(link)
        np.putmask(link, conflict, -1)
        return {"link": link, "invalid": invalid, "half_duplex": conflict}

    def step(self, action: np.ndarray, validated: bool = False
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Advance every environment one frame. ``action`` (N, B*K) ints (``validated``: already
        checked by :func:`bridge.layout.validate_action`, as the vector env does). Returns the
        reward (N,) and the frame's info arrays."""
        if not validated:
            action = validate_action(action, self.layout, batch=self.N)
        alloc = self.effective_allocation(action)
        link = alloc["link"]  # (N, B, K)
        active = link >= 0
        frame = self.frame.copy()
        self._advance_incumbents(frame)
        # the per-frame part of the fading hashes, shared by the signal and the interference
        self._frame_base = None if self.config.radio.deterministic else \
            self._fading_base(frame)
        sig_fade = self._signal_fading(frame, self._frame_base)  # (K, N, Lc)
        sinr_db = self._sinr(frame, link, active, sig_fade)
        capacity = self._capacity(sinr_db, link, active)
        delivered_ue, dropped, arrived = self._run_queues(frame, capacity)
        reward, info = self._frame_outcome(alloc, active, sinr_db, sig_fade, delivered_ue,
                                           dropped, arrived)
        self.frame += 1
        d = self.config.dynamics
        due = self.frame % d.geometry_update_frames == 0
        if due.any():
            moved = self._move_ues(due)
            self.geo_index += due
            self._update_geometry(due, moved)
        return reward, info

    def _advance_incumbents(self, frame: np.ndarray) -> None:
        """Incumbents move to this frame's state (Markov on/off per channel)."""
        d = self.config.dynamics
        p_off = min(1.0, d.frame_s / d.incumbent_on_mean_s)
        act = self.inc_activity[:, None]
        p_on = np.minimum(1.0, p_off * act / np.maximum(1 - act, 1e-9))
        u = rng.to_uniform(self._words(rng.STREAM_INCUMBENT, frame + 1, self._k_key_part))
        self.incumbent = np.where(self.incumbent, u >= p_off, u < p_on)

    def _frame_outcome(self, alloc: dict[str, np.ndarray], active: np.ndarray,
                       sinr_db: np.ndarray, sig_fade: np.ndarray, delivered_ue: np.ndarray,
                       dropped: np.ndarray, arrived: np.ndarray
                       ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """What the frame leaves behind: the observation's last SINR and CQI, the incumbents
        seen, the frame's counters and reward (accumulated for the episode metrics)."""
        r, d, w = self.config.radio, self.config.dynamics, self.config.reward
        collision = active & self.incumbent[:, None, :]
        # last SINR where scheduled, the idle value elsewhere; a link is scheduled by its
        # parent only, so no write collisions. Only the entries the last frame wrote are set
        # back to idle (scheduled links exist, so their idle value is the sentinel), unless
        # the state was copied or allocated since (then all of them)
        obs_flat = self.obs_links.reshape(-1)  # a view: obs_links is contiguous
        if self._sinr_written is None:
            np.copyto(self.last_sinr, self._idle_sinr)
        else:
            obs_flat[self._sinr_written] = np.float32(LAST_SINR_SENTINEL)
        flat = alloc["link"] * self.layout.link_features
        flat += self._row_LF_sinr  # flat (n, link, SINR column k) of obs_links
        scheduled = np.flatnonzero(active)
        value = sinr_db.take(scheduled)
        value /= SNR_SCALE_DB
        np.clip(value, -OBS_BOUND, OBS_BOUND, out=value)
        written = flat.take(scheduled)
        obs_flat[written] = value
        self._sinr_written = written
        self._cqi(sig_fade)  # in place
        self.incumbent_seen = external.sensed_incumbents(self.key, self.frame + 1,
                                                         self.incumbent, self.miss_prob)

        violation = active & (sinr_db < r.sinr_threshold_db)
        sinr_viol_bs = _count_last(violation)
        scheduled_bs = _count_last(active)
        n_sched = scheduled_bs.sum(axis=1)
        sinr_viol = sinr_viol_bs.sum(axis=1)
        n_coll = collision.sum(axis=(1, 2))
        n_hd = alloc["half_duplex"].sum(axis=(1, 2))
        n_invalid = alloc["invalid"].sum(axis=(1, 2))
        offered_bps = (self.rate_bps * self.n_ue) * self._on_fraction()
        delivered = delivered_ue.sum(axis=1)
        tp_norm = delivered * 8 / d.frame_s / np.maximum(offered_bps, 1.0)
        fair = jain_index(delivered_ue, self.ue_valid)
        sched_f = np.maximum(n_sched, 1)
        reward = (w.w_throughput * tp_norm + w.w_fairness * fair
                  - w.w_sinr_violation * sinr_viol / sched_f
                  - w.w_latency_violation * dropped / np.maximum(delivered + dropped, 1)
                  - w.w_incumbent_collision * n_coll / sched_f)
        delivered_bs = np.bincount(self._ue_bs_flat, weights=delivered_ue.ravel(),
                                   minlength=self.N * self.B).astype(np.int64).reshape(
                                       self.N, self.B)
        reward_bs = self._reward_split(reward, delivered_bs, sinr_viol_bs, offered_bps,
                                       sched_f)
        for name, value in (("acc_delivered_ue", delivered_ue), ("acc_dropped", dropped),
                            ("acc_arrived", arrived), ("acc_scheduled", n_sched),
                            ("acc_sinr_viol", sinr_viol), ("acc_inc", n_coll),
                            ("acc_hd", n_hd), ("acc_invalid", n_invalid),
                            ("acc_reward", reward)):
            getattr(self, name).__iadd__(value)
        info = {
            "sinr_db": sinr_db,
            "allocation": alloc["link"],
            "delivered_bytes": delivered,
            "dropped_bytes": dropped,
            "sinr_violations": sinr_viol,
            "half_duplex_conflicts": n_hd,
            "invalid_actions": n_invalid,
            "incumbent_collisions": n_coll,
            # who did what (credit assignment per base station): bytes each base station's
            # access links delivered, its SINR violations and its scheduled choices
            "delivered_bytes_bs": delivered_bs,
            "sinr_violations_bs": sinr_viol_bs,
            "scheduled_bs": scheduled_bs,
            "reward_bs": reward_bs,
        }
        return reward, info

    def _reward_split(self, reward: np.ndarray, delivered_bs: np.ndarray,
                      sinr_viol_bs: np.ndarray, offered_bps: np.ndarray, sched_f: np.ndarray
                      ) -> np.ndarray:
        """(N, B) the reward split over base stations (credit assignment): each one's own
        throughput and SINR-violation terms plus an equal share of the rest (fairness,
        latency, collisions) over the deployment's base stations; 0 on padding ones."""
        w, d = self.config.reward, self.config.dynamics
        own = (w.w_throughput * delivered_bs * 8 / d.frame_s
               / np.maximum(offered_bps, 1.0)[:, None]
               - w.w_sinr_violation * sinr_viol_bs / sched_f[:, None])
        own = np.where(self.bs_valid, own, 0.0)
        n_bs = self.bs_valid.sum(axis=1)
        share = (reward - own.sum(axis=1)) / n_bs
        return np.where(self.bs_valid, own + share[:, None], 0.0)

    # ------------------------------------------------------------------ bookkeeping
    def episode_metrics(self) -> dict[str, np.ndarray]:
        acc = {
            "delivered_ue": self.acc_delivered_ue, "dropped": self.acc_dropped,
            "arrived": self.acc_arrived, "scheduled": self.acc_scheduled,
            "sinr_violations": self.acc_sinr_viol, "incumbent_collisions": self.acc_inc,
            "half_duplex": self.acc_hd, "invalid": self.acc_invalid,
        }
        out = episode_metrics(acc, self.frame, self.config.dynamics.frame_s, self.ue_valid)
        out["episode_return"] = self.acc_reward.copy()
        return out

    def copy_envs_from(self, other: BatchedIABCore, index: np.ndarray) -> None:
        """Copy the full state of environments ``index`` from ``other`` (same deployments)."""
        index = np.asarray(index, dtype=np.int64)
        self.global_tick = other.global_tick
        for name in self._STATE:
            value = getattr(self, name, None)
            if isinstance(value, np.ndarray) and value.shape[:1] == (self.N,):
                value[index] = getattr(other, name)[index]
        # ring columns past an environment's UEs are zero in both (their widths may differ)
        width = min(self.ring.shape[2], other.ring.shape[2])
        self.ring[:, index] = 0
        self.ring[:, index, :width] = other.ring[:, index, :width]
        self.qcur[:, index] = other.qcur[:, index]
        self._refresh_pair_tables(index)
        self._sinr_written = None

    def take(self, index: np.ndarray | Sequence[int]) -> BatchedIABCore:
        """A new core whose environments are copies of ``index`` (state included): the
        exhaustive search replays one frame of one environment for many candidate actions."""
        index = np.asarray(index, dtype=np.int64)
        new = object.__new__(BatchedIABCore)
        new.__dict__.update(self.__dict__)
        new.N = len(index)
        new.instances = [self.instances[i] for i in index]
        for name in self._STATE:
            value = getattr(self, name, None)
            if isinstance(value, np.ndarray) and value.shape[:1] == (self.N,):
                setattr(new, name, value[index].copy())
        new.ring = self.ring[:, index].copy()
        new.qcur = self.qcur[:, index].copy()
        new._index_hops(self.H)
        new.ring = np.ascontiguousarray(new.ring[:, :, : new.n_ue_max])
        new._index_rows()
        new._workspace = {}
        new._sinr_written = None
        if hasattr(new, "_pair_gain"):
            new._allocate_pair_tables()
            new._refresh_pair_tables(np.arange(new.N))
        return new
