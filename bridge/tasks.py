"""Task distribution: disjoint training and held-out test ranges over deployments.

A task is a point in (UE count, UE speed, traffic load, blockage mix, topology, incumbent
activity) plus the hidden conditions of a deployment (an external interferer's EIRP, channel
block width and activity; the incumbent sensing miss probability), which no single
observation shows. :class:`TaskDistribution` samples tasks with an explicit seed from either
split; the training and test ranges of every numeric dimension are checked to be disjoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from bridge.config import ConfigError, ScenarioConfig

Split = Literal["train", "test"]

# dimension -> (config path, kind)
TASK_DIMENSIONS: dict[str, tuple[str, str]] = {
    "n_ue": ("topology.n_ue", "int"),
    "ue_speed_mps": ("dynamics.ue_speed_mps", "float"),
    "ue_rate_mbps": ("traffic.ue_rate_mbps", "float"),
    "blockage_prob": ("radio.blockage_prob", "float"),
    "incumbent_activity": ("dynamics.incumbent_activity", "float"),
    "topology": ("topology.topology", "choice"),
    # hidden per-deployment conditions (bridge/model/external.py)
    "external_eirp_dbm": ("radio.external_eirp_dbm", "float"),
    "external_block_channels": ("radio.external_block_channels", "channels"),
    "external_activity": ("radio.external_activity", "float"),
    "incumbent_miss_prob": ("dynamics.incumbent_miss_prob", "float"),
}
# drawn from a generator of their own, so adding them left the other dimensions' draws as
# they were (the same seed gives the same UE counts, rates, ... as before)
_HIDDEN = ("external_eirp_dbm", "external_block_channels", "external_activity",
           "incumbent_miss_prob")
_PROBABILITIES = ("blockage_prob", "incumbent_activity", "external_activity",
                  "incumbent_miss_prob")


@dataclass(frozen=True)
class Task:
    """One deployment's task parameters."""

    n_ue: int
    ue_speed_mps: float
    ue_rate_mbps: float
    blockage_prob: float
    incumbent_activity: float
    topology: str
    # defaults: the model of hidden conditions switched off (no interferer, perfect sensing)
    external_eirp_dbm: float = 30.0
    external_block_channels: int = 0
    external_activity: float = 1.0
    incumbent_miss_prob: float = 0.0

    def apply(self, config: ScenarioConfig) -> ScenarioConfig:
        """The scenario config of this task (the base config with the task's values)."""
        changes = {TASK_DIMENSIONS[k][0].replace(".", "__"): v
                   for k, v in dataclasses.asdict(self).items()}
        return config.replace(**changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: ScenarioConfig) -> Task:
        tree = config.to_dict()
        values = {}
        for name, (path, _) in TASK_DIMENSIONS.items():
            section, key = path.split(".")
            values[name] = tree[section][key]
        return cls(**values)


