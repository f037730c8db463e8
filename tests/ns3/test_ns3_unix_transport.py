"""The Unix stream transport (unix://): framing, failures, co-location, many envs, real echo."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from bridge.ns3 import Ns3GymEnv, Ns3VectorEnv, SimulatorDied, SimulatorTimeout
from bridge.ns3.connection import OpenGymConnection, wait_all
from bridge.ns3.transport import MAX_FRAME_BYTES, PeerClosed, UnixStreamTransport
from bridge.protocol import ns3opengym_pb2 as pb
from bridge.protocol.codec import SpaceCodec, space_to_proto
from bridge.protocol.errors import ProtocolError
from tests.ns3.conftest import (
    is_zombie,
    run_echo_episode,
    scenario_pid,
    wait_gone,
)

OBS = spaces.Box(-10.0, 10.0, (3,), np.float32)
ACT = spaces.Discrete(4)


def frame(message: bytes) -> bytes:
    return len(message).to_bytes(4, "little") + message


def init_msg() -> bytes:
    return pb.SimInitMsg(
        simProcessId=1, obsSpace=space_to_proto(OBS), actSpace=space_to_proto(ACT)
    ).SerializeToString()


def state_msg(obs: np.ndarray, game_over: bool = False) -> bytes:
    msg = pb.EnvStateMsg(reward=1.5, isGameOver=game_over, reason=pb.EnvStateMsg.GameOver)
    SpaceCodec(OBS).encode(obs, msg.obsData)
    return msg.SerializeToString()


def socket_path(conn: OpenGymConnection) -> Path:
    assert conn.endpoint.startswith("unix://")
    return Path(conn.endpoint[len("unix://") :])


def read_frame(sock: socket.socket) -> bytes:
    header = sock.recv(4, socket.MSG_WAITALL)
    length = int.from_bytes(header, "little")
    return sock.recv(length, socket.MSG_WAITALL) if length else b""


@pytest.fixture
def conn() -> Iterator[OpenGymConnection]:
    connection = OpenGymConnection(
        "unix", connect_timeout_s=2.0, step_timeout_s=2.0, spin_s=0.0, poll_interval_s=0.05
    )
    yield connection
    connection.close()


@pytest.fixture
def peer(conn: OpenGymConnection) -> Iterator[socket.socket]:
    """A fake simulation connected the way the C++ transport connects."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    sock.connect(str(socket_path(conn)))
    yield sock
    sock.close()


# ---------------------------------------------------------------------------------- framing
def test_socket_lives_in_a_private_directory_removed_on_close() -> None:
    conn = OpenGymConnection("unix")
    path = socket_path(conn)
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert conn.port is None and conn.scenario_flags() == [f"--openGymEndpoint={conn.endpoint}"]
    conn.close()
    assert not path.exists() and not path.parent.exists()


def test_explicit_path_is_bound_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "explicit.sock"
    conn = OpenGymConnection(f"unix://{path}")
    assert conn.endpoint == f"unix://{path}" and path.exists()
    with pytest.raises(OSError, match="cannot bind Unix socket"):
        OpenGymConnection(f"unix://{path}")  # taken: refused, and the file is not removed
    assert path.exists()
    conn.close()
    assert not path.exists()
    with pytest.raises(ValueError, match="sockaddr_un limit"):
        OpenGymConnection("unix://" + "/tmp/" + "x" * 200)


def test_fake_peer_episode_with_split_and_coalesced_frames(
    conn: OpenGymConnection, peer: socket.socket
) -> None:
    data = frame(init_msg())
    for start, end in ((0, 1), (1, 3), (3, 9), (9, len(data) - 1)):  # the receiver reassembles
        peer.sendall(data[start:end])
        time.sleep(0.01)
        assert conn.try_receive() is None
    peer.sendall(data[-1:])
    init = conn.handshake()
    assert init.observation_space == OBS and init.action_space == ACT
    ack = pb.SimInitAck.FromString(read_frame(peer))
    assert ack.done and not ack.stopSimReq
    assert not socket_path(conn).parent.exists(), "the socket file goes once the peer is in"
    # two frames in one write: the second waits in the buffer for the next receive
    peer.sendall(frame(state_msg(np.array([1, 2, 3], np.float32))) + frame(b""))
    state = conn.receive_state()
    np.testing.assert_array_equal(state.obs, [1, 2, 3])
    conn.send_action(2)
    act = pb.EnvActMsg.FromString(read_frame(peer))
    assert SpaceCodec(ACT).decode(act.actData) == 2
    with pytest.raises(ProtocolError, match="is not an EnvStateMsg"):
        conn.receive_state()  # the empty frame: a valid frame, but no EnvStateMsg


