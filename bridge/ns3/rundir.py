"""The bridge's per-process temporary directory, removed at exit, on SIGTERM, or by the next run.

Scenario instances (JSON files the scenarios read at start-up) and ZeroMQ ``ipc://`` sockets
live in one directory per Python process, ``$TMPDIR/iabmeta-run-<pid>-<random>``. It is
removed at interpreter exit and by the SIGTERM/SIGHUP handler of :mod:`bridge.ns3.process`;
a process killed with SIGKILL cannot clean up, so whoever creates the next run directory
removes every run directory of this user whose owner pid no longer exists.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

__all__ = ["RUN_DIR_PREFIX", "remove_run_dir", "run_dir", "sweep_stale_run_dirs",
           "write_instance_file"]

RUN_DIR_PREFIX = "iabmeta-run-"

_LOCK = threading.Lock()
_RUN_DIR: Path | None = None
_OWNER_PID = 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def sweep_stale_run_dirs(base: str | os.PathLike[str] | None = None) -> int:
    """Remove this user's run directories under ``base`` (default: the temporary directory)
    whose owner process is gone; return how many were removed."""
    root = Path(base) if base is not None else Path(tempfile.gettempdir())
    removed = 0
    try:
        entries = list(root.glob(f"{RUN_DIR_PREFIX}*"))
    except OSError:
        return 0
    for entry in entries:
        pid_text = entry.name[len(RUN_DIR_PREFIX):].split("-", 1)[0]
        try:
            pid = int(pid_text)
            if entry.is_symlink() or not entry.is_dir() or entry.stat().st_uid != os.getuid():
                continue
        except (ValueError, OSError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def run_dir() -> Path:
    """This process's run directory (mode 0700), created on first use (also after a fork)."""
    global _RUN_DIR, _OWNER_PID
    with _LOCK:
        if _RUN_DIR is None or _OWNER_PID != os.getpid():
            sweep_stale_run_dirs()
            _RUN_DIR = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-"))
            _OWNER_PID = os.getpid()
        return _RUN_DIR


def remove_run_dir() -> None:
    """Remove this process's run directory with everything in it (idempotent)."""
    global _RUN_DIR
    with _LOCK:
        if _RUN_DIR is not None and _OWNER_PID == os.getpid():
            shutil.rmtree(_RUN_DIR, ignore_errors=True)
        _RUN_DIR = None


atexit.register(remove_run_dir)


def write_instance_file(instance: dict) -> Path:
    """Write a scenario instance (``ScenarioInstance.to_dict()``) as JSON into the run
    directory; return its path (the caller removes it when its scenario is done)."""
    fd, path = tempfile.mkstemp(prefix="iab-instance-", suffix=".json", dir=run_dir())
    with os.fdopen(fd, "w") as f:
        json.dump(instance, f)
    return Path(path)
