"""Observation layout (versioned) and action encoding shared by both backends.

Observation, layout version 1: a flat float32 vector, ``n_links_max`` link rows followed by the
global block. Each link row (``link_features`` floats)::

    valid            1 if the link exists in this deployment, else 0 (the whole row is 0)
    is_backhaul      1 for a backhaul link (parent -> IAB-MT), 0 for an access link
    parent[B]        one-hot of the transmitting base station (0 = donor, i+1 = IAB node i)
    cqi[K]           interference-free SNR per channel measured on last frame's reference
                     signals, dB / 10
    sinr[K]          SINR measured last frame on the channels where the link was scheduled,
                     dB / 10; LAST_SINR_SENTINEL (-5.0, i.e. "-50 dB") where it was not
    backlog_mb       bytes queued at the transmitter for this link, in MB
    hol_delay        head-of-line delay of those bytes / delay budget (0 when empty)

Every value is clipped to [-OBS_BOUND, OBS_BOUND] = [-30, 30].

Global block: ``incumbent[K]`` (1 where an incumbent occupied the channel last frame) and
``time_frac`` (frame index / episode length).

Action: ``MultiDiscrete([1 + n_links_max] * (B * K))``, flat in base-station-major order
(entry ``b * K + k``). Value 0 leaves channel k of base station b idle; value ``l + 1``
schedules link ``l``. ``info["action_mask"]`` has shape ``(B * K, 1 + n_links_max)`` (one more
leading axis in a vector environment) and is True where a value is allowed: idle always;
link ``l`` only if it exists, base station b is its transmitter, and channel k was free of
incumbents last frame. Half-duplex conflicts depend on the joint action, so they are resolved
at step time (the IAB node's own transmission on that channel is dropped and counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridge.config import ScenarioConfig

LAYOUT_VERSION = 1
LAST_SINR_SENTINEL = -5.0
OBS_BOUND = 30.0  # every field is clipped to [-30, 30] (e.g. SNR -300..300 dB, 30 MB backlog)
SNR_SCALE_DB = 10.0
BACKLOG_SCALE_BYTES = 1e6


@dataclass(frozen=True)
class ObservationLayout:
    """Offsets of every field of the flat observation for one config's padding sizes."""

    n_bs: int
    n_links: int
    n_channels: int

    @classmethod
    def from_config(cls, config: ScenarioConfig) -> ObservationLayout:
        return cls(config.n_bs_max, config.n_links_max, config.radio.n_channels)

    @property
    def link_features(self) -> int:
        return 2 + self.n_bs + 2 * self.n_channels + 2

    @property
    def size(self) -> int:
        return self.n_links * self.link_features + self.n_channels + 1

    @property
    def action_size(self) -> int:
        return self.n_bs * self.n_channels

    @property
    def n_choices(self) -> int:
        return 1 + self.n_links

    def slices(self) -> dict[str, slice]:
        """Column slices inside one link row."""
        b, k = self.n_bs, self.n_channels
        return {
            "valid": slice(0, 1),
            "is_backhaul": slice(1, 2),
            "parent": slice(2, 2 + b),
            "cqi": slice(2 + b, 2 + b + k),
            "sinr": slice(2 + b + k, 2 + b + 2 * k),
            "backlog_mb": slice(2 + b + 2 * k, 3 + b + 2 * k),
            "hol_delay": slice(3 + b + 2 * k, 4 + b + 2 * k),
        }

    def split(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """Named views of a (..., size) observation: ``links`` (..., L, F) and the globals."""
        lead = obs.shape[:-1]
        links = obs[..., : self.n_links * self.link_features].reshape(
            *lead, self.n_links, self.link_features)
        rest = obs[..., self.n_links * self.link_features:]
        out = {name: links[..., s] for name, s in self.slices().items()}
        out["links"] = links
        out["incumbent"] = rest[..., : self.n_channels]
        out["time_frac"] = rest[..., self.n_channels]
        return out

    def without_pairs(self, mask: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """A copy of the action mask ``mask`` (N, B*K, 1+L) in which no base station may
        schedule link l on channel k where ``pairs`` (broadcastable to (N, L, K)) is True."""
        grid = np.array(mask, dtype=bool).reshape(len(mask), self.n_bs, self.n_channels, -1)
        grid[..., 1:] &= ~np.swapaxes(np.asarray(pairs, dtype=bool), 1, 2)[:, None]
        return grid.reshape(np.shape(mask))

    def idle_only_on(self, mask: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """A copy of the action mask ``mask`` (N, B*K, 1+L) in which every base station may
        only idle on the channels ``channels`` (N, K) marks (a busy incumbent the policy
        knows of or suspects)."""
        return self.without_pairs(mask, np.asarray(channels, dtype=bool)[:, None, :])

    def describe(self) -> list[tuple[str, int, int]]:
        """(field, first index, width) for every field of the flat vector."""
        rows = []
        for link in range(self.n_links):
            base = link * self.link_features
            for name, s in self.slices().items():
                rows.append((f"link[{link}].{name}", base + s.start, s.stop - s.start))
        g = self.n_links * self.link_features
        rows.append(("incumbent", g, self.n_channels))
        rows.append(("time_frac", g + self.n_channels, 1))
        return rows


def half_duplex_conflicts(link: np.ndarray) -> np.ndarray:
    """The half-duplex rule on an allocation ``link`` (N, B, K) of link indices (-1 idle):
    True where IAB node ``b - 1`` transmits on a channel on which its parent schedules its
    backhaul (link ``b - 1``). Shared by both backends' rules and the policies that avoid it."""
    N, B, K = link.shape
    n_iab = B - 1
    conflict = np.zeros(link.shape, dtype=bool)
    if n_iab:
        # receiving[n, i, k]: someone schedules backhaul link i (IAB node i's MT) on channel k;
        # row n_iab collects every other choice
        receiving = np.zeros(N * (n_iab + 1) * K, dtype=bool)
        # as unsigned, idle (-1) is huge: min(link, n_iab) is the backhaul link or n_iab
        target = np.minimum(np.asarray(link, dtype=np.int64).view(np.uint64), n_iab)
        flat = target.view(np.int64) * K
        flat += np.arange(N)[:, None, None] * ((n_iab + 1) * K) + np.arange(K)
        receiving[flat] = True
        np.logical_and(receiving.reshape(N, n_iab + 1, K)[:, :n_iab], link[:, 1:, :] >= 0,
                       out=conflict[:, 1:, :])
    return conflict


def validate_action(action: object, layout: ObservationLayout, batch: int | None = None
                    ) -> np.ndarray:
    """Check an action (or a batch of actions) and return it as int64 of shape
    (batch, B * K); raise ValueError naming what is wrong (NaN, shape, range, type)."""
    arr = np.asarray(action)
    expected = (layout.action_size,) if batch is None else (batch, layout.action_size)
    if arr.dtype == object:
        raise ValueError(f"action has dtype object; expected integers of shape {expected}")
    if arr.shape != expected:
        if arr.size == int(np.prod(expected)) and batch is None and arr.ndim == 2 and \
                arr.shape == (layout.n_bs, layout.n_channels):
            arr = arr.reshape(expected)
        else:
            raise ValueError(f"action has shape {arr.shape}; expected {expected} "
                             f"(base stations x channels = {layout.n_bs} x {layout.n_channels})")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr))[0].tolist()
            raise ValueError(f"action contains NaN or inf at index {bad}")
        if not np.all(arr == np.round(arr)):
            bad = np.argwhere(arr != np.round(arr))[0].tolist()
            raise ValueError(f"action[{bad}]={arr[tuple(bad)]!r} is not a whole number")
    elif not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(f"action has dtype {arr.dtype}; expected integers")
    # range check on the values as given: a cast first would wrap 1e19 or 2**63 to int64
    out_of_range = (arr < 0) | (arr >= layout.n_choices)
    if np.any(out_of_range):
        bad = np.argwhere(out_of_range)[0].tolist()
        value = arr[tuple(bad)].item()
        raise ValueError(f"action[{bad}]={value!r} is out of range; "
                         f"expected 0 (idle) .. {layout.n_choices - 1} (link index + 1)")
    return arr.astype(np.int64).reshape(-1, layout.action_size)