def test_garbage_frame_is_a_protocol_error(conn: OpenGymConnection, peer: socket.socket) -> None:
    peer.sendall(frame(b"\xff\xfe garbage"))
    with pytest.raises(ProtocolError, match="do not parse as the expected ns3opengym.SimInitMsg"):
        conn.handshake()


def test_absurd_length_prefix_is_a_protocol_error(
    conn: OpenGymConnection, peer: socket.socket
) -> None:
    peer.sendall((MAX_FRAME_BYTES + 1).to_bytes(4, "little") + b"abc")
    with pytest.raises(ProtocolError, match=r"announces \d+ bytes, more than the limit"):
        conn.handshake()


def test_peer_closing_mid_frame_is_a_protocol_error(
    conn: OpenGymConnection, peer: socket.socket
) -> None:
    peer.sendall(frame(init_msg())[:7])
    peer.close()
    with pytest.raises(ProtocolError, match=r"closed .* in the middle of a frame \(7 bytes"):
        conn.handshake()


def test_no_peer_times_out() -> None:
    conn = OpenGymConnection("unix", connect_timeout_s=0.3)
    start = time.monotonic()
    with pytest.raises(SimulatorTimeout, match=r"no SimInitMsg .* within 0.3 s"):
        conn.handshake()
    assert time.monotonic() - start < 2.0
    conn.close()


def test_sixteen_unix_connections_get_distinct_private_sockets() -> None:
    conns = [OpenGymConnection("unix") for _ in range(16)]
    try:
        paths = {socket_path(c) for c in conns}
        assert len(paths) == 16 and len({p.parent for p in paths}) == 16
    finally:
        for c in conns:
            c.close()
    assert not any(p.exists() or p.parent.exists() for p in paths)


def test_send_to_a_stalled_or_vanished_peer() -> None:
    transport = UnixStreamTransport("unix", poll_interval_s=0.05, send_timeout_s=0.3)
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        peer.connect(transport.endpoint[len("unix://") :])
        assert transport.recv_nowait() is None and transport.connected
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="the scenario does not read"):
            transport.send(b"x" * 8_000_000)  # more than the socket buffers hold
        assert time.monotonic() - start < 2.0
        peer.close()
        transport.send(b"ignored")  # like ZMQ: no error here ...
        with pytest.raises(PeerClosed):  # ... the next receive reports the closed peer
            while transport.recv() is None:
                pass
    finally:
        peer.close()
        transport.close()


def test_transport_rejects_other_endpoints() -> None:
    with pytest.raises(ValueError, match="expected 'unix' or unix://"):
        UnixStreamTransport("tcp")
    with pytest.raises(ValueError, match="unix://<path>"):
        OpenGymConnection("udp://x")


# ------------------------------------------------------------------------- real scenario


@pytest.mark.ns3
def test_handshake_and_full_episode(echo_binary: Path) -> None:
    env = Ns3GymEnv(echo_binary, ["--steps=20", "--obsSize=6", "--actSize=3"], endpoint="unix")
    try:
        assert env.connection is not None and env.connection.endpoint.startswith("unix://")
        pid = run_echo_episode(env)
        path = socket_path(env.connection)
        assert not path.exists() and not path.parent.exists()
        assert env.connection.process is not None and env.connection.process.wait(5.0) == 0
    finally:
        env.close()
    assert wait_gone(pid)


@pytest.mark.ns3
def test_nested_spaces_and_simulation_end(echo_binary: Path) -> None:
    with Ns3GymEnv(
        echo_binary, ["--mode=nested", "--steps=2", "--endBy=simend"], endpoint="unix"
    ) as env:
        env.reset(seed=2)
        action = (
            np.int64(3),
            {"gain": np.array([1.5, -2.0, 0.25]), "level": np.array([7], np.uint32)},
        )
        obs, reward, terminated, truncated, _ = env.step(action)
        np.testing.assert_array_equal(obs["echo"], [2.5, -1.0, 1.25])
        assert obs["pair"][0] == 3 and not terminated and not truncated
        assert env.step(action)[2:4] == (False, True)


