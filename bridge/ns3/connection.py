"""Python (ZMQ REP) end of the ns3-gym protocol: handshake, states, actions, all with timeouts."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from google.protobuf.message import DecodeError
from gymnasium import spaces

from bridge.ns3.process import ScenarioProcess, format_exit_status
from bridge.protocol import ns3opengym_pb2 as pb
from bridge.protocol.codec import SpaceCodec, proto_to_space
from bridge.protocol.errors import ProtocolError

__all__ = [
    "EnvState",
    "OpenGymConnection",
    "SimInit",
    "SimulatorDied",
    "SimulatorError",
    "SimulatorTimeout",
    "wait_all",
]

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_IPC_DIR: Path | None = None
_IPC_COUNTER = itertools.count()


class SimulatorError(RuntimeError):
    """The scenario process failed; the message names it, its state and its stderr tail."""


class SimulatorDied(SimulatorError):
    """The scenario process exited while Python waited for a message."""

    def __init__(self, message: str, returncode: int | None, stderr_tail: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class SimulatorTimeout(SimulatorError):
    """No message arrived within the configured timeout (the process is still running)."""


@dataclass(frozen=True)
class SimInit:
    """Content of the handshake: both spaces and the process ids the scenario reported."""

    observation_space: spaces.Space
    action_space: spaces.Space
    sim_pid: int
    shell_pid: int


@dataclass
class EnvState:
    """One EnvStateMsg, decoded.

    ``reason`` is ``"GameOver"`` or ``"SimulationEnd"`` when ``game_over`` is true, else ``""``.
    A game over maps to Gymnasium's ``terminated``; the end of the simulation time (the
    scenario ran out of simulated time without a game over) maps to ``truncated``.
    """

    obs: Any
    reward: float
    game_over: bool
    reason: str
    info: str

    @property
    def terminated(self) -> bool:
        return self.game_over and self.reason == "GameOver"

    @property
    def truncated(self) -> bool:
        return self.game_over and self.reason == "SimulationEnd"


def _ipc_dir() -> Path:
    global _IPC_DIR
    if _IPC_DIR is None:
        _IPC_DIR = Path(tempfile.mkdtemp(prefix="iabmeta-zmq-"))
        atexit.register(shutil.rmtree, _IPC_DIR, True)
    return _IPC_DIR


def _check_loopback(endpoint: str) -> None:
    host = endpoint[len("tcp://") :].rsplit(":", 1)[0]
    if host not in _LOOPBACK_HOSTS:
        raise ValueError(
            f"endpoint={endpoint!r}: the bridge binds on loopback only "
            "(expected tcp://127.0.0.1[:port], 'tcp', 'ipc' or ipc://<path>)"
        )


class OpenGymConnection:
    """A ZMQ REP socket that one scenario process connects to, and the protocol state on it.

    ``endpoint``: ``"tcp"`` (default; binds ``tcp://127.0.0.1`` on a port chosen by the OS, so
    any number of connections never collide), ``"ipc"`` (a fresh Unix socket in a private
    temporary directory), or an explicit ``tcp://127.0.0.1:<port>`` / ``ipc://<path>``.

    The sequence is ns3-gym's: receive SimInitMsg, answer SimInitAck; then receive EnvStateMsg,
    answer EnvActMsg, until a game-over state, which is answered with ``stopSimReq=true``.
    Every receive waits at most ``connect_timeout_s`` (handshake) or ``step_timeout_s`` and
    checks every ``poll_interval_s`` whether the attached process is still alive. Blocking
    receives first busy-poll for up to ``spin_s`` (0 disables it; see ``_recv_blocking``).
    """

    def __init__(
        self,
        endpoint: str = "tcp",
        *,
        context: zmq.Context | None = None,
        connect_timeout_s: float = 30.0,
        step_timeout_s: float = 120.0,
        poll_interval_s: float = 0.1,
        spin_s: float = 0.0002,
        stderr_lines: int = 20,
    ) -> None:
        if connect_timeout_s <= 0 or step_timeout_s <= 0 or poll_interval_s <= 0:
            raise ValueError(
                f"connect_timeout_s={connect_timeout_s}, step_timeout_s={step_timeout_s}, "
                f"poll_interval_s={poll_interval_s}: expected positive numbers of seconds"
            )
        self.connect_timeout_s = float(connect_timeout_s)
        self.step_timeout_s = float(step_timeout_s)
        self.poll_interval_s = float(poll_interval_s)
        self.stderr_lines = stderr_lines
        self.spin_s = float(spin_s)
        self._spin_ok = True
        self._spin_probe = 0
        self.process: ScenarioProcess | None = None
        self.init: SimInit | None = None
        self.port: int | None = None
        self._ipc_path: Path | None = None
        self._closed = False
        # what the peer owes us next, and whether we owe the peer a reply
        self.expecting: str | None = "SimInitMsg"
        self._owe_reply = False
        self.deadline = time.monotonic() + self.connect_timeout_s
        self._state_msg = pb.EnvStateMsg()
        self._act_msg = pb.EnvActMsg()
        self._stop_bytes = pb.EnvActMsg(stopSimReq=True).SerializeToString()
        self._obs_codec: SpaceCodec | None = None
        self._act_codec: SpaceCodec | None = None

        ctx = context if context is not None else zmq.Context.instance()
        self.socket: zmq.Socket = ctx.socket(zmq.REP)
        try:
            self.socket.setsockopt(zmq.LINGER, 0)
            self.socket.setsockopt(zmq.RCVTIMEO, max(1, int(self.poll_interval_s * 1000)))
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
            f"endpoint={endpoint!r}, expected 'tcp', 'ipc', tcp://127.0.0.1:<port> or ipc://<path>"
        )

    # ------------------------------------------------------------------------------ launch
    def scenario_flags(self) -> list[str]:
        """Flags that tell a scenario where to connect (ns3-gym's ``--openGymPort`` for TCP)."""
        if self.port is not None:
            return [f"--openGymPort={self.port}"]
        return [f"--openGymEndpoint={self.endpoint}"]

    @classmethod
    def launch(
        cls,
        binary: str | os.PathLike[str],
        scenario_args: Sequence[str] = (),
        *,
        endpoint: str = "tcp",
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        stdout_path: str | os.PathLike[str] | None = None,
        context: zmq.Context | None = None,
        **timeouts: float,
    ) -> OpenGymConnection:
        """Bind a socket and start ``binary *scenario_args <endpoint flags>`` attached to it."""
        conn = cls(endpoint, context=context, **timeouts)
        try:
            argv = [os.fspath(binary), *scenario_args, *conn.scenario_flags()]
            conn.attach(ScenarioProcess(argv, cwd=cwd, env=env, stdout_path=stdout_path))
        except BaseException:
            conn.close()
            raise
        return conn

    def attach(self, process: ScenarioProcess) -> None:
        """Watch (and own: :meth:`close` stops it) the process that connects to this socket."""
        self.process = process
        self.deadline = time.monotonic() + self.connect_timeout_s

    # ------------------------------------------------------------------------------ receive
    def _describe_peer(self) -> str:
        if self.process is None:
            return f"peer on {self.endpoint}"
        return f"{self.process.name} (pid {self.process.pid})"

    def check_alive(self) -> None:
        """Raise SimulatorDied if the process exited, SimulatorTimeout if the deadline passed."""
        proc = self.process
        what = self.expecting or "a message"
        if proc is not None and proc.poll() is not None:
            tail = proc.stderr_tail(self.stderr_lines)
            status = format_exit_status(proc.returncode)
            message = (
                f"scenario {proc.name} (pid {proc.pid}) died with {status} while Python waited "
                f"for {what} on {self.endpoint}"
            )
            message += f"; last stderr lines:\n{tail}" if tail else "; nothing on stderr"
            raise SimulatorDied(message, proc.returncode, tail)
        if time.monotonic() > self.deadline:
            limit = "connect_timeout_s" if what == "SimInitMsg" else "step_timeout_s"
            seconds = self.connect_timeout_s if what == "SimInitMsg" else self.step_timeout_s
            message = (
                f"no {what} from {self._describe_peer()} on {self.endpoint} within "
                f"{seconds:g} s ({limit})"
            )
            if proc is not None:
                tail = proc.stderr_tail(self.stderr_lines)
                message += "; it is still running"
                message += f"; last stderr lines:\n{tail}" if tail else "; nothing on stderr"
            raise SimulatorTimeout(message)

    def _recv_blocking(self) -> bytes:
        if self._closed:
            raise RuntimeError(f"connection on {self.endpoint} is closed")
        if self._owe_reply:
            raise RuntimeError(
                f"connection on {self.endpoint}: a received message has not been answered yet"
            )
        sock = self.socket
        if self.spin_s > 0 and (self._spin_ok or self._spin_probe <= 0):
            # Busy-poll briefly: a fast peer usually answers within tens of microseconds, and
            # not sleeping on the socket saves a thread wake-up per message (about 2x the
            # round trips/s on loopback). Only one side may spin on a 2-core machine, and the
            # scenario side never does. A slow peer turns spinning off (re-probed now and then).
            self._spin_probe = 64
            end = time.perf_counter() + self.spin_s
            while True:
                try:
                    raw = sock.recv(zmq.NOBLOCK)
                    self._spin_ok = True
                    return raw
                except zmq.Again:
                    if time.perf_counter() > end:
                        break
            self._spin_ok = False
        else:
            self._spin_probe -= 1
        while True:
            try:
                return sock.recv()
            except zmq.Again:
                pass
            try:
                self.check_alive()
            except SimulatorDied:
                # the last message may have arrived just before the exit
                try:
                    return sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    pass
                raise

    def try_receive(self) -> SimInit | EnvState | None:
        """Non-blocking: handle one pending message if there is one.

        A SimInitMsg is answered at once (SimInitAck) and returned; an EnvStateMsg is returned
        and must be answered with :meth:`send_action` or :meth:`send_stop`.
        """
        try:
            raw = self.socket.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None
        return self._dispatch(raw)

    def _dispatch(self, raw: bytes) -> SimInit | EnvState:
        if self.expecting == "SimInitMsg":
            return self._on_init(raw)
        if self.expecting == "EnvStateMsg":
            return self._on_state(raw)
        raise ProtocolError(
            f"received {len(raw)} bytes from {self._describe_peer()} after the episode ended "
            "(expected nothing: stopSimReq was sent)"
        )

    def handshake(self) -> SimInit:
        """Receive the SimInitMsg, answer SimInitAck and return both spaces."""
        if self.expecting != "SimInitMsg":
            raise RuntimeError(f"handshake already done on {self.endpoint}")
        result = self._dispatch(self._recv_blocking())
        assert isinstance(result, SimInit)
        return result

    def receive_state(self, *, auto_stop: bool = True) -> EnvState:
        """Receive the next EnvStateMsg; answer a game over with stopSimReq if ``auto_stop``."""
        if self.expecting == "SimInitMsg":
            self.handshake()
        state = self._dispatch(self._recv_blocking())
        assert isinstance(state, EnvState)
        if state.game_over and auto_stop:
            self.send_stop()
        return state

    def _on_init(self, raw: bytes) -> SimInit:
        msg = pb.SimInitMsg()
        try:
            msg.ParseFromString(raw)
        except DecodeError as exc:
            raise ProtocolError(
                f"{len(raw)} bytes from {self._describe_peer()} do not parse as the expected "
                f"ns3opengym.SimInitMsg: {exc}"
            ) from exc
        for name in ("obsSpace", "actSpace"):
            if not msg.HasField(name):
                raise ProtocolError(
                    f"SimInitMsg from {self._describe_peer()} has no {name} "
                    f"(expected ns3opengym.SimInitMsg with both spaces, got {len(raw)} bytes)"
                )
        obs_space = proto_to_space(msg.obsSpace, "SimInitMsg.obsSpace")
        act_space = proto_to_space(msg.actSpace, "SimInitMsg.actSpace")
        self._obs_codec = SpaceCodec(obs_space)
        self._act_codec = SpaceCodec(act_space)
        self.init = SimInit(obs_space, act_space, int(msg.simProcessId), int(msg.wafShellProcessId))
        self.socket.send(pb.SimInitAck(done=True, stopSimReq=False).SerializeToString())
        self.expecting = "EnvStateMsg"
        self.deadline = time.monotonic() + self.step_timeout_s
        return self.init

    def _on_state(self, raw: bytes) -> EnvState:
        msg = self._state_msg
        try:
            msg.ParseFromString(raw)
        except DecodeError as exc:
            raise ProtocolError(
                f"{len(raw)} bytes from {self._describe_peer()} do not parse as the expected "
                f"ns3opengym.EnvStateMsg: {exc}"
            ) from exc
        if not msg.HasField("obsData"):
            raise ProtocolError(
                f"message from {self._describe_peer()} ({len(raw)} bytes) is not an "
                "EnvStateMsg: expected ns3opengym.EnvStateMsg with obsData"
            )
        assert self._obs_codec is not None
        obs = self._obs_codec.decode(msg.obsData, "EnvStateMsg.obsData")
        game_over = msg.isGameOver
        if game_over:
            reason = "GameOver" if msg.reason == pb.EnvStateMsg.GameOver else "SimulationEnd"
        else:
            reason = ""
        self._owe_reply = True
        return EnvState(obs, float(msg.reward), game_over, reason, msg.info)

    # ------------------------------------------------------------------------------ send
    @property
    def action_codec(self) -> SpaceCodec:
        """Codec of the action space (available after the handshake)."""
        if self._act_codec is None:
            raise RuntimeError(f"no handshake yet on {self.endpoint}: the action space is unknown")
        return self._act_codec

    def check_action(self, action: Any) -> Any:
        """Validate an action against the action space; ValueError names the problem."""
        return self.action_codec.check(action, "action")

    def send_action(self, action: Any, *, validate: bool = True) -> None:
        """Answer the pending EnvStateMsg with ``action`` (validated first unless told not to)."""
        codec = self.action_codec
        if validate:
            action = codec.check(action, "action")
        if not self._owe_reply:
            raise RuntimeError(
                f"connection on {self.endpoint}: no EnvStateMsg is waiting for an action"
            )
        msg = self._act_msg
        codec.encode(action, msg.actData, validate=False)
        self.socket.send(msg.SerializeToString())
        self._owe_reply = False
        self.deadline = time.monotonic() + self.step_timeout_s

    def send_stop(self) -> None:
        """Answer the pending EnvStateMsg with stopSimReq=true; the scenario then exits."""
        if not self._owe_reply:
            raise RuntimeError(
                f"connection on {self.endpoint}: no EnvStateMsg is waiting for an answer"
            )
        self.socket.send(self._stop_bytes)
        self._owe_reply = False
        self.expecting = None

    # ------------------------------------------------------------------------------ close
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, *, exit_grace_s: float = 1.0) -> None:
        """Close the socket and stop the attached process (idempotent).

        After a stop request the scenario gets ``exit_grace_s`` to exit on its own before it
        is terminated (SIGTERM, then SIGKILL) and reaped.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self.process is not None:
                if self.expecting is None and self.process.is_alive():
                    self.process.wait(exit_grace_s)
                self.process.close()
        finally:
            self.socket.close(linger=0)
            if self._ipc_path is not None:
                try:
                    self._ipc_path.unlink()
                except FileNotFoundError:
                    pass

    def __enter__(self) -> OpenGymConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenGymConnection({self.endpoint}, process={self.process!r})"


def wait_all(
    connections: Iterable[OpenGymConnection],
    *,
    until: type[SimInit] | type[EnvState] = EnvState,
    poll_interval_s: float = 0.1,
) -> dict[OpenGymConnection, Any]:
    """Wait until each connection has delivered its next ``until`` message; return them.

    Multiplexes all sockets with one ``zmq.Poller`` (no threads). SimInitMsg handshakes are
    answered on the way; with ``until=EnvState`` (default) a freshly launched connection keeps
    waiting for its first EnvStateMsg. Each connection keeps its own deadline and liveness
    check. Raises the first SimulatorDied / SimulatorTimeout / ProtocolError met.
    """
    pending = {conn.socket: conn for conn in connections}
    results: dict[OpenGymConnection, Any] = {}
    poller = zmq.Poller()
    for sock in pending:
        poller.register(sock, zmq.POLLIN)

    def finish(sock: zmq.Socket, conn: OpenGymConnection, result: Any) -> None:
        results[conn] = result
        poller.unregister(sock)
        del pending[sock]

    last_check = time.monotonic()
    while pending:
        events = dict(poller.poll(int(poll_interval_s * 1000)))
        for sock in events:
            conn = pending[sock]
            while True:
                result = conn.try_receive()
                if result is None:
                    break
                if isinstance(result, until):
                    finish(sock, conn, result)
                    break
        now = time.monotonic()
        if not events or now - last_check >= poll_interval_s:
            last_check = now
            for sock, conn in list(pending.items()):
                try:
                    conn.check_alive()
                except SimulatorDied:
                    # the awaited message may have arrived just before the exit
                    result = conn.try_receive()
                    if isinstance(result, until):
                        finish(sock, conn, result)
                        continue
                    raise
    return results
