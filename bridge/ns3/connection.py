"""Python end of the ns3-gym protocol (ZMQ REP or Unix stream): handshake, states, actions."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import zmq
from google.protobuf.message import DecodeError
from gymnasium import spaces

from bridge.contract.errors import EnvironmentFailure
from bridge.ns3.process import ScenarioProcess, format_exit_status
from bridge.ns3.transport import PeerClosed, Transport, open_transport
from bridge.protocol import ns3opengym_pb2 as pb
from bridge.protocol.codec import DEFAULT_LIMITS, DecodeLimits, SpaceCodec, proto_to_space
from bridge.protocol.errors import ProtocolError

__all__ = [
    "EnvState",
    "OpenGymConnection",
    "SimInit",
    "SimulatorDied",
    "SimulatorError",
    "SimulatorTimeout",
    "decode_sim_init",
    "decode_state",
    "wait_all",
]


#: What the exit codes of our scenarios mean (OpenGymExitCode in opengym-interface.h).
SCENARIO_EXIT_CODES = {
    4: "the scenario gave up on Python (no reply within --openGymTimeout, or its parent died)",
    5: "protocol error: the scenario refused a message from Python",
}


class SimulatorError(EnvironmentFailure):
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


class OpenGymConnection:
    """A socket that one scenario process connects to, and the protocol state on it.

    ``endpoint`` selects the transport (:mod:`bridge.ns3.transport`):

    - ZeroMQ REP, ns3-gym's wire (any ns3-gym scenario): ``"tcp"`` (default; binds
      ``tcp://127.0.0.1`` on a port chosen by the OS, so any number of connections never
      collide), ``"ipc"`` (a ZMQ Unix socket in a private temporary directory), or an explicit
      ``tcp://127.0.0.1:<port>`` / ``ipc://<path>``.
    - Unix stream with length-prefixed frames (our own scenarios only, several times faster per
      round trip): ``"unix"`` (a socket in a fresh private directory, mode 0700) or
      ``unix://<path>``. The scenario gets ``--openGymEndpoint=unix://<path>``.

    The sequence is ns3-gym's: receive SimInitMsg, answer SimInitAck; then receive EnvStateMsg,
    answer EnvActMsg, until a game-over state, which is answered with ``stopSimReq=true``.
    Every receive waits at most ``connect_timeout_s`` (handshake) or ``step_timeout_s`` and
    checks every ``poll_interval_s`` whether the attached process is still alive. Blocking
    receives first busy-poll for up to ``spin_s`` (0 disables it; see ``_recv_blocking``).
    On the Unix transport a scenario that exits closes its socket, which is seen at once; the
    exit status is then awaited for up to ``exit_wait_s`` to report it. Every message from the
    scenario is bounded by ``decode_limits`` (:class:`bridge.protocol.codec.DecodeLimits`).
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
        exit_wait_s: float = 1.0,
        decode_limits: DecodeLimits = DEFAULT_LIMITS,
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
        self.exit_wait_s = float(exit_wait_s)
        self.decode_limits = decode_limits
        self._spin_ok = True
        self._spin_probe = 0
        self.process: ScenarioProcess | None = None
        self.init: SimInit | None = None
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

        self.transport: Transport = open_transport(
            endpoint,
            context=context,
            poll_interval_s=self.poll_interval_s,
            send_timeout_s=self.step_timeout_s,
            max_frame_bytes=decode_limits.max_message_bytes,
        )
        self.endpoint = self.transport.endpoint
        self.port = self.transport.port

    # ------------------------------------------------------------------------------ launch
    def scenario_flags(self) -> list[str]:
        """Flags that tell a scenario where to connect (ns3-gym's ``--openGymPort`` for TCP)."""
        return self.transport.scenario_flags()

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
        **timeouts: Any,
    ) -> OpenGymConnection:
        """Bind a socket and start ``binary *scenario_args <endpoint flags>`` attached to it.

        ``timeouts``: the keyword arguments of the constructor (``connect_timeout_s``,
        ``step_timeout_s``, ``poll_interval_s``, ``spin_s``, ``decode_limits``, ...).
        """
        conn = cls(endpoint, context=context, **timeouts)
        try:
            argv = [os.fspath(binary), *scenario_args, *conn.scenario_flags()]
            # our scenarios watch this pid, not whichever parent they find once their set-up
            # is done (an environment variable: ns3-gym scenarios ignore it)
            child_env = {**(os.environ if env is None else env),
                         "OPENGYM_PARENT_PID": str(os.getpid())}
            conn.attach(ScenarioProcess(argv, cwd=cwd, env=child_env,
                                        stdout_path=stdout_path))
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
            if proc.returncode in SCENARIO_EXIT_CODES:
                status += f" ({SCENARIO_EXIT_CODES[proc.returncode]})"
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

    def _peer_closed(self, exc: PeerClosed) -> NoReturn:
        """The scenario closed its socket: report its exit (waiting up to ``exit_wait_s``)."""
        proc = self.process
        if proc is not None:
            proc.wait(self.exit_wait_s)
        self.check_alive()  # raises SimulatorDied with the exit status and stderr tail
        what = self.expecting or "nothing"
        raise ProtocolError(
            f"{self._describe_peer()} closed its connection ({exc}) while Python waited for "
            f"{what}; it is still running"
        ) from exc

    def _recv_blocking(self) -> bytes:
        if self._closed:
            raise RuntimeError(f"connection on {self.endpoint} is closed")
        if self._owe_reply:
            raise RuntimeError(
                f"connection on {self.endpoint}: a received message has not been answered yet"
            )
        transport = self.transport
        try:
            if self.spin_s > 0 and (self._spin_ok or self._spin_probe <= 0):
                # Busy-poll briefly: a fast peer usually answers within tens of microseconds,
                # and not sleeping on the socket saves a thread wake-up per message (about 2x
                # the round trips/s on loopback). Only one side may spin on a 2-core machine,
                # and the scenario side never does; never spin when both share one CPU. A slow
                # peer turns spinning off (re-probed now and then).
                self._spin_probe = 64
                end = time.perf_counter() + self.spin_s
                while True:
                    raw = transport.recv_nowait()
                    if raw is not None:
                        self._spin_ok = True
                        return raw
                    if time.perf_counter() > end:
                        break
                self._spin_ok = False
            else:
                self._spin_probe -= 1
            while True:
                raw = transport.recv()
                if raw is not None:
                    return raw
                try:
                    self.check_alive()
                except SimulatorDied:
                    # the last message may have arrived just before the exit
                    raw = transport.recv_nowait()
                    if raw is not None:
                        return raw
                    raise
        except PeerClosed as exc:
            self._peer_closed(exc)

    def try_receive(self) -> SimInit | EnvState | None:
        """Non-blocking: handle one pending message if there is one.

        A SimInitMsg is answered at once (SimInitAck) and returned; an EnvStateMsg is returned
        and must be answered with :meth:`send_action` or :meth:`send_stop`.
        """
        try:
            raw = self.transport.recv_nowait()
        except PeerClosed as exc:
            self._peer_closed(exc)
        if raw is None:
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
        self.init = decode_sim_init(raw, self.decode_limits, self._describe_peer())
        self._obs_codec = SpaceCodec(self.init.observation_space)
        self._act_codec = SpaceCodec(self.init.action_space)
        self.transport.send(pb.SimInitAck(done=True, stopSimReq=False).SerializeToString())
        self.expecting = "EnvStateMsg"
        self.deadline = time.monotonic() + self.step_timeout_s
        return self.init

    def _on_state(self, raw: bytes) -> EnvState:
        assert self._obs_codec is not None
        state = decode_state(raw, self._obs_codec, self.decode_limits, self._describe_peer(),
                             self._state_msg)
        self._owe_reply = True
        return state

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
        self.transport.send(msg.SerializeToString())
        self._owe_reply = False
        self.deadline = time.monotonic() + self.step_timeout_s

    def send_continue(self, episode_seed: int) -> None:
        """Answer the pending game-over EnvStateMsg with ``continueEpisode`` (our extension,
        see ns3opengym.proto): the scenario starts episode ``episode_seed`` in this process and
        its next EnvStateMsg is that episode's first state."""
        if not self._owe_reply:
            raise RuntimeError(
                f"connection on {self.endpoint}: no EnvStateMsg is waiting for an answer"
            )
        msg = pb.EnvActMsg()
        msg.continueEpisode.episodeSeed = int(episode_seed)
        self.transport.send(msg.SerializeToString())
        self._owe_reply = False
        self.deadline = time.monotonic() + self.step_timeout_s

    def send_stop(self) -> None:
        """Answer the pending EnvStateMsg with stopSimReq=true; the scenario then exits."""
        if not self._owe_reply:
            raise RuntimeError(
                f"connection on {self.endpoint}: no EnvStateMsg is waiting for an answer"
            )
        self.transport.send(self._stop_bytes)
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
            self.transport.close()

    def __enter__(self) -> OpenGymConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenGymConnection({self.endpoint}, process={self.process!r})"


