"""The batched numpy simulator: N IAB networks stepped together, one frame per step.

Every array has the environment axis first; the step has no Python loop over environments or
links (the only loop is over the few ticks inside a frame). Randomness is counter-based
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
from bridge.model.channel import (
    coherence_frames,
    fading_quantiles,
    noise_dbm,
    panel_coordinates,
    spectral_efficiency,
    umi_los_probability,
    umi_pathloss_db,
    upa_gain_lin,
    upa_gain_pq,
)
from bridge.tasks import TASK_DIMENSIONS

H_MAX = 3  # donor -> IAB -> IAB -> UE at most

# fields that may differ between the environments of one batch (the task dimensions)
_TASK_PATHS = {path for path, _ in TASK_DIMENSIONS.values()}


def _shared_part(config: ScenarioConfig) -> dict:
    tree = config.to_dict()
    for path in _TASK_PATHS:
        section, key = path.split(".")
        tree[section].pop(key)
    return tree


class BatchedIABCore:
    """N IAB networks in lock-step. Not a Gymnasium object: the env classes wrap it."""

    # per-environment arrays (leading axis N), cloned by :meth:`take`
    _STATE = (
        "n_ue", "speed", "rate_bps", "blockage", "inc_activity", "bs_valid", "bs_xyz",
        "link_valid", "link_parent", "rx_own_bs", "planned_los", "ue_valid", "hop_link",
        "hop_valid",
        "allowed", "ue_home", "heading_home", "key", "obs_static",
        "frame", "ue_xyz", "heading", "los_u", "blk_u", "shadow_x", "los", "gain_lin",
        "sig_lin", "coh", "onoff", "incumbent", "incumbent_seen",
        "last_sinr", "cqi", "acc_delivered_ue", "acc_dropped",
        "acc_arrived", "acc_scheduled", "acc_sinr_viol", "acc_inc", "acc_hd", "acc_invalid",
        "acc_reward", "geo_index", "_los_sig", "_fade_static_sig",
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
        self._fade_bits = int(np.log2(len(self.fade_los)))
        M = rng.KEY_MULT
        with np.errstate(over="ignore"):
            self._fade_static_bk = (np.arange(self.B, dtype=np.uint64)[:, None] * M[2]
                                    + np.arange(self.K, dtype=np.uint64)[None, :] * M[4])
        self.bytes_per_tick_factor = self.channel_hz * d.tick_s * (1 - r.overhead) / 8
        self._load_instances(instances)
        self.instances = list(instances)

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
        with np.errstate(over="ignore"):
            self._fade_static_sig = (self.link_parent.astype(np.uint64)[..., None]
                                     * rng.KEY_MULT[2]
                                     + np.arange(self.K, dtype=np.uint64) * rng.KEY_MULT[4])
        self._index_hops()
        # the columns of the observation that never change for a deployment
        s = self.layout.slices()
        self.obs_static = np.zeros((N, L, self.layout.link_features), dtype=np.float32)
        self.obs_static[..., 0] = self.link_valid
        self.obs_static[..., 1] = self.link_is_backhaul[None] & self.link_valid
        self.obs_static[..., s["parent"]] = (self.link_parent[..., None] == np.arange(B)) \
            & self.link_valid[..., None]
        # the base station whose own MT a link's receiver is (backhaul), else -1
        self.rx_own_bs = np.where(self.link_is_backhaul, np.arange(L) + 1, -1)[None].repeat(N, 0)
        # allowed[n, b, l]: link l exists and base station b transmits it
        self.allowed = (self.link_valid[:, None, :]
                        & (self.link_parent[:, None, :] == np.arange(B)[None, :, None])
                        & self.bs_valid[:, :, None])

    def _index_hops(self, H: int | None = None) -> None:
        """Hop planes: every UE's path is aligned at the end over the batch's H planes (the
        last plane is the access hop, earlier ones backhaul hops or padding). A padding plane
        is a pass-through whose cursor always equals the arrivals."""
        N, L, U = self.N, self.L, self.U
        self.H = H if H is not None else max(1, int(self.hop_valid.sum(axis=2).max()))
        H = self.H
        length = self.hop_valid.sum(axis=2)  # (N, U) hops of each UE's path
        plane_link = np.full((H, N, U), L, dtype=np.int64)
        for h in range(H):
            src = h - (H - length)  # index into the front-aligned path
            real = src >= 0
            plane_link[h][real] = np.take_along_axis(
                self.hop_link, np.clip(src, 0, H_MAX - 1)[..., None], axis=2)[..., 0][real]
        self.plane_link = plane_link
        self.plane_pad = plane_link == L  # (H, N, U) pass-through planes (and padding UEs)
        self.plane_pad[H - 1] = False
        self.hop_flat = (np.arange(N)[None, :, None] * (L + 1) + plane_link).ravel()
        self.access_flat = (np.arange(N)[:, None] * (L + 1) + plane_link[H - 1]).ravel()
        self.backhaul_flat = (np.arange(N)[None, :, None] * (L + 1)
                              + plane_link[: H - 1]).ravel()
        self._hop_perm = np.argsort(self.hop_flat, kind="stable")
        ordered = self.hop_flat[self._hop_perm]
        self._seg_starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self._seg_links = ordered[self._seg_starts]

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
        self.last_sinr[m] = LAST_SINR_SENTINEL
        self._update_geometry(m, moved_m=np.zeros((N, U)))
        self.cqi[m] = self._cqi(self._signal_fading(self.frame - 1))[m]

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
        self.gain_lin = np.zeros((N, L, L))
        self.sig_lin = np.zeros((N, L))
        self.coh = np.ones((N, L), dtype=np.int64)
        self.onoff = np.zeros((N, U), dtype=bool)
        self.incumbent = np.zeros((N, K), dtype=bool)
        self.incumbent_seen = np.zeros((N, K), dtype=bool)
        self.ext_rx_mw = np.zeros((N, L))
        # hop-major (1 + H, N, U): plane 0 is the arrivals, plane h + 1 the cursor of hop h;
        # contiguous planes keep the per-tick arithmetic fast
        self.qcur = np.zeros((1 + H_MAX, N, U), dtype=np.int64)
        self.ring = np.zeros((D, N, U), dtype=np.int64)
        self.global_tick = 0
        self.last_sinr = np.full((N, L, K), LAST_SINR_SENTINEL, dtype=np.float32)
        self.cqi = np.zeros((N, L, K), dtype=np.float32)
        self.acc_delivered_ue = np.zeros((N, U), dtype=np.int64)
        for name in ("acc_dropped", "acc_arrived", "acc_scheduled", "acc_sinr_viol", "acc_inc",
                     "acc_hd", "acc_invalid"):
            setattr(self, name, np.zeros(N, dtype=np.int64))
        self.acc_reward = np.zeros(N)

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

    def _on_fraction(self) -> float:
        t = self.config.traffic
        return 1.0 if t.off_mean_s == 0 else t.on_mean_s / (t.on_mean_s + t.off_mean_s)

    # ------------------------------------------------------------------ geometry
    def _update_geometry(self, m: np.ndarray, moved_m: np.ndarray) -> None:
        """Recompute path loss, LOS, shadowing and beam gains of the masked environments.
        ``moved_m`` (N, U) is how far each UE walked since the last update."""
        if not m.any():
            return
        cfg, r = self.config, self.config.radio
        I = self.I
        bs = self.bs_xyz[m]  # (n, B, 3)
        rx = np.concatenate([self.bs_xyz[m][:, 1: 1 + I], self.ue_xyz[m]], axis=1)  # (n, L, 3)
        vec = rx[:, None, :, :] - bs[:, :, None, :]  # (n, B, L, 3)
        d2d = np.hypot(vec[..., 0], vec[..., 1])
        d3d = np.maximum(np.sqrt(d2d**2 + vec[..., 2] ** 2), 1e-6)
        unit = vec / d3d[..., None]
        moved = np.concatenate([np.zeros((self.N, I)), moved_m], axis=1)[m][:, None, :]
        key = self.key[m][:, None, None]
        geo = self.geo_index[m][:, None, None]
        b_idx = np.arange(self.B)[None, :, None]
        r_idx = np.arange(self.L)[None, None, :]
        if r.deterministic:
            los = np.ones_like(d2d, dtype=bool)
            shadow_db = np.zeros_like(d2d)
        else:
            # spatially consistent LOS and shadowing: latents re-drawn / AR(1) in distance
            change = rng.to_uniform(rng.hash_keys(key, rng.STREAM_LOS, geo, b_idx, r_idx + 7919))
            redraw = change < 1 - np.exp(-moved / r.los_corr_m)
            fresh = rng.to_uniform(rng.hash_keys(key, rng.STREAM_LOS, geo, b_idx, r_idx))
            self.los_u[m] = np.where(redraw, fresh, self.los_u[m])
            fresh_b = rng.to_uniform(rng.hash_keys(key, rng.STREAM_BLOCK, geo, b_idx, r_idx))
            self.blk_u[m] = np.where(redraw, fresh_b, self.blk_u[m])
            los = (self.los_u[m] < umi_los_probability(d2d)) & (
                self.blk_u[m] >= self.blockage[m][:, None, None])
            if r.backhaul_los:
                los |= self.planned_los[m]
            corr = np.where(los, r.shadowing_corr_los_m, r.shadowing_corr_nlos_m)
            rho = np.exp(-moved / corr)
            z = rng.to_normal(rng.hash_keys(key, rng.STREAM_SHADOW, geo, b_idx, r_idx))
            self.shadow_x[m] = rho * self.shadow_x[m] + np.sqrt(1 - rho**2) * z
            shadow_db = self.shadow_x[m] * np.where(los, r.shadowing_los_db, r.shadowing_nlos_db)
        self.los[m] = los
        n_sub = np.arange(los.shape[0])[:, None]
        self._los_sig[m] = los[n_sub, self.link_parent[m], np.arange(self.L)[None]]
        pl = umi_pathloss_db(d2d, cfg.topology.bs_height_m, self.rx_height[None, None, :],
                             r.carrier_ghz, los)
        parent = self.link_parent[m]  # (n, L)
        n_idx = np.arange(parent.shape[0])[:, None]
        # transmit beam of link l' (from its parent toward its receiver), seen at receiver r;
        # float32 for the big (n, L', L) part: beam gains need no more precision
        comp = [np.ascontiguousarray(unit[..., c], dtype=np.float32) for c in range(3)]
        own_rx = np.arange(self.L)[None]
        bore_tx = tuple(c[n_idx, parent, own_rx][:, :, None] for c in comp)  # (n, L', 1)
        dir_tx = tuple(c[n_idx, parent] for c in comp)  # (n, L', L) parent(l') -> receiver r
        tx_gain = upa_gain_pq(*panel_coordinates(dir_tx, bore_tx), *r.bs_array)
        # receive beam of r (toward its own parent), seen from every base station b
        bore_rx = -unit[n_idx, parent, np.arange(self.L)[None]]  # (n, L, 3)
        rows = np.where(self.link_is_backhaul, r.bs_array[0], r.ue_array[0])
        cols = np.where(self.link_is_backhaul, r.bs_array[1], r.ue_array[1])
        rx_gain = np.empty_like(d2d)  # (n, B, L)
        for dims in {(int(a), int(b)) for a, b in zip(rows, cols)}:
            sel = (rows == dims[0]) & (cols == dims[1])
            rx_gain[:, :, sel] = upa_gain_lin(-unit[:, :, sel], bore_rx[:, None, sel], *dims)
        # everything but the transmit beam, linear: power x path gain x receive beam gain
        # an NLOS path arrives spread over clusters, so a beam aimed at the peer collects
        # only part of the array gain (radio.nlos_beam_loss_db)
        loss_db = pl + shadow_db + np.where(los, 0.0, r.nlos_beam_loss_db)
        path = (10 ** ((self.p_channel_dbm - loss_db) / 10)) * rx_gain  # (n, B, L)
        gain = path[n_idx, parent] * tx_gain  # (n, L', L)
        # no coupling from an IAB node to its own MT, from/to links that do not exist
        own = parent[:, :, None] == self.rx_own_bs[m][:, None, :]
        valid = self.link_valid[m]
        gain = np.where(own | ~valid[:, :, None] | ~valid[:, None, :], 0.0, gain)
        self.gain_lin[m] = gain
        self.sig_lin[m] = np.diagonal(gain, axis1=1, axis2=2)
        if self.ext_channels.any():
            self.ext_rx_mw[m] = np.where(valid, external.received_power_mw(
                self.ext_xyz[m], self.ext_eirp_dbm[m], rx, bs[n_idx, parent], rows, cols,
                r.carrier_ghz), 0.0)
        rel_speed = np.concatenate([np.zeros((self.N, I)),
                                    np.repeat(self.speed[:, None], self.U, 1)], axis=1)[m]
        self.coh[m] = coherence_frames(rel_speed + r.scatterer_speed_mps, r.carrier_ghz,
                                       self.config.dynamics.frame_s)

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
    # The hash is a linear combination of the keys (bridge.model.rng.hash_keys), so the
    # parts that do not change between frames are precomputed.
    def _fading_base(self, frame: np.ndarray) -> np.ndarray:
        """(N, L) uint64: the key, stream, block and receiver part of every fading hash."""
        M = rng.KEY_MULT
        with np.errstate(over="ignore"):
            block = (frame[:, None] // self.coh).astype(np.uint64)
            return (self.key[:, None] + np.uint64(rng.STREAM_FADING) * M[0] + block * M[1]
                    + np.arange(self.L, dtype=np.uint64)[None] * M[3])

    def _fading_lookup(self, words: np.ndarray, los: np.ndarray) -> np.ndarray:
        rng.mix64(words)
        index = (words >> np.uint64(64 - self._fade_bits)).astype(np.intp)
        index += np.where(los, 0, len(self.fade_los))
        return self._fade_table[index]

    def _signal_fading(self, frame: np.ndarray) -> np.ndarray:
        """(N, L, K) fading on every link's own path (parent -> receiver)."""
        if self.config.radio.deterministic:
            return np.ones((self.N, self.L, self.K))
        with np.errstate(over="ignore"):
            words = self._fading_base(frame)[..., None] + self._fade_static_sig
        return self._fading_lookup(words, self._los_sig[..., None])

    def _interference_fading(self, frame: np.ndarray, victim: np.ndarray) -> np.ndarray:
        """(N, B, B', K) fading from every base station b' to the receiver scheduled by b on
        each channel (``victim`` (N, B, K) link indices)."""
        if self.config.radio.deterministic:
            return np.ones((self.N, self.B, self.B, self.K))
        n_idx = np.arange(self.N)[:, None, None]
        base = np.take(self._fading_base(frame), n_idx * self.L + victim)  # (N, B, K)
        with np.errstate(over="ignore"):
            words = base[:, :, None, :] + self._fade_static_bk[None, None]
        # los[n, b', victim] through one flat take
        flat = ((n_idx[..., None] * self.B + np.arange(self.B)[None, None, :, None]) * self.L
                + victim[:, :, None, :])
        return self._fading_lookup(words, np.take(self.los, flat))

    def _cqi(self, sig_fade: np.ndarray) -> np.ndarray:
        snr = self.sig_lin[..., None] * sig_fade / self.noise_mw[None, :, None]
        snr_db = 10 * np.log10(np.maximum(snr, 1e-30))
        return np.where(self.link_valid[..., None], snr_db / SNR_SCALE_DB, 0.0).astype(np.float32)

    # ------------------------------------------------------------------ masks and obs
    def action_mask(self) -> np.ndarray:
        """(N, B*K, 1+L) bool: allowed values of every action entry (see bridge.layout)."""
        N, B, K, L = self.N, self.B, self.K, self.L
        mask = np.empty((N, B, K, 1 + L), dtype=bool)
        mask[..., 0] = True
        mask[..., 1:] = self.allowed[:, :, None, :] & ~self.incumbent_seen[:, None, :, None]
        return mask.reshape(N, B * K, 1 + L)

    def observation(self) -> np.ndarray:
        """(N, obs_size) float32 observation (layout in bridge.layout)."""
        N = self.N
        lay = self.layout
        links = self.obs_static.copy()  # validity, link type, transmitter: fixed per batch
        s = lay.slices()
        links[..., s["cqi"]] = self.cqi
        links[..., s["sinr"]] = np.where(self.link_valid[..., None], self.last_sinr, 0.0)
        backlog, hol_ticks = self._link_queues()
        links[..., s["backlog_mb"].start] = backlog / BACKLOG_SCALE_BYTES
        links[..., s["hol_delay"].start] = hol_ticks / self.D
        glob = np.concatenate([self.incumbent_seen.astype(np.float32),
                               (self.frame / self.config.dynamics.episode_frames)[:, None]
                               .astype(np.float32)], axis=1)
        obs = np.concatenate([links.reshape(N, -1), glob], axis=1)
        return np.clip(obs, -OBS_BOUND, OBS_BOUND, out=obs)

    def _link_queues(self) -> tuple[np.ndarray, np.ndarray]:
        """Per link: bytes waiting at its transmitter, and the head-of-line age in ticks."""
        q = self.qcur[: self.H + 1]
        backlog = q[:-1] - q[1:]  # (H, N, U); 0 on pass-through planes
        # the oldest byte at hop h is byte number cursor[h]; the ring holds the cumulative
        # arrivals at the end of the last D ticks, so its age is D minus the ticks whose
        # arrivals it had already passed
        passed = np.zeros(backlog.shape, dtype=np.int16)
        for d in range(self.D):
            passed += self.ring[d][None] <= q[1:]
        age = np.where(backlog > 0, self.D - passed, 0)
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

    # ------------------------------------------------------------------ step
    def effective_allocation(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Apply the rules to a validated (N, B*K) action: masked choices and half-duplex
        conflicts become idle. Returns the allocation that reaches the channel (link index
        per (N, B, K), -1 idle) and the counts of what was removed."""
        N, B, K = self.N, self.B, self.K
        a = action.reshape(N, B, K)
        link = a - 1
        n_idx = np.arange(N)[:, None, None]
        safe = np.clip(link, 0, self.L - 1)
        ok = (link >= 0) & self.allowed[n_idx, np.arange(B)[None, :, None], safe] \
            & ~self.incumbent_seen[:, None, :]
        invalid = (link >= 0) & ~ok
        link = np.where(ok, link, -1)
        conflict = half_duplex_conflicts(link)
        link = np.where(conflict, -1, link)
        return {"link": link, "invalid": invalid, "half_duplex": conflict}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Advance every environment one frame. ``action`` (N, B*K) ints. Returns the reward
        (N,) and the frame's info arrays."""
        N, B, K, L = self.N, self.B, self.K, self.L
        action = validate_action(action, self.layout, batch=N)
        alloc = self.effective_allocation(action)
        link = alloc["link"]  # (N, B, K)
        active = link >= 0
        safe = np.where(active, link, 0)
        n_idx = np.arange(N)[:, None, None]
        frame = self.frame.copy()

        # incumbents move to this frame's state (Markov on/off per channel)
        d = self.config.dynamics
        p_off = min(1.0, d.frame_s / d.incumbent_on_mean_s)
        act = self.inc_activity[:, None]
        p_on = np.minimum(1.0, p_off * act / np.maximum(1 - act, 1e-9))
        u = rng.to_uniform(rng.hash_keys(self.key[:, None], rng.STREAM_INCUMBENT, frame[:, None]
                                         + 1, np.arange(K)[None]))
        self.incumbent = np.where(self.incumbent, u >= p_off, u < p_on)
        collision = active & self.incumbent[:, None, :]

        # SINR of every scheduled (b, k): signal over noise + co-channel interference
        sig_fade = self._signal_fading(frame)  # (N, L, K)
        k_idx = np.arange(K)[None, None, :]
        signal = (np.take(self.sig_lin, n_idx * L + safe)
                  * np.take(sig_fade, (n_idx * L + safe) * K + k_idx))  # (N, B, K)
        # interference at the receiver of (b, k) from every other active (b', k)
        victim = safe[:, :, None, :]  # (N, B, 1, K)
        src = safe[:, None, :, :]  # (N, 1, B', K)
        # gain_lin[n, src, victim] through one flat take: (N, B, B', K)
        coupling = np.take(self.gain_lin, (np.arange(N)[:, None, None, None] * L + src) * L
                           + victim)
        fade_i = self._interference_fading(frame, safe)
        other = active[:, None, :, :] & ~np.eye(B, dtype=bool)[None, :, :, None]
        interference = (coupling * fade_i * other).sum(axis=2)
        interference = interference + self.incumbent[:, None, :] * self.inc_mw
        if self.ext_channels.any():
            interference = interference + external.external_interference_mw(
                self.ext_rx_mw, safe, self.ext_channels,
                external.interferer_on(self.key, frame, self.ext_activity))
        noise = self.noise_mw[safe]
        sinr_db = 10 * np.log10(np.maximum(signal, 1e-30) / (noise + interference))
        sinr_db = np.where(active, sinr_db, -np.inf)
        r = self.config.radio
        se = spectral_efficiency(np.where(active, sinr_db, -100.0), r.se_efficiency,
                                 r.se_cap_bps_hz, r.se_min_sinr_db)
        bytes_tick = np.floor(self.bytes_per_tick_factor * se).astype(np.int64) * active
        cap_idx = (np.arange(N)[:, None, None] * (L + 1) + np.where(active, link, L)).ravel()
        capacity = np.bincount(cap_idx, weights=bytes_tick.ravel(), minlength=N * (L + 1))
        capacity = capacity.astype(np.int64)

        delivered_ue, dropped, arrived = self._run_queues(frame, capacity)

        # observation side effects: last SINR where scheduled, CQI from this frame's fading
        self.last_sinr.fill(LAST_SINR_SENTINEL)
        vals = np.where(active, sinr_db, LAST_SINR_SENTINEL * SNR_SCALE_DB) / SNR_SCALE_DB
        flat = (np.arange(N)[:, None, None] * L + safe) * K + k_idx
        # a link scheduled by its parent only (one transmitter), so no write collisions
        self.last_sinr.reshape(-1)[flat[active]] = vals[active]
        self.cqi = self._cqi(sig_fade)
        self.incumbent_seen = external.sensed_incumbents(self.key, frame + 1, self.incumbent,
                                                         self.miss_prob)

        # frame statistics and reward
        n_sched = active.sum(axis=(1, 2))
        sinr_viol = (active & (sinr_db < r.sinr_threshold_db)).sum(axis=(1, 2))
        n_coll = collision.sum(axis=(1, 2))
        n_hd = alloc["half_duplex"].sum(axis=(1, 2))
        n_invalid = alloc["invalid"].sum(axis=(1, 2))
        offered_bps = (self.rate_bps * self.n_ue) * self._on_fraction()
        delivered = delivered_ue.sum(axis=1)
        tp_norm = delivered * 8 / d.frame_s / np.maximum(offered_bps, 1.0)
        fair = jain_index(delivered_ue, self.ue_valid)
        sched_f = np.maximum(n_sched, 1)
        w = self.config.reward
        reward = (w.w_throughput * tp_norm + w.w_fairness * fair
                  - w.w_sinr_violation * sinr_viol / sched_f
                  - w.w_latency_violation * dropped / np.maximum(delivered + dropped, 1)
                  - w.w_incumbent_collision * n_coll / sched_f)

        self.acc_delivered_ue += delivered_ue
        self.acc_dropped += dropped
        self.acc_arrived += arrived
        self.acc_scheduled += n_sched
        self.acc_sinr_viol += sinr_viol
        self.acc_inc += n_coll
        self.acc_hd += n_hd
        self.acc_invalid += n_invalid
        self.acc_reward += reward

        self.frame += 1
        due = self.frame % d.geometry_update_frames == 0
        if due.any():
            moved = self._move_ues(due)
            self.geo_index += due
            self._update_geometry(due, moved)
        info = {
            "sinr_db": sinr_db,
            "allocation": link,
            "delivered_bytes": delivered,
            "dropped_bytes": dropped,
            "sinr_violations": sinr_viol,
            "half_duplex_conflicts": n_hd,
            "invalid_actions": n_invalid,
            "incumbent_collisions": n_coll,
            # who did what (credit assignment per base station): bytes each base station's
            # access links delivered, its SINR violations and its scheduled choices
            "delivered_bytes_bs": np.einsum(
                "nu,nub->nb", delivered_ue,
                (self.link_parent[:, self.I:, None] == np.arange(B)).astype(np.int64)),
            "sinr_violations_bs": (active & (sinr_db < r.sinr_threshold_db)).sum(axis=2),
            "scheduled_bs": active.sum(axis=2),
        }
        return reward, info

    def _run_queues(self, frame: np.ndarray, capacity: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Serve the frame's ticks. ``capacity`` (N*(L+1),) bytes per tick per link (the last
        column of each row is the "no link" sink). Returns delivered bytes per UE, dropped and
        arrived bytes per environment."""
        N, U, T, L = self.N, self.U, self.T, self.L
        cfg = self.config
        # traffic: on/off Markov per UE, Poisson packet count per frame (normal approximation,
        # rounded, never negative), spread evenly over the frame's ticks
        t = cfg.traffic
        key = self.key[:, None]
        u_idx = np.arange(U)[None]
        if t.off_mean_s > 0:
            u = rng.to_uniform(rng.hash_keys(key, rng.STREAM_ONOFF, frame[:, None] + 1, u_idx))
            p_off = min(1.0, cfg.dynamics.frame_s / t.on_mean_s)
            p_on = min(1.0, cfg.dynamics.frame_s / t.off_mean_s)
            self.onoff = np.where(self.onoff, u >= p_off, u < p_on)
        lam = self.rate_bps[:, None] * cfg.dynamics.frame_s / (8 * t.packet_bytes)
        lam = lam * (self.onoff & self.ue_valid)
        z = rng.to_normal(rng.hash_keys(key, rng.STREAM_ARRIVALS, frame[:, None], u_idx))
        packets = np.maximum(0, np.rint(lam + np.sqrt(lam) * z)).astype(np.int64)
        j = np.arange(T + 1)
        cum = (packets[..., None] * j) // T  # (N, U, T+1)
        per_tick = (cum[..., 1:] - cum[..., :-1]) * t.packet_bytes

        H = self.H  # hop planes in use in this batch (2 without chains)
        per_tick = np.ascontiguousarray(per_tick.transpose(2, 0, 1))  # (T, N, U)
        arrived = per_tick.sum(axis=0).sum(axis=1)
        cap_access = capacity[self.access_flat].reshape(N, U)
        cap_backhaul = capacity[self.backhaul_flat].reshape(H - 1, N, U).astype(np.float64)
        q = self.qcur[: H + 1]
        arrived_now, cursor = q[0], q[1:]
        access, access_up = q[H], q[H - 1]
        backhaul, backhaul_up = q[1:H], q[: H - 1]
        pad = self.plane_pad[: H - 1]
        start = access.sum(axis=1)
        delivered = np.zeros((N, U), dtype=np.int64)
        minlength = N * (L + 1)
        for j in range(T):
            # the ring is indexed by a batch-wide tick counter: slot s holds the cumulative
            # arrivals at the end of the tick D ticks ago, i.e. the expiry cursor
            slot = (self.global_tick + j) % self.D
            arrived_now += per_tick[j]
            if H > 1:
                np.copyto(backhaul, arrived_now, where=pad)  # pass-through planes
            # bytes older than the budget leave every hop (dropped)
            np.maximum(cursor, self.ring[slot], out=cursor)
            # access hop: one UE per link, served up to the link's capacity
            serve_access = np.minimum(access_up - access, cap_access)
            if H > 1:
                # backhaul hops: a link's capacity is split in proportion to the backlogs of
                # the UEs it carries (exactly 1 when it covers them all)
                backlog = backhaul_up - backhaul
                total = np.bincount(self.backhaul_flat, weights=backlog.ravel(),
                                    minlength=minlength)[self.backhaul_flat]
                share = cap_backhaul / np.maximum(total.reshape(H - 1, N, U), 1.0)
                np.minimum(share, 1.0, out=share)
                backhaul += (backlog * share).astype(np.int64)
            access += serve_access
            delivered += serve_access
            self.ring[slot] = arrived_now
        self.global_tick += T
        dropped = access.sum(axis=1) - start - delivered.sum(axis=1)
        return delivered, dropped, arrived

    # ------------------------------------------------------------------ bookkeeping
    def bytes_in_queues(self) -> np.ndarray:
        """(N,) bytes still queued anywhere in each network."""
        return np.where(self.ue_valid, self.arrived - self.delivered_or_dropped, 0).sum(axis=1)

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
        self.ring[:, index] = other.ring[:, index]
        self.qcur[:, index] = other.qcur[:, index]

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
        return new
