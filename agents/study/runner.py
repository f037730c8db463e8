"""Runs a whole study: every phase not yet in the store, then the report.

``iabmeta reproduce`` and the library API (:func:`agents.study.run_study`) are this one
function; the CLI only adds its progress display (:class:`Progress`). Two studies share the
protocol: ``main`` (the experiment's scenario, the default 16-UE network) and ``small``
(2 base stations x 3 channels, where the exhaustive upper bound runs), so every agent also
gets a fraction of the upper bound.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.agent import use_torch_threads
from agents.study.phases import run_phase, study_phases
from agents.study.report import write_report
from agents.study.rollout_runtime import RolloutRuntime
from agents.study.spec import StudySpec
from agents.study.store import PhaseId, PhaseStore


class Progress:
    """What a study run reports while it works; this one stays silent (the library's)."""

    def started(self, spec: StudySpec, out: Path, done: int, total: int) -> None:
        """The run starts, ``done`` of ``total`` phases already in the store."""

    def phase_started(self, phase: PhaseId) -> None:
        """``phase`` begins."""

    def iteration(self, phase: PhaseId, stats: dict[str, float]) -> None:
        """One training iteration of ``phase`` finished."""

    def phase_done(self, phase: PhaseId, result: Any, seconds: float) -> None:
        """``phase`` finished with ``result`` after ``seconds``."""

    def finished(self, out: Path, paths: list[Path]) -> None:
        """The report is written."""


def run_study(spec: StudySpec, out: str | Path, *, runtime: RolloutRuntime | None = None,
              fresh: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Run every phase of ``spec`` that ``out`` does not hold yet (so an interrupted run
    resumes), write the report and return ``results.json``'s content."""
    out = Path(out)
    runtime = runtime or RolloutRuntime()
    progress = progress or Progress()
    use_torch_threads(spec.torch_threads)
    store = PhaseStore(out, spec.fingerprint(), fresh=fresh)
    todo = study_phases(spec)
    progress.started(spec, out, sum(store.done(p) for p, _ in todo), len(todo))
    t_run = time.perf_counter()
    for phase, study in todo:
        if store.done(phase):
            continue
        progress.phase_started(phase)
        t0 = time.perf_counter()
        result = run_phase(spec, phase, study, store, runtime, progress.iteration)
        store.save(phase, result)
        progress.phase_done(phase, result, time.perf_counter() - t0)
    results, paths = write_report(spec, store, versions=versions(),
                                  run_wall_s=time.perf_counter() - t_run)
    progress.finished(out, paths)
    return results


def summary_line(records: list[dict[str, Any]]) -> str:
    """Headline metrics of a phase's records, for one log line."""
    if not records:
        return "no episodes"
    parts = []
    for k, unit in (("throughput_mbps", "Mb/s"), ("sinr_violation_rate", "SINR viol"),
                    ("latency_violation_rate", "lat viol"), ("jain_fairness", "Jain")):
        v = float(np.mean([r[k] for r in records if k in r]))
        parts.append(f"{v:.1f} {unit}" if unit == "Mb/s" else f"{unit} {v:.3f}")
    return ", ".join(parts)


def versions() -> dict[str, str]:
    import gymnasium
    import torch

    from agents import __version__

    return {"iabmeta": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__,
            "gymnasium": gymnasium.__version__, "platform": platform.platform()}