def _parse(raw: bytes, msg: Any, limits: DecodeLimits, peer: str) -> Any:
    """``raw`` parsed into ``msg`` (a protobuf message) after the size check; ProtocolError
    naming the expected message otherwise."""
    name = type(msg).__name__
    limits.check_message(len(raw), f"{name} from {peer}")
    try:
        msg.ParseFromString(raw)
    except DecodeError as exc:
        raise ProtocolError(
            f"{len(raw)} bytes from {peer} do not parse as the expected ns3opengym.{name}: {exc}"
        ) from exc
    return msg


def decode_sim_init(raw: bytes, limits: DecodeLimits = DEFAULT_LIMITS,
                    peer: str = "the scenario") -> SimInit:
    """Parse a SimInitMsg and build both spaces within ``limits``.

    Raises:
        ProtocolError: anything else than a well-formed SimInitMsg within the limits.
    """
    msg = _parse(raw, pb.SimInitMsg(), limits, peer)
    for name in ("obsSpace", "actSpace"):
        if not msg.HasField(name):
            raise ProtocolError(
                f"SimInitMsg from {peer} has no {name} "
                f"(expected ns3opengym.SimInitMsg with both spaces, got {len(raw)} bytes)"
            )
    obs_space = proto_to_space(msg.obsSpace, "SimInitMsg.obsSpace", limits)
    act_space = proto_to_space(msg.actSpace, "SimInitMsg.actSpace", limits)
    return SimInit(obs_space, act_space, int(msg.simProcessId), int(msg.wafShellProcessId))


