"""Hidden per-deployment conditions: an external co-channel interferer and imperfect sensing.

Both are persistent properties of a deployment that no single observation shows and a few
episodes of measured SINR, delivered bytes and collisions reveal (docs/system-model.md,
*Hidden deployment conditions*). The ns-3 scenario ports these functions one to one
(``ns3_scenarios/iab/model/iab-external-interference.cc``); every draw is counter-based:

* the interferer's channel block and position: ``hash(instance seed, STREAM_DEPLOYMENT, 0, i)``
  for ``i = 0`` (first channel), ``1, 2`` (x, y): the same for every episode of a deployment;
* whether it transmits in frame ``f``: ``hash(episode key, STREAM_EXTERNAL, f)``;
* whether sensing misses busy channel ``k`` in the report of incumbent state ``s``:
  ``hash(episode key, STREAM_SENSING, s, k)`` (state ``s = f + 1`` after frame ``f``, 0 at
  reset, as the incumbent chain's own draws).

The interference power at a receiver is the interferer's EIRP minus the LOS-probability-weighted
mean TR 38.901 UMi path loss (interferer at base-station height, as a neighbouring small cell),
plus the receiver's array gain toward the interferer with its beam steered at its own parent.
No shadowing or fading: the interferer is a wideband neighbour averaged over a 50 MHz channel
and a frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bridge.config import ScenarioConfig
from bridge.model import rng
from bridge.model.channel import mean_pathloss_db, upa_gain_lin


@dataclass(frozen=True)
class ExternalInterferer:
    """One deployment's external interferer (``n_channels == 0``: none)."""

    xyz: np.ndarray  # (3,) m
    first_channel: int
    n_channels: int
    eirp_dbm: float
    activity: float

    def channel_mask(self, n_channels: int) -> np.ndarray:
        """(K,) bool: the channels it occupies."""
        k = np.arange(n_channels)
        return (k >= self.first_channel) & (k < self.first_channel + self.n_channels)


def draw_interferer(config: ScenarioConfig, instance_seed: int) -> ExternalInterferer:
    """The interferer of the deployment with seed ``instance_seed``: a block of
    ``radio.external_block_channels`` contiguous channels starting uniformly at random, at a
    position uniform over the deployment area, at base-station height."""
    r, topo = config.radio, config.topology
    key = rng.seed_key(int(instance_seed))
    u = rng.to_uniform(rng.hash_keys(key, rng.STREAM_DEPLOYMENT, 0, np.arange(3)))
    width = r.external_block_channels
    first = min(int(u[0] * (r.n_channels - width + 1)), r.n_channels - width)
    half = topo.area_m / 2
    xyz = np.array([(2 * u[1] - 1) * half, (2 * u[2] - 1) * half, topo.bs_height_m])
    return ExternalInterferer(xyz=xyz, first_channel=first, n_channels=width,
                              eirp_dbm=r.external_eirp_dbm, activity=r.external_activity)


def batch_interferers(instances: Sequence, n_channels: int) -> dict[str, np.ndarray]:
    """The interferers of a batch of scenario instances as arrays: ``xyz`` (N, 3),
    ``eirp_dbm`` (N,), ``activity`` (N,), ``channels`` (N, K) bool."""
    drawn = [draw_interferer(x.config, x.seed) for x in instances]
    return {
        "xyz": np.array([d.xyz for d in drawn]).reshape(len(drawn), 3),
        "eirp_dbm": np.array([d.eirp_dbm for d in drawn], dtype=np.float64),
        "activity": np.array([d.activity for d in drawn], dtype=np.float64),
        "channels": np.array([d.channel_mask(n_channels) for d in drawn],
                             dtype=bool).reshape(len(drawn), n_channels),
    }


def received_power_mw(interferer_xyz: np.ndarray, eirp_dbm: np.ndarray, rx_xyz: np.ndarray,
                      parent_xyz: np.ndarray, rx_rows: np.ndarray, rx_cols: np.ndarray,
                      carrier_ghz: float) -> np.ndarray:
    """(N, L) power (mW per channel) the receivers pick up from the interferer when it is on.

    ``interferer_xyz`` (N, 3), ``eirp_dbm`` (N,), ``rx_xyz`` and ``parent_xyz`` (N, L, 3) the
    receivers and the base stations their beams point at, ``rx_rows``/``rx_cols`` (L,) their
    arrays. Path loss: LOS-probability-weighted UMi with the interferer as the base station.
    """
    src = interferer_xyz[:, None, :]
    d2d = np.hypot(rx_xyz[..., 0] - src[..., 0], rx_xyz[..., 1] - src[..., 1])
    loss_db = mean_pathloss_db(d2d, src[..., 2], rx_xyz[..., 2], carrier_ghz)
    toward = src - rx_xyz
    toward = toward / np.maximum(np.linalg.norm(toward, axis=-1, keepdims=True), 1e-9)
    bore = parent_xyz - rx_xyz
    bore = bore / np.maximum(np.linalg.norm(bore, axis=-1, keepdims=True), 1e-9)
    gain = np.empty(d2d.shape)
    for dims in {(int(a), int(b)) for a, b in zip(rx_rows, rx_cols)}:
        sel = (rx_rows == dims[0]) & (rx_cols == dims[1])
        gain[:, sel] = upa_gain_lin(toward[:, sel], bore[:, sel], *dims)
    return 10 ** ((eirp_dbm[:, None] - loss_db) / 10) * gain


def interferer_on(key: np.ndarray, frame: np.ndarray, activity: np.ndarray) -> np.ndarray:
    """(N,) bool: whether each environment's interferer transmits in ``frame`` (N,)."""
    return rng.to_uniform(rng.hash_keys(key, rng.STREAM_EXTERNAL, frame)) < activity


def external_interference_mw(rx_power_mw: np.ndarray, victim: np.ndarray, channels: np.ndarray,
                             on: np.ndarray) -> np.ndarray:
    """(N, B, K) external power at the receiver base station b serves on channel k.
    ``rx_power_mw`` (N, L), ``victim`` (N, B, K) link indices, ``channels`` (N, K) the
    interferer's block, ``on`` (N,) this frame's activity."""
    n = rx_power_mw.shape[0]
    at_victim = np.take_along_axis(rx_power_mw, victim.reshape(n, -1), axis=1)
    hit = channels & on[:, None]
    return at_victim.reshape(victim.shape) * hit[:, None, :]


def sensed_incumbents(key: np.ndarray, state_index: np.ndarray, incumbent: np.ndarray,
                      miss_prob: np.ndarray) -> np.ndarray:
    """(N, K) the incumbent report: a busy channel is reported busy unless sensing misses it
    (probability ``miss_prob`` (N,), independently per report and channel); a free channel is
    never reported busy. ``state_index`` (N,) numbers the incumbent state being reported."""
    if not miss_prob.any():  # perfect sensing (the default): no draws on the hot path
        return incumbent.copy()
    n, k = incumbent.shape
    u = rng.to_uniform(rng.hash_keys(key[:, None], rng.STREAM_SENSING, state_index[:, None],
                                     np.arange(k)[None]))
    return incumbent & ~(u < miss_prob[:, None])
