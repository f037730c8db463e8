"""Owner of one scenario child process: launch without a shell, watch, stop and reap."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

from bridge.ns3.rundir import remove_run_dir

__all__ = ["ScenarioProcess", "format_exit_status"]

_LIVE: weakref.WeakSet[ScenarioProcess] = weakref.WeakSet()
_HANDLERS_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def format_exit_status(returncode: int | None) -> str:
    """Describe a Popen return code: ``exit code 3`` or ``killed by signal SIGKILL``."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"killed by signal {name}"
    return f"exit code {returncode}"


def _stop_group(popen: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``grace_s``, then reap the child.

    The group is only signalled while the child is unreaped (even as a zombie it still holds
    its pid and so the group id), so a signal can never reach an unrelated process that
    reused the pid.
    """
    if popen.returncode is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            popen.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _cleanup(popen: subprocess.Popen[bytes], files: list[IO[bytes]], grace_s: float) -> None:
    try:
        _stop_group(popen, grace_s)
    finally:
        for f in files:
            try:
                f.close()
            except OSError:
                pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Stop every live scenario and remove the run directory (atexit does not run on a
    signal), then let the signal do what it would have done."""
    for proc in list(_LIVE):
        proc.close(grace_s=0.2)
    remove_run_dir()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_signal_handlers() -> None:
    """On SIGTERM/SIGHUP (which skip atexit), stop the children before dying.

    Only replaces the default disposition and only from the main thread: an application that
    handles these signals itself keeps its handler (and then atexit/finalizers still run on a
    normal exit). SIGINT needs nothing: KeyboardInterrupt unwinds and the finalizers run.
    """
    global _HANDLERS_INSTALLED
    with _HANDLERS_LOCK:
        if _HANDLERS_INSTALLED or threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _on_signal)
        _HANDLERS_INSTALLED = True


class ScenarioProcess:
    """A scenario binary running in its own session / process group.

    The argv list is executed directly (never through a shell). stderr goes to an anonymous
    temporary file whose tail :meth:`stderr_tail` returns; stdout goes to ``/dev/null`` unless
    ``stdout_path`` is given. :meth:`close` (also run by a ``weakref.finalize`` at garbage
    collection and interpreter exit, and on SIGTERM/SIGHUP of the parent) terminates the whole
    group, escalates to SIGKILL after ``grace_s`` and reaps the child: no orphans, no zombies.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        stdout_path: str | os.PathLike[str] | None = None,
        grace_s: float = 1.0,
    ) -> None:
        if not argv:
            raise ValueError("argv is empty, expected [binary, *flags]")
        self.argv = [os.fspath(a) for a in argv]
        binary = Path(self.argv[0])
        if not binary.is_file() or not os.access(binary, os.X_OK):
            raise FileNotFoundError(f"scenario binary {binary} does not exist or is not executable")
        self.grace_s = grace_s
        self._stderr = tempfile.TemporaryFile(prefix="ns3-scenario-", suffix=".stderr")
        files: list[IO[bytes]] = [self._stderr]
        stdout: Any = subprocess.DEVNULL
        if stdout_path is not None:
            stdout = open(stdout_path, "wb")  # closed by the finalizer
            files.append(stdout)
        _install_signal_handlers()
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=self._stderr,
                cwd=cwd,
                env=None if env is None else dict(env),
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            for f in files:
                f.close()
            raise
        self.started_at = time.monotonic()
        self._finalizer = weakref.finalize(self, _cleanup, self._popen, files, grace_s)
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        """Process id (also the process group id) of the child."""
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """Exit status as reported by Popen (negative: killed by that signal); None if running."""
        return self._popen.returncode

    @property
    def name(self) -> str:
        """Binary file name, for messages."""
        return Path(self.argv[0]).name

    def poll(self) -> int | None:
        """Return the exit status if the child has exited (reaping it), else None."""
        return self._popen.poll()

    def is_alive(self) -> bool:
        """True while the child has not exited."""
        return self._popen.poll() is None

    def wait(self, timeout_s: float) -> int | None:
        """Wait up to ``timeout_s`` for a voluntary exit; return the status or None."""
        try:
            return self._popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stderr_tail(self, lines: int = 20, max_bytes: int = 16384) -> str:
        """Last ``lines`` lines the child wrote to stderr (empty string if none or closed)."""
        try:
            fd = self._stderr.fileno()
            size = os.fstat(fd).st_size
            start = max(0, size - max_bytes)
            data = os.pread(fd, size - start, start)
        except (OSError, ValueError):
            return ""
        text = data.decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def describe_exit(self, lines: int = 20) -> str:
        """``<binary> (pid N) exited with exit code 3; last stderr lines: ...``."""
        status = format_exit_status(self.poll())
        tail = self.stderr_tail(lines)
        text = f"{self.name} (pid {self.pid}) {status}"
        if tail:
            text += f"; last {len(tail.splitlines())} stderr lines:\n{tail}"
        else:
            text += "; nothing on stderr"
        return text

    def close(self, grace_s: float | None = None) -> int | None:
        """Stop the process group (SIGTERM, then SIGKILL after the grace) and reap the child.

        Idempotent. The stderr tail stays readable until the object is garbage collected.
        Returns the exit status.
        """
        _stop_group(self._popen, self.grace_s if grace_s is None else grace_s)
        _LIVE.discard(self)
        return self._popen.returncode

    def __enter__(self) -> ScenarioProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        status = format_exit_status(self.returncode)
        return f"ScenarioProcess({self.name}, pid={self.pid}, {status})"
