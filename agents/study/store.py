"""Phase ids and the phase store: finished phases as JSON files under ``<out>/phases``.

A study is a list of phases (evaluate a baseline, meta-train agent A with run seed s, adapt
it on the held-out tasks); each finished phase is written atomically (temporary file, then
rename), so running the same command again skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bridge.config import ConfigError

PhaseKind = Literal["baseline", "train", "adapt"]


@dataclass(frozen=True)
class PhaseId:
    """One phase: ``kind`` of ``method`` (a baseline's or an agent's name) in ``study``;
    ``seed`` is the training run of train and adapt phases."""

    kind: PhaseKind
    study: str
    method: str
    seed: int | None = None

    def __str__(self) -> str:
        parts = [self.kind, self.study, self.method]
        return ":".join(parts if self.seed is None else [*parts, str(self.seed)])

    @property
    def filename(self) -> str:
        return str(self).replace(":", "__") + ".json"

    @property
    def trained(self) -> PhaseId:
        """The train phase whose checkpoint this agent phase uses."""
        return PhaseId("train", self.study, self.method, self.seed)

    @property
    def adapted(self) -> PhaseId:
        return PhaseId("adapt", self.study, self.method, self.seed)

    @property
    def checkpoint(self) -> str:
        """The checkpoint file of a train phase, relative to the study's output."""
        return f"checkpoints/{self.study}-{self.method}-s{self.seed}.pt"


class PhaseStore:
    """Results of finished phases under ``<out>/phases``, written atomically."""

    def __init__(self, out: Path, fingerprint: str, fresh: bool) -> None:
        self.out = out
        self.dir = out / "phases"
        manifest = out / "run.json"
        if fresh and out.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
        if manifest.exists() and not fresh:
            previous = json.loads(manifest.read_text()).get("fingerprint")
            if previous != fingerprint:
                raise ConfigError(
                    f"--out {out} holds a run with different settings (fingerprint "
                    f"{previous} vs {fingerprint}); use another --out or --no-resume")
        self.dir.mkdir(parents=True, exist_ok=True)
        (out / "checkpoints").mkdir(exist_ok=True)
        write_json_atomic(manifest, {"fingerprint": fingerprint, "started": time.time()})

    def path(self, phase: PhaseId) -> Path:
        return self.dir / phase.filename

    def done(self, phase: PhaseId) -> bool:
        return self.path(phase).exists()

    def load(self, phase: PhaseId) -> Any:
        return json.loads(self.path(phase).read_text())

    def save(self, phase: PhaseId, value: Any) -> None:
        write_json_atomic(self.path(phase), value)

    @classmethod
    def attach(cls, out: Path) -> PhaseStore:
        """The store of a run another process opened (a phase worker): reads phases and
        writes its own phase's files, never the run's manifest."""
        store = cls.__new__(cls)
        store.out, store.dir = out, out / "phases"
        return store

    def save_rollout_stats(self, phase: PhaseId, stats: Any) -> None:
        """Record what the rollout backend did in ``phase`` (jobs, retries, ...) in its own
        file beside the phase (phases may run in parallel processes); the report sums them."""
        write_json_atomic(self.dir / phase.filename.replace(".json", ".rollouts"),
                          stats.to_dict())

    def rollout_stats(self) -> dict[str, Any]:
        """Every phase's rollout statistics, by phase."""
        out = {}
        for path in sorted(self.dir.glob("*.rollouts")):
            kind, study, method, *seed = path.name[:-len(".rollouts")].split("__")
            out[str(PhaseId(kind, study, method, *(int(x) for x in seed)))] = json.loads(
                path.read_text())  # type: ignore[arg-type]
        return out


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON so that a crash leaves either the old file or the new one, never half."""
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(value, fh, indent=1, default=_json_default)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