@pytest.mark.ns3
def test_large_messages_grow_the_buffers(echo_binary: Path) -> None:
    # 300,000 float64 = 2.4 MB per state: many socket buffers' worth in each direction
    args = ["--steps=2", "--obsSize=300000", "--actSize=300000", "--obsType=float64"]
    with Ns3GymEnv(echo_binary, args, endpoint="unix") as env:
        env.reset(seed=1)
        action = np.linspace(-100, 100, 300000)
        obs, *_ = env.step(action)
        np.testing.assert_array_equal(obs, action + 1)


@pytest.mark.ns3
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_colocation_pins_thread_and_scenario_and_is_undone(echo_binary: Path) -> None:
    before = os.sched_getaffinity(0)
    with Ns3GymEnv(echo_binary, ["--steps=3"], endpoint="unix") as env:
        assert env.colocate
        cpus = os.sched_getaffinity(0)
        assert len(cpus) == 1 and os.sched_getaffinity(scenario_pid(env)) == cpus
        env.reset(seed=1)  # a new process, same CPU
        assert os.sched_getaffinity(scenario_pid(env)) == cpus
        with Ns3GymEnv(echo_binary, ["--steps=3"], endpoint="unix") as second:
            assert os.sched_getaffinity(scenario_pid(second)) == cpus
        assert os.sched_getaffinity(0) == cpus, "the first env still holds the pin"
    assert os.sched_getaffinity(0) == before
    with Ns3GymEnv(echo_binary, ["--steps=3"], endpoint="unix", colocate=False) as env:
        assert os.sched_getaffinity(0) == before == os.sched_getaffinity(scenario_pid(env))
    with Ns3GymEnv(echo_binary, ["--steps=3"]) as env:
        assert not env.colocate  # ZMQ: off unless asked for
    with pytest.raises(ValueError, match="one or the other"):
        Ns3GymEnv(echo_binary, endpoint="unix", colocate=True, cpu_affinity=[0])


@pytest.mark.ns3
def test_killed_simulator_is_reported_within_seconds_and_nothing_is_left(
    echo_binary: Path,
) -> None:
    env = Ns3GymEnv(echo_binary, ["--steps=1000", "--hangAtStep=3"], endpoint="unix")
    try:
        env.reset(seed=1)
        env.step(env.action_space.sample())
        pid = scenario_pid(env)
        path = socket_path(env.connection)  # type: ignore[arg-type]
        os.kill(pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(SimulatorDied, match="killed by signal SIGKILL") as info:
            env.step(env.action_space.sample())
            env.step(env.action_space.sample())
        assert time.monotonic() - start < 3.0
        assert info.value.returncode == -signal.SIGKILL
        assert wait_gone(pid) and not is_zombie(pid)
        assert env.connection is None
    finally:
        env.close()
    assert not path.exists() and not path.parent.exists()


@pytest.mark.ns3
def test_crash_exit_code_and_stderr_tail(echo_binary: Path) -> None:
    with Ns3GymEnv(echo_binary, ["--steps=10", "--crashAtStep=2"], endpoint="unix") as env:
        env.reset(seed=1)
        env.step(env.action_space.sample())
        start = time.monotonic()
        with pytest.raises(SimulatorDied) as info:
            env.step(env.action_space.sample())
        assert time.monotonic() - start < 2.0
        assert info.value.returncode == 3 and "exit code 3" in str(info.value)
        assert "crashing at step 2 as requested" in info.value.stderr_tail


@pytest.mark.ns3
def test_hanging_and_never_connecting_simulators_time_out(echo_binary: Path) -> None:
    start = time.monotonic()
    with pytest.raises(SimulatorTimeout, match=r"no SimInitMsg .* within 1 s .*still running"):
        Ns3GymEnv(echo_binary, ["--neverConnect=true"], endpoint="unix", connect_timeout_s=1.0)
    assert time.monotonic() - start < 4.0
    env = Ns3GymEnv(
        echo_binary, ["--steps=10", "--hangAtStep=2"], endpoint="unix", step_timeout_s=1.0
    )
    env.reset(seed=1)
    env.step(env.action_space.sample())
    pid = scenario_pid(env)
    with pytest.raises(SimulatorTimeout, match=r"no EnvStateMsg .* within 1 s \(step_timeout_s\)"):
        env.step(env.action_space.sample())
    assert wait_gone(pid)
    env.close()


@pytest.mark.ns3
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (frame(b"\xff\xfe not an EnvActMsg"), "do not parse as EnvActMsg"),
        (b"\xff\xff\xff\xff", "exceeds the limit"),
    ],
)
def test_scenario_exits_with_code_5_on_a_malformed_frame(
    echo_binary: Path, raw: bytes, message: str
) -> None:
    conn = OpenGymConnection.launch(echo_binary, ["--steps=5"], endpoint="unix")
    try:
        conn.receive_state()
        sock = conn.transport._sock  # noqa: SLF001 - bypass the framing on purpose
        assert sock is not None
        sock.sendall(raw)
        assert conn.process is not None and conn.process.wait(5.0) == 5
        assert message in conn.process.stderr_tail()
    finally:
        conn.close()


