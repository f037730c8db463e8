"""CPU co-location of a Python thread and its scenario processes (why: the lock-step protocol).

The ns3-gym protocol is strict request/reply: while the scenario computes, Python waits, and
the other way round; exactly one of the two runs at any time. Putting both on one CPU
therefore costs no parallelism, and it saves what dominates a round trip on small VMs: waking
a process on the *other* CPU (an inter-processor interrupt and a cold cache, tens of
microseconds here, twice per step). Measured on the 2-core VM: see ``iabmeta bench bridge``.

This only makes sense when one thread drives its scenarios one after the other (Ns3GymEnv,
SyncVectorEnv of Ns3GymEnvs). Several scenarios stepped concurrently (Ns3VectorEnv) must not
share one CPU: they compute in parallel.

The price of a pin: the scheduler can no longer move the pair away from a CPU that another
job keeps busy, which can cost more than it saves on a machine shared with CPU-heavy jobs.
``colocate=False`` on the environment turns it off.

Pinning changes the calling thread's affinity, and threads it starts later inherit it (e.g.
a PyTorch/OpenMP pool created afterwards). The pin is reference counted per thread and the
original mask is restored when the last environment that pinned the thread closes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["current_cpu", "pin_thread", "release_thread", "unpinned_cpus"]

_LOCK = threading.Lock()
# native thread id -> (number of holders, CPU, affinity mask before the first pin)
_PINS: dict[int, tuple[int, int, set[int]]] = {}


def current_cpu() -> int | None:
    """CPU the calling thread runs on right now (None if /proc does not tell)."""
    try:
        stat = Path("/proc/thread-self/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[36])  # field 39, "processor"
    except (OSError, ValueError, IndexError):
        return None


def unpinned_cpus() -> set[int]:
    """CPUs the calling thread may use apart from a pin by :func:`pin_thread`."""
    with _LOCK:
        entry = _PINS.get(threading.get_native_id())
    return set(entry[2]) if entry is not None else os.sched_getaffinity(0)


def pin_thread() -> tuple[int, int]:
    """Pin the calling thread to one CPU (kept if already pinned); return (thread id, CPU).

    The CPU is the one the thread already uses if it is allowed to use just one, else the
    CPU it runs on now (the scheduler's choice, usually the least busy one). Every call must
    be matched by :func:`release_thread` with the returned thread id.
    """
    tid = threading.get_native_id()
    with _LOCK:
        entry = _PINS.get(tid)
        if entry is not None:
            count, cpu, original = entry
            _PINS[tid] = (count + 1, cpu, original)
            return tid, cpu
        original = os.sched_getaffinity(0)
        now = current_cpu()
        if len(original) == 1:
            cpu = next(iter(original))
        elif now is not None and now in original:
            cpu = now
        else:
            cpu = min(original)
        if original != {cpu}:
            os.sched_setaffinity(0, {cpu})
        _PINS[tid] = (1, cpu, original)
        return tid, cpu


def release_thread(tid: int) -> None:
    """Drop one pin of thread ``tid``; the last one restores the thread's original mask."""
    with _LOCK:
        entry = _PINS.get(tid)
        if entry is None:
            return
        count, cpu, original = entry
        if count > 1:
            _PINS[tid] = (count - 1, cpu, original)
            return
        del _PINS[tid]
    if original != {cpu}:
        try:
            os.sched_setaffinity(tid, original)
        except (ProcessLookupError, PermissionError, OSError):
            pass  # the thread is gone