def _ue_ranges(max_ues: int) -> tuple[list[list[int]], list[list[int]]]:
    """UE-count intervals scaled to the padding (24 UEs: train 8-12 and 18-24, test 13-17)."""
    if max_ues < 4:
        return [[1, max_ues + 1]], [[max_ues + 1, max_ues + 2]]
    lo, mid, hi = max(1, -(-max_ues // 3)), max(2, int(0.55 * max_ues)), int(0.75 * max_ues)
    lo = min(lo, mid - 1)
    hi = max(hi, mid + 1)
    return [[lo, mid], [hi, max_ues + 1]], [[mid, hi]]


def _block_ranges(n_channels: int) -> tuple[list[list[int]], list[list[int]]]:
    """External block widths scaled to the channel count (8 channels: train 0-2 and 5-6, test
    3-4; width 0 is a deployment without an external interferer)."""
    if n_channels < 2:
        return [[0, 1]], [[1, 2]]
    a = max(1, 3 * n_channels // 8)
    b = max(a + 1, 5 * n_channels // 8)
    c = min(max(b + 1, 7 * n_channels // 8), n_channels + 1)
    return [[0, a], [b, c]], [[a, b]]


def _default_ranges(max_ues: int = 24, n_iab: int = 4, n_channels: int = 8
                    ) -> dict[str, dict[str, Any]]:
    # Held-out test intervals sit inside the training envelope (interpolation) for the
    # continuous dimensions: the agent never sees them, yet they are realistic deployments.
    train_ue, test_ue = _ue_ranges(max_ues)
    train_block, test_block = _block_ranges(n_channels)
    topologies = ["star", "chain"] if n_iab >= 2 else ["star"]  # a chain needs two IAB nodes
    return {
        "train": {
            "n_ue": train_ue,
            "ue_speed_mps": [[0.0, 1.0], [3.0, 15.0]],
            "ue_rate_mbps": [[20.0, 80.0], [130.0, 200.0]],
            "blockage_prob": [[0.0, 0.1], [0.25, 0.4]],
            "incumbent_activity": [[0.0, 0.05], [0.15, 0.3]],
            "topology": list(topologies),
            "external_eirp_dbm": [[28.0, 40.0], [50.0, 56.0]],
            "external_block_channels": train_block,
            "external_activity": [[0.4, 0.75], [0.95, 1.0]],
            "incumbent_miss_prob": [[0.0, 0.1], [0.25, 0.4]],
        },
        "test": {
            "n_ue": test_ue,
            "ue_speed_mps": [[1.0, 3.0]],
            "ue_rate_mbps": [[80.0, 130.0]],
            "blockage_prob": [[0.1, 0.25]],
            "incumbent_activity": [[0.05, 0.15]],
            "topology": list(topologies),
            "external_eirp_dbm": [[40.0, 50.0]],
            "external_block_channels": test_block,
            "external_activity": [[0.75, 0.95]],
            "incumbent_miss_prob": [[0.1, 0.25]],
        },
    }


class TaskDistribution:
    """Samples :class:`Task` objects from disjoint train / test ranges.

    Numeric ranges are lists of half-open intervals ``[lo, hi)`` (integers: ``lo..hi-1``);
    an interval is picked with probability proportional to its width, then a value uniformly
    inside it. ``topology`` is categorical and shared by both splits (it has two values).
    """

    def __init__(self, ranges: dict[str, dict[str, Any]] | None = None,
                 max_ues: int = 24, n_iab: int = 4, n_channels: int = 8) -> None:
        self.ranges = (ranges if ranges is not None
                       else _default_ranges(max_ues, n_iab, n_channels))
        self.max_ues = max_ues
        self.n_iab = n_iab
        self.n_channels = n_channels
        self._validate()

    @classmethod
    def for_config(cls, config: Any, data: dict[str, Any] | None = None) -> TaskDistribution:
        """The distribution for a scenario config's padding and IAB count, with the ranges
        of ``data`` (a ``[tasks]`` table) replacing the defaults."""
        return cls.from_dict(data, max_ues=config.topology.max_ues,
                             n_iab=config.topology.n_iab, n_channels=config.radio.n_channels)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, max_ues: int = 24, n_iab: int = 4,
                  n_channels: int = 8) -> TaskDistribution:
        ranges = _default_ranges(max_ues, n_iab, n_channels)
        for split, dims in (data or {}).items():
            if split not in ranges:
                raise ConfigError(f"tasks.{split}: unknown split; expected 'train' or 'test'")
            if not isinstance(dims, dict):
                raise ConfigError(f"tasks.{split} must be a table of dimensions")
            for dim, value in dims.items():
                if dim not in TASK_DIMENSIONS:
                    raise ConfigError(
                        f"tasks.{split}.{dim}: unknown task dimension; "
                        f"expected one of {sorted(TASK_DIMENSIONS)}"
                    )
                ranges[split][dim] = value
        return cls(ranges, max_ues=max_ues, n_iab=n_iab, n_channels=n_channels)

    def _validate(self) -> None:
        for split in ("train", "test"):
            if split not in self.ranges:
                raise ConfigError(f"tasks.{split} is missing")
            for dim, (_, kind) in TASK_DIMENSIONS.items():
                where = f"tasks.{split}.{dim}"
                value = self.ranges[split].get(dim)
                if value is None:
                    raise ConfigError(f"{where} is missing")
                if kind == "choice":
                    bad = [v for v in value if v not in ("star", "chain")]
                    if not value or bad:
                        raise ConfigError(f"{where}={value!r}: expected values from "
                                          "['star', 'chain']")
                    if "chain" in value and self.n_iab < 2:
                        raise ConfigError(f"{where}={value!r}: 'chain' needs "
                                          f"topology.n_iab >= 2 (it is {self.n_iab})")
                    continue
                if not isinstance(value, list) or not value:
                    raise ConfigError(f"{where}={value!r}: expected a list of [lo, hi) intervals")
                for iv in value:
                    if (not isinstance(iv, (list, tuple)) or len(iv) != 2
                            or not all(isinstance(x, (int, float)) for x in iv) or iv[0] >= iv[1]):
                        raise ConfigError(
                            f"{where} interval {iv!r}: expected [lo, hi) with lo < hi")
                    if kind == "int" and split == "train" and not (
                            1 <= iv[0] and iv[1] - 1 <= self.max_ues):
                        raise ConfigError(f"{where} interval {iv!r}: UE counts must lie in "
                                          f"[1, {self.max_ues}] (topology.max_ues)")
                    if kind == "channels" and not (
                            0 <= iv[0] and iv[1] - 1 <= self.n_channels):
                        raise ConfigError(f"{where} interval {iv!r}: block widths must lie in "
                                          f"[0, {self.n_channels}] (radio.n_channels)")
                    if dim in _PROBABILITIES and not (
                            0 <= iv[0] and iv[1] <= 1):
                        raise ConfigError(f"{where} interval {iv!r}: must lie in [0, 1]")
                    if dim in ("ue_speed_mps", "ue_rate_mbps") and iv[0] < 0:
                        raise ConfigError(f"{where} interval {iv!r}: must be >= 0")
        for dim, (_, kind) in TASK_DIMENSIONS.items():
            if kind == "choice":
                continue
            for a in self.ranges["train"][dim]:
                for b in self.ranges["test"][dim]:
                    if a[0] < b[1] and b[0] < a[1]:
                        raise ConfigError(
                            f"tasks.train.{dim} interval {a!r} overlaps tasks.test.{dim} "
                            f"interval {b!r}: training and held-out ranges must be disjoint"
                        )

    def sample(self, split: Split, seed: int, n: int = 1) -> list[Task]:
        """``n`` tasks from ``split``, a pure function of ``seed``."""
        if split not in ("train", "test"):
            raise ConfigError(f"split={split!r}: expected 'train' or 'test'")
        visible = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7A5C]))
        hidden = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7A5D]))
        out = []
        for _ in range(n):
            values: dict[str, Any] = {}
            for dim, (_, kind) in TASK_DIMENSIONS.items():
                rng = hidden if dim in _HIDDEN else visible
                spec = self.ranges[split][dim]
                if kind == "choice":
                    values[dim] = str(spec[int(rng.integers(len(spec)))])
                    continue
                widths = np.array([iv[1] - iv[0] for iv in spec], dtype=float)
                iv = spec[int(rng.choice(len(spec), p=widths / widths.sum()))]
                if kind in ("int", "channels"):
                    top, name = ((self.max_ues, "topology.max_ues") if kind == "int"
                                 else (self.n_channels, "radio.n_channels"))
                    hi = min(int(iv[1]), top + 1)
                    if hi <= int(iv[0]):
                        raise ConfigError(f"tasks.{split}.{dim} interval {iv!r} holds no value "
                                          f"<= {name}={top}")
                    values[dim] = int(rng.integers(int(iv[0]), hi))
                else:
                    values[dim] = float(rng.uniform(iv[0], iv[1]))
            out.append(Task(**values))
        return out

    def contains(self, split: Split, task: Task) -> bool:
        """Whether every dimension of ``task`` lies inside ``split``'s ranges."""
        for dim, (_, kind) in TASK_DIMENSIONS.items():
            v = getattr(task, dim)
            spec = self.ranges[split][dim]
            if kind == "choice":
                if v not in spec:
                    return False
            elif not any(iv[0] <= v < iv[1] for iv in spec):
                return False
        return True
