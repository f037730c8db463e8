"""Fixtures of the Ray tests: one private Ray cluster on loopback for the session, started by
the tests themselves, with a pool of two rollout workers (test_ray_study.py starts its own
head node with the `ray` command, as a cluster is set up)."""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

if os.environ.get("CI"):
    import ray  # noqa: F401 - in CI the ray extra must be there: fail, never skip
else:
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install .[ray])")

from agents.rollouts.ray_pool import RayPool  # noqa: E402

# logical CPUs of the test cluster: one per rollout worker of the session pool
CLUSTER_CPUS = 2


class DispatchLog:
    """(job id, worker name) of every job handed to a worker, in order."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, str]] = []

    def __call__(self, job, worker: str) -> None:
        self.entries.append((job.job_id, worker))


@pytest.fixture(scope="session")
def dispatch_log() -> DispatchLog:
    return DispatchLog()


@pytest.fixture(scope="session")
def pool(dispatch_log: DispatchLog) -> Iterator[RayPool]:
    p = RayPool("local", 2, local_cpus=CLUSTER_CPUS, poll_s=0.1, on_dispatch=dispatch_log)
    try:
        yield p
    finally:
        p.close()


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def thread_stack(thread: threading.Thread) -> str:
    """Where ``thread`` is now (its stack, innermost call last)."""
    frame = sys._current_frames().get(thread.ident or -1)
    return "".join(traceback.format_stack(frame)) if frame is not None else "(not running)"