PARENT_SCRIPT = """
import sys, time
from bridge.ns3 import Ns3GymEnv
env = Ns3GymEnv(sys.argv[1], ["--steps=1000"], endpoint="unix")
env.reset(seed=1)
print(env.connection.process.pid, env.connection.endpoint, flush=True)
time.sleep(60)
"""


@pytest.mark.ns3
def test_scenario_exits_at_once_when_python_is_killed(echo_binary: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, str(echo_binary)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
        text=True,
    )
    try:
        assert parent.stdout is not None
        pid_text, endpoint = parent.stdout.readline().split()
        parent.kill()  # SIGKILL: no finalizer runs; the scenario sees its socket close
        parent.wait(10)
        assert wait_gone(int(pid_text), 3.0), "the scenario survived its killed parent"
        path = Path(endpoint[len("unix://") :])
        assert not path.exists() and not path.parent.exists()
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.ns3
def test_sixteen_envs_in_one_vector_env(echo_binary: Path) -> None:
    venv = Ns3VectorEnv(echo_binary, 16, ["--steps=3"], endpoint="unix")
    try:
        first_pids = venv.pids
        assert len(set(first_pids)) == 16
        endpoints = {c.endpoint for c in venv._conns if c is not None}  # noqa: SLF001
        assert len(endpoints) == 16
        obs, infos = venv.reset(seed=100)
        np.testing.assert_array_equal(infos["seed"], np.arange(100, 116))
        actions = np.tile(np.arange(16, dtype=np.float32)[:, None], (1, 4))
        for step in range(1, 4):
            obs, rewards, terminated, truncated, _ = venv.step(actions)
            np.testing.assert_array_equal(obs, actions + step)  # no env sees another's data
            np.testing.assert_allclose(rewards, actions.sum(axis=1))
            assert terminated.all() == (step == 3) and not truncated.any()
        obs, rewards, terminated, truncated, _ = venv.step(actions)  # autoreset
        np.testing.assert_array_equal(obs, np.zeros((16, 4), np.float32))
        assert set(venv.pids).isdisjoint(first_pids)
        last_pids = venv.pids
    finally:
        venv.close()
    for pid in [*first_pids, *last_pids]:
        assert pid is not None and wait_gone(pid) and not is_zombie(pid)
    for endpoint in endpoints:
        path = Path(endpoint[len("unix://") :])
        assert not path.exists() and not path.parent.exists()


@pytest.mark.ns3
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_vector_env_is_not_serialised_by_a_colocated_env(echo_binary: Path) -> None:
    everywhere = os.sched_getaffinity(0)
    with Ns3GymEnv(echo_binary, ["--steps=3"], endpoint="unix") as single:
        assert len(os.sched_getaffinity(0)) == 1  # this thread is pinned now
        venv = Ns3VectorEnv(echo_binary, 4, ["--steps=3"], endpoint="unix")
        try:
            for pid in venv.pids:
                assert pid is not None and os.sched_getaffinity(pid) == everywhere
        finally:
            venv.close()
        venv = Ns3VectorEnv(echo_binary, 4, ["--steps=3"], endpoint="unix", cpu_placement="spread")
        try:
            placed = [os.sched_getaffinity(pid) for pid in venv.pids if pid is not None]
            assert all(len(p) == 1 for p in placed) and len(set().union(*placed)) == 2
        finally:
            venv.close()
        single.reset(seed=1)


@pytest.mark.ns3
def test_wait_all_mixes_zmq_and_unix_connections(echo_binary: Path) -> None:
    conns = [
        OpenGymConnection.launch(echo_binary, ["--steps=2"], endpoint=endpoint)
        for endpoint in ("tcp", "unix", "ipc", "unix")
    ]
    try:
        states = wait_all(conns)
        assert all(states[c].obs.shape == (4,) for c in conns)
        for c in conns:
            c.send_action(np.full(4, 1.0, np.float32))
        states = wait_all(conns)
        assert all(np.array_equal(states[c].obs, np.full(4, 2.0, np.float32)) for c in conns)
    finally:
        for c in conns:
            c.close()
