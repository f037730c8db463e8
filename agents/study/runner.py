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
from bridge.config import ConfigError


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
              fresh: bool = False, progress: Progress | None = None, jobs: int = 1
              ) -> dict[str, Any]:
    """Run every phase of ``spec`` that ``out`` does not hold yet (so an interrupted run
    resumes), write the report and return ``results.json``'s content. ``jobs > 1`` runs up
    to that many phases at once, each in its own process (local rollouts only): every phase
    seeds itself, so the results are those of ``jobs = 1``."""
    out = Path(out)
    runtime = runtime or RolloutRuntime()
    progress = progress or Progress()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs={jobs!r}: expected an integer >= 1")
    if jobs > 1 and runtime.pool is not None:
        raise ConfigError(f"--jobs={jobs} runs phases in local processes; with a Ray pool "
                          "(--ray-address) the pool parallelises the rollouts: use --jobs 1")
    use_torch_threads(spec.torch_threads)
    store = PhaseStore(out, spec.fingerprint(), fresh=fresh)
    todo = study_phases(spec)
    progress.started(spec, out, sum(store.done(p) for p, _ in todo), len(todo))
    t_run = time.perf_counter()
    pending = [(p, st) for p, st in todo if not store.done(p)]
    if jobs == 1:
        for phase, study in pending:
            progress.phase_started(phase)
            t0 = time.perf_counter()
            result = run_phase(spec, phase, study, store, runtime, progress.iteration)
            store.save(phase, result)
            progress.phase_done(phase, result, time.perf_counter() - t0)
    else:
        run_parallel(spec, pending, store, progress, jobs)
    results, paths = write_report(spec, store, versions=versions(),
                                  run_wall_s=time.perf_counter() - t_run)
    progress.finished(out, paths)
    return results


def _phase_worker(spec: StudySpec, phase: PhaseId, study: Any, out: Path) -> Any:
    """One phase in a worker process (local rollouts, the spec's torch threads)."""
    use_torch_threads(spec.torch_threads)
    return run_phase(spec, phase, study, PhaseStore.attach(out), RolloutRuntime())


def run_parallel(spec: StudySpec, pending: list[tuple[PhaseId, Any]], store: PhaseStore,
                 progress: Progress, jobs: int) -> None:
    """Run ``pending`` phases on ``jobs`` worker processes, an adapt phase once its train
    phase is in the store; each result is saved here as it arrives (an interrupted run
    keeps every finished phase). The first failure stops the run and is raised."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    waiting = list(pending)
    running: dict[Future[Any], tuple[PhaseId, float]] = {}
    ctx = multiprocessing.get_context("spawn")  # no forked torch or numpy thread state
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        try:
            while waiting or running:
                for item in [w for w in waiting if w[0].kind != "adapt"
                             or store.done(w[0].trained)][:jobs - len(running)]:
                    waiting.remove(item)
                    progress.phase_started(item[0])
                    future = pool.submit(_phase_worker, spec, item[0], item[1], store.out)
                    running[future] = (item[0], time.perf_counter())
                if not running:
                    raise RuntimeError(f"phases {[str(p) for p, _ in waiting]} wait for "
                                       "train phases that are not scheduled")
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    phase, t0 = running.pop(future)
                    result = future.result()
                    store.save(phase, result)
                    progress.phase_done(phase, result, time.perf_counter() - t0)
        except BaseException:
            for future in running:
                future.cancel()
            # a running phase would otherwise go on (and the pool's exit would wait for it):
            # an interrupted run leaves no worker behind
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
            raise


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