def decode_state(raw: bytes, obs_codec: SpaceCodec, limits: DecodeLimits = DEFAULT_LIMITS,
                 peer: str = "the scenario", msg: pb.EnvStateMsg | None = None) -> EnvState:
    """Parse an EnvStateMsg (into ``msg`` if given, to reuse it) and decode its observation.

    Raises:
        ProtocolError: not a well-formed EnvStateMsg within the limits, or an observation that
            is not a member of the observation space's wire form.
    """
    msg = _parse(raw, pb.EnvStateMsg() if msg is None else msg, limits, peer)
    if not msg.HasField("obsData"):
        raise ProtocolError(
            f"message from {peer} ({len(raw)} bytes) is not an "
            "EnvStateMsg: expected ns3opengym.EnvStateMsg with obsData"
        )
    obs = obs_codec.decode(msg.obsData, "EnvStateMsg.obsData")
    game_over = msg.isGameOver
    if game_over:
        reason = "GameOver" if msg.reason == pb.EnvStateMsg.GameOver else "SimulationEnd"
    else:
        reason = ""
    return EnvState(obs, float(msg.reward), game_over, reason, msg.info)


def wait_all(
    connections: Iterable[OpenGymConnection],
    *,
    until: type[SimInit] | type[EnvState] = EnvState,
    poll_interval_s: float = 0.1,
) -> dict[OpenGymConnection, Any]:
    """Wait until each connection has delivered its next ``until`` message; return them.

    Multiplexes all sockets (ZMQ and Unix transports alike) with one ``zmq.Poller`` (no
    threads). SimInitMsg handshakes are
    answered on the way; with ``until=EnvState`` (default) a freshly launched connection keeps
    waiting for its first EnvStateMsg. Each connection keeps its own deadline and liveness
    check. Raises the first SimulatorDied / SimulatorTimeout / ProtocolError met.
    """
    pending: dict[Any, OpenGymConnection] = {}
    poller = zmq.Poller()
    for conn in connections:
        handle = conn.transport.poll_handle()
        pending[handle] = conn
        poller.register(handle, zmq.POLLIN)
    results: dict[OpenGymConnection, Any] = {}

    def finish(handle: Any, conn: OpenGymConnection, result: Any) -> None:
        results[conn] = result
        poller.unregister(handle)
        del pending[handle]

    def receive(handle: Any, conn: OpenGymConnection) -> Any:
        result = conn.try_receive()
        new_handle = conn.transport.poll_handle()
        if new_handle != handle:  # a Unix transport accepted its peer: watch the new socket
            poller.unregister(handle)
            del pending[handle]
            pending[new_handle] = conn
            poller.register(new_handle, zmq.POLLIN)
            if result is None:
                result = conn.try_receive()
        return new_handle, result

    last_check = time.monotonic()
    while pending:
        events = dict(poller.poll(int(poll_interval_s * 1000)))
        for handle in events:
            conn = pending[handle]
            while True:
                handle, result = receive(handle, conn)
                if result is None:
                    break
                if isinstance(result, until):
                    finish(handle, conn, result)
                    break
        now = time.monotonic()
        if not events or now - last_check >= poll_interval_s:
            last_check = now
            for handle, conn in list(pending.items()):
                try:
                    conn.check_alive()
                except SimulatorDied:
                    # the awaited message may have arrived just before the exit
                    handle, result = receive(handle, conn)
                    if isinstance(result, until):
                        finish(handle, conn, result)
                        continue
                    raise
    return results
