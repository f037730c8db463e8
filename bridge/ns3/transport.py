"""Transports under OpenGymConnection: ZeroMQ REP (ns3-gym's wire) and a Unix stream socket.

Both carry the same protobuf messages in the same lock-step sequence; only the framing differs.

- :class:`ZmqTransport` (``tcp``, ``ipc``, ``tcp://127.0.0.1:<port>``, ``ipc://<path>``): a ZMQ
  REP socket, what ns3-gym scenarios connect to. Default.
- :class:`UnixStreamTransport` (``unix``, ``unix://<path>``): an AF_UNIX SOCK_STREAM socket on
  which every message is preceded by its length (4 bytes, little-endian). Only our own
  scenarios speak it (``--openGymEndpoint=unix://...``). It exists for speed: a ZeroMQ round
  trip passes each message through a ZMQ I/O thread on both sides (about six thread hand-offs),
  while here a send is one system call and a receive usually one, so both processes can share
  one CPU without waking any other thread.

Python listens, the scenario connects. Receives wait at most one poll slice and return None
when nothing arrived, so the caller can check the scenario process and its deadline; a peer
that closed its end raises :class:`PeerClosed`.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import struct
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path

import zmq

from bridge.contract.errors import EnvironmentFailure
from bridge.ns3.rundir import run_dir
from bridge.protocol.errors import ProtocolError

__all__ = [
    "MAX_FRAME_BYTES",
    "PeerClosed",
    "Transport",
    "UnixStreamTransport",
    "ZmqTransport",
    "is_unix_endpoint",
    "open_transport",
]

#: Largest message either side accepts on the Unix transport (a larger length prefix is a
#: ProtocolError). Same limit as the C++ side (UnixStreamOpenGymTransport::MAX_FRAME_BYTES).
MAX_FRAME_BYTES = 256 << 20

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_HEADER = struct.Struct("<I")
_INITIAL_BUFFER_BYTES = 64 * 1024
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_IPC_COUNTER = itertools.count()


class PeerClosed(EnvironmentFailure, ConnectionError):
    """The scenario closed its end of the connection (it exited or gave up)."""


def is_unix_endpoint(endpoint: str) -> bool:
    """True for the length-prefixed Unix stream transport (``unix`` or ``unix://<path>``)."""
    return endpoint == "unix" or endpoint.startswith("unix://")


class Transport(ABC):
    """One listening endpoint that exactly one scenario process connects to."""

    #: Endpoint the scenario is told to connect to (``tcp://127.0.0.1:5555``, ``unix:///...``).
    endpoint: str
    #: TCP port for ``--openGymPort`` (ns3-gym convention), None for other endpoints.
    port: int | None = None

    def scenario_flags(self) -> list[str]:
        """Flags that tell a scenario where to connect (ns3-gym's ``--openGymPort`` for TCP)."""
        if self.port is not None:
            return [f"--openGymPort={self.port}"]
        return [f"--openGymEndpoint={self.endpoint}"]

    @abstractmethod
    def recv(self) -> bytes | None:
        """One whole message, waiting at most one poll slice; None if nothing arrived."""

    @abstractmethod
    def recv_nowait(self) -> bytes | None:
        """One whole message if it has fully arrived, else None (never blocks)."""

    @abstractmethod
    def send(self, message: bytes) -> None:
        """Send one message (the peer is waiting for it: lock step)."""

    @abstractmethod
    def poll_handle(self) -> zmq.Socket | int:
        """What a ``zmq.Poller`` watches for this transport (may change once, at connect)."""

    @abstractmethod
    def close(self) -> None:
        """Close the sockets and remove any socket file this transport created (idempotent)."""


# ------------------------------------------------------------------------------------ ZeroMQ
def _ipc_dir() -> Path:
    """Where ``ipc`` sockets go: inside the run directory, so no exit leaves them behind."""
    path = run_dir() / "zmq"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _check_loopback(endpoint: str) -> None:
    host = endpoint[len("tcp://") :].rsplit(":", 1)[0]
    if host not in _LOOPBACK_HOSTS:
        raise ValueError(
            f"endpoint={endpoint!r}: the bridge binds on loopback only "
            "(expected tcp://127.0.0.1[:port], 'tcp', 'ipc', ipc://<path>, 'unix' or unix://<path>)"
        )


class ZmqTransport(Transport):
    """ZMQ REP socket: ns3-gym's transport (the scenario connects a REQ socket)."""

    def __init__(
        self, endpoint: str, *, context: zmq.Context | None = None, poll_interval_s: float = 0.1
    ) -> None:
        self._ipc_path: Path | None = None
        ctx = context if context is not None else zmq.Context.instance()
        self.socket: zmq.Socket = ctx.socket(zmq.REP)
        try:
            self.socket.setsockopt(zmq.LINGER, 0)
            self.socket.setsockopt(zmq.RCVTIMEO, max(1, int(poll_interval_s * 1000)))
            self.endpoint = self._bind(endpoint)
        except BaseException:
            self.socket.close(linger=0)
            raise

    def _bind(self, endpoint: str) -> str:
        if endpoint == "tcp":
            self.port = self.socket.bind_to_random_port("tcp://127.0.0.1")
            return f"tcp://127.0.0.1:{self.port}"
        if endpoint == "ipc":
            path = _ipc_dir() / f"{os.getpid()}-{next(_IPC_COUNTER)}.sock"
            self._ipc_path = path
            endpoint = f"ipc://{path}"
            self.socket.bind(endpoint)
            return endpoint
        if endpoint.startswith("tcp://"):
            _check_loopback(endpoint)
            self.socket.bind(endpoint)
            resolved = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
            self.port = int(resolved.rsplit(":", 1)[1])
            return resolved
        if endpoint.startswith("ipc://"):
            self.socket.bind(endpoint)
            return endpoint
        raise ValueError(
            f"endpoint={endpoint!r}, expected 'tcp', 'ipc', 'unix', tcp://127.0.0.1:<port>, "
            "ipc://<path> or unix://<path>"
        )

    def recv(self) -> bytes | None:
        try:
            return self.socket.recv()  # RCVTIMEO is the poll slice
        except zmq.Again:
            return None

    def recv_nowait(self) -> bytes | None:
        try:
            return self.socket.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None

    def send(self, message: bytes) -> None:
        self.socket.send(message)

    def poll_handle(self) -> zmq.Socket:
        return self.socket

    def close(self) -> None:
        self.socket.close(linger=0)
        if self._ipc_path is not None:
            try:
                self._ipc_path.unlink()
            except FileNotFoundError:
                pass


# ------------------------------------------------------------------------------ Unix stream
def _timeval(seconds: float) -> bytes:
    micros = max(1000, int(seconds * 1e6))
    return struct.pack("ll", micros // 1_000_000, micros % 1_000_000)


class UnixStreamTransport(Transport):
    """AF_UNIX stream socket carrying length-prefixed messages (``unix`` / ``unix://<path>``).

    ``"unix"`` puts the socket file in a fresh private directory (``mkdtemp``: mode 0700, so
    no other user can connect) that :meth:`close` removes. With ``unix://<path>`` the caller
    chooses the file; it must not exist yet and is removed as well. The file is unlinked as
    soon as the scenario has connected: one peer per socket, and nothing is left behind
    even if this process is killed later.

    The connected socket is blocking with ``SO_RCVTIMEO`` set to the poll slice, so a receive
    is a single ``recv`` system call (no select/poll first) and still returns within a slice.
    """

    def __init__(
        self, endpoint: str, *, poll_interval_s: float = 0.1, send_timeout_s: float = 120.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self.max_frame_bytes = min(int(max_frame_bytes), MAX_FRAME_BYTES)
        self._own_dir: Path | None = None
        if endpoint == "unix":
            base = None
            # sun_path holds 107 bytes: fall back to /tmp if $TMPDIR is very long
            if len(tempfile.gettempdir()) > _SUN_PATH_MAX - 40:
                base = "/tmp"
            self._own_dir = Path(tempfile.mkdtemp(prefix="iabmeta-gym-", dir=base))
            path = self._own_dir / "gym.sock"
        elif endpoint.startswith("unix://"):
            path = Path(endpoint[len("unix://") :])
        else:
            raise ValueError(f"endpoint={endpoint!r}, expected 'unix' or unix://<path>")
        self.path: Path | None = None  # set once bound: only a file we created is removed
        self.endpoint = f"unix://{path}"
        self.slice_s = float(poll_interval_s)
        self.send_timeout_s = float(send_timeout_s)
        self._sock: socket.socket | None = None
        self._broken = False  # a send found the peer gone; the next receive reports it
        self._buffer = bytearray(_INITIAL_BUFFER_BYTES)
        self._view = memoryview(self._buffer)
        self._filled = 0
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if len(os.fsencode(path)) > _SUN_PATH_MAX:
                raise ValueError(
                    f"endpoint={endpoint!r}: the socket path has {len(os.fsencode(path))} "
                    f"bytes, expected at most {_SUN_PATH_MAX} (sockaddr_un limit)"
                )
            try:
                self._listener.bind(os.fspath(path))
            except OSError as exc:
                raise OSError(
                    exc.errno, f"cannot bind Unix socket {path} ({exc.strerror})"
                ) from None
            self.path = path
            if self._own_dir is None:
                os.chmod(path, 0o600)
            self._listener.listen(1)
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------------------- connect
    def _accept(self, wait_s: float) -> bool:
        listener = self._listener
        if listener is None:
            return False
        listener.settimeout(wait_s if wait_s > 0 else 0.0)
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, TimeoutError):
            return False
        sock.setblocking(True)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(self.slice_s))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(self.slice_s))
        self._sock = sock
        listener.close()
        self._listener = None
        self._remove_file()
        return True

    @property
    def connected(self) -> bool:
        """True once the scenario has connected."""
        return self._sock is not None

    # ---------------------------------------------------------------------------- frames
    def _take_frame(self) -> bytes | None:
        """Cut one whole message out of the buffer, or None if it has not fully arrived."""
        filled = self._filled
        if filled < 4:
            return None
        (length,) = _HEADER.unpack_from(self._buffer)
        if length > self.max_frame_bytes:
            raise ProtocolError(
                f"frame from the scenario on {self.endpoint} announces {length} bytes, more than "
                f"the limit of {self.max_frame_bytes} (expected a 4-byte little-endian length "
                "prefix followed by an ns3opengym message)"
            )
        end = 4 + length
        if filled < end:
            if len(self._buffer) < end:
                grown = bytearray(max(end, 2 * len(self._buffer)))
                grown[:filled] = self._view[:filled]
                self._view.release()
                self._buffer, self._view = grown, memoryview(grown)
            return None
        message = bytes(self._view[4:end])
        if filled == end:
            self._filled = 0
        else:
            self._buffer[: filled - end] = self._view[end:filled]
            self._filled = filled - end
        return message

    def _peer_closed(self) -> PeerClosed:
        text = f"the scenario closed {self.endpoint}"
        if self._filled:
            text += f" in the middle of a frame ({self._filled} bytes buffered)"
        return PeerClosed(text)

    def _read(self, flags: int) -> bytes | None:
        sock = self._sock
        assert sock is not None
        while True:
            message = self._take_frame()
            if message is not None:
                return message
            try:
                n = sock.recv_into(self._view[self._filled :], 0, flags)
            except BlockingIOError:  # slice over (SO_RCVTIMEO) or nothing there (MSG_DONTWAIT)
                return None
            except ConnectionResetError:
                n = 0
            if n == 0:
                raise self._peer_closed()
            self._filled += n

    def recv(self) -> bytes | None:
        if self._sock is None and not self._accept(self.slice_s):
            return None
        return self._read(0)

    def recv_nowait(self) -> bytes | None:
        if self._sock is None and not self._accept(0.0):
            return None
        return self._read(socket.MSG_DONTWAIT)

    def send(self, message: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise RuntimeError(f"send on {self.endpoint} before the scenario connected")
        if self._broken:
            return
        if len(message) > MAX_FRAME_BYTES:
            raise ValueError(
                f"message of {len(message)} bytes exceeds the frame limit of {MAX_FRAME_BYTES}"
            )
        data = _HEADER.pack(len(message)) + message
        sent = 0
        deadline: float | None = None
        try:
            while True:
                try:
                    sent += sock.send(data if not sent else memoryview(data)[sent:])
                except BlockingIOError:
                    # a slice (SO_SNDTIMEO) passed with a full socket buffer: only a large
                    # message to a scenario that does not read gets here
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + self.send_timeout_s
                    elif now > deadline:
                        raise TimeoutError(
                            f"could not send {len(data)} bytes on {self.endpoint} within "
                            f"{self.send_timeout_s:g} s: the scenario does not read"
                        ) from None
                if sent == len(data):
                    return
        except (BrokenPipeError, ConnectionResetError):
            # Like ZMQ, a send to a vanished peer does not fail: the receive that follows
            # sees the closed socket and reports the exit status of the process.
            self._broken = True

    def poll_handle(self) -> int:
        if self._sock is not None:
            return self._sock.fileno()
        assert self._listener is not None
        return self._listener.fileno()

    # ---------------------------------------------------------------------------- close
    def _remove_file(self) -> None:
        if self.path is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            self.path = None
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    def close(self) -> None:
        for sock in (self._sock, self._listener):
            if sock is not None:
                sock.close()
        self._sock = self._listener = None
        self._remove_file()


def open_transport(
    endpoint: str,
    *,
    context: zmq.Context | None = None,
    poll_interval_s: float = 0.1,
    send_timeout_s: float = 120.0,
    max_frame_bytes: int = MAX_FRAME_BYTES,
) -> Transport:
    """Bind the transport that ``endpoint`` names (see the module docstring).

    ``max_frame_bytes`` bounds a received message on the Unix transport (checked on its
    length prefix, before it is read); ZeroMQ delivers whole messages, so the connection
    checks their size after receipt."""
    if is_unix_endpoint(endpoint):
        return UnixStreamTransport(
            endpoint, poll_interval_s=poll_interval_s, send_timeout_s=send_timeout_s,
            max_frame_bytes=max_frame_bytes,
        )
    return ZmqTransport(endpoint, context=context, poll_interval_s=poll_interval_s)
