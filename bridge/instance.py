"""Scenario instances: one concrete network (positions, attachments, seeds) of a task.

Python draws the instance and hands it, as JSON, to either backend, so the fallback and ns-3
simulate the same network. Node numbering: base station 0 is the donor, base station ``i + 1``
is IAB node ``i``. Link ``i`` (``i < max_iab``) is the backhaul of IAB node ``i``; link
``max_iab + u`` is the access link of UE ``u``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bridge.config import ConfigError, ScenarioConfig
from bridge.model.channel import mean_pathloss_db
from bridge.tasks import Task

INSTANCE_VERSION = 1


@dataclass(frozen=True)
class ScenarioInstance:
    """A deployment: the task's config plus node positions, attachments and seeds."""

    config: ScenarioConfig
    seed: int
    bs_xyz: np.ndarray  # (1 + n_iab, 3): donor first
    iab_parent: np.ndarray  # (n_iab,) base-station index of each IAB node's parent
    ue_xyz: np.ndarray  # (n_ue, 3) at the start of every episode
    ue_parent: np.ndarray  # (n_ue,) serving base-station index
    ue_heading_rad: np.ndarray  # (n_ue,) initial walking direction
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_iab(self) -> int:
        return int(self.iab_parent.shape[0])

    @property
    def n_ue(self) -> int:
        return int(self.ue_parent.shape[0])

    def ue_hops(self, u: int) -> list[int]:
        """Link indices from the donor to UE ``u`` (backhaul hops first, access last)."""
        max_iab = self.config.topology.max_iab
        hops = [max_iab + u]
        bs = int(self.ue_parent[u])
        while bs != 0:
            hops.insert(0, bs - 1)
            bs = int(self.iab_parent[bs - 1])
        return hops

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": INSTANCE_VERSION,
            "seed": int(self.seed),
            "config": self.config.to_dict(),
            "bs_xyz": self.bs_xyz.tolist(),
            "iab_parent": self.iab_parent.tolist(),
            "ue_xyz": self.ue_xyz.tolist(),
            "ue_parent": self.ue_parent.tolist(),
            "ue_heading_rad": self.ue_heading_rad.tolist(),
            "ue_hops": [self.ue_hops(u) for u in range(self.n_ue)],
            "meta": self.meta,
        }

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioInstance:
        version = data.get("version")
        if version != INSTANCE_VERSION:
            raise ConfigError(f"instance.version={version!r}: expected {INSTANCE_VERSION}")
        config = ScenarioConfig.from_dict(data["config"])
        inst = cls(
            config=config,
            seed=int(data["seed"]),
            bs_xyz=np.asarray(data["bs_xyz"], dtype=np.float64).reshape(-1, 3),
            iab_parent=np.asarray(data["iab_parent"], dtype=np.int64),
            ue_xyz=np.asarray(data["ue_xyz"], dtype=np.float64).reshape(-1, 3),
            ue_parent=np.asarray(data["ue_parent"], dtype=np.int64),
            ue_heading_rad=np.asarray(data["ue_heading_rad"], dtype=np.float64),
            meta=dict(data.get("meta", {})),
        )
        inst.validate()
        return inst

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> ScenarioInstance:
        p = Path(text_or_path) if not str(text_or_path).lstrip().startswith("{") else None
        text = p.read_text() if p is not None else str(text_or_path)
        return cls.from_dict(json.loads(text))

    def validate(self) -> None:
        topo = self.config.topology
        if self.bs_xyz.shape != (1 + topo.n_iab, 3):
            raise ConfigError(f"instance.bs_xyz has shape {self.bs_xyz.shape}; expected "
                              f"({1 + topo.n_iab}, 3) for topology.n_iab={topo.n_iab}")
        if self.ue_xyz.shape != (topo.n_ue, 3) or self.ue_parent.shape != (topo.n_ue,):
            raise ConfigError(f"instance.ue_xyz/ue_parent have shapes {self.ue_xyz.shape}/"
                              f"{self.ue_parent.shape}; expected ({topo.n_ue}, 3)/({topo.n_ue},)")
        if np.any((self.ue_parent < 0) | (self.ue_parent > topo.n_iab)):
            raise ConfigError(f"instance.ue_parent={self.ue_parent.tolist()} names a base "
                              f"station outside [0, {topo.n_iab}]")
        for i, p in enumerate(self.iab_parent.tolist()):
            if not 0 <= p <= topo.n_iab or p == i + 1:
                raise ConfigError(f"instance.iab_parent[{i}]={p} is not a valid parent")


def iab_parents(n_iab: int, topology: str) -> np.ndarray:
    """Parent base station of each IAB node: the donor (star), or, in a two-hop chain, the
    donor for even nodes and the previous node for odd ones."""
    if topology == "star":
        return np.zeros(n_iab, dtype=np.int64)
    return np.array([0 if i % 2 == 0 else i for i in range(n_iab)], dtype=np.int64)


def generate_instance(config: ScenarioConfig, seed: int, task: Task | None = None
                      ) -> ScenarioInstance:
    """Draw a deployment of ``config`` (with ``task`` applied when given) from ``seed``.

    The donor sits at the centre of the square area, IAB nodes on a ring with a random
    rotation, UEs uniformly in the square at least ``min_ue_bs_distance_m`` from every base
    station, each attached to the base station of highest mean received power (equal transmit
    powers and arrays, so: lowest LOS-weighted mean path loss).
    """
    if task is not None:
        config = task.apply(config)
    topo = config.topology
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & (2**63 - 1), 0x1AB]))
    rot = rng.uniform(0, 2 * math.pi)
    angles = rot + 2 * math.pi * np.arange(topo.n_iab) / max(topo.n_iab, 1)
    bs_xy = np.zeros((1 + topo.n_iab, 2))
    bs_xy[1:, 0] = topo.iab_ring_radius_m * np.cos(angles)
    bs_xy[1:, 1] = topo.iab_ring_radius_m * np.sin(angles)
    bs_xyz = np.column_stack([bs_xy, np.full(1 + topo.n_iab, topo.bs_height_m)])

    half = topo.area_m / 2
    ue_xy = np.zeros((topo.n_ue, 2))
    for u in range(topo.n_ue):
        for _attempt in range(10_000):
            cand = rng.uniform(-half, half, size=2)
            if np.all(np.hypot(*(bs_xy - cand).T) >= topo.min_ue_bs_distance_m):
                ue_xy[u] = cand
                break
        else:
            raise ConfigError(
                f"topology.min_ue_bs_distance_m={topo.min_ue_bs_distance_m} leaves no room for "
                f"UEs in topology.area_m={topo.area_m}"
            )
    ue_xyz = np.column_stack([ue_xy, np.full(topo.n_ue, topo.ue_height_m)])
    d2d = np.hypot(ue_xy[:, None, 0] - bs_xy[None, :, 0], ue_xy[:, None, 1] - bs_xy[None, :, 1])
    pl = mean_pathloss_db(d2d, topo.bs_height_m, topo.ue_height_m, config.radio.carrier_ghz)
    ue_parent = np.argmin(pl, axis=1).astype(np.int64)
    heading = rng.uniform(0, 2 * math.pi, size=topo.n_ue)
    inst = ScenarioInstance(
        config=config, seed=int(seed), bs_xyz=bs_xyz,
        iab_parent=iab_parents(topo.n_iab, topo.topology),
        ue_xyz=ue_xyz, ue_parent=ue_parent, ue_heading_rad=heading,
        meta={"task": Task.from_config(config).to_dict()},
    )
    inst.validate()
    return inst
