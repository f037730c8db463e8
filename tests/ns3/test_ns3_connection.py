"""OpenGymConnection and ScenarioProcess against fake peers: real ZMQ sockets, real processes."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq
from gymnasium import spaces

from bridge.ns3.connection import (
    OpenGymConnection,
    SimulatorDied,
    SimulatorTimeout,
)
from bridge.ns3.process import ScenarioProcess
from bridge.protocol import ns3opengym_pb2 as pb
from bridge.protocol.codec import SpaceCodec, pack_any, space_to_proto
from bridge.protocol.errors import ProtocolError
from tests.ns3.conftest import (
    assert_child_dies_with_parent,
    is_zombie,
    wait_gone,
)

OBS = spaces.Box(-10.0, 10.0, (3,), np.float32)
ACT = spaces.Discrete(4)


@pytest.fixture
def conn() -> Iterator[OpenGymConnection]:
    connection = OpenGymConnection(connect_timeout_s=2.0, step_timeout_s=2.0, spin_s=0.0)
    yield connection
    connection.close()


@pytest.fixture
def peer(conn: OpenGymConnection) -> Iterator[zmq.Socket]:
    """A fake simulation: a REQ socket connected the way a scenario connects."""
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 2000)
    sock.connect(conn.endpoint.replace("127.0.0.1", "localhost"))
    yield sock
    sock.close(linger=0)


def init_msg() -> bytes:
    return pb.SimInitMsg(
        simProcessId=1, obsSpace=space_to_proto(OBS), actSpace=space_to_proto(ACT)
    ).SerializeToString()


def state_msg(obs: np.ndarray, game_over: bool = False, reason: int = 0) -> bytes:
    msg = pb.EnvStateMsg(reward=1.5, isGameOver=game_over, reason=reason, info="{}")
    SpaceCodec(OBS).encode(obs, msg.obsData)
    return msg.SerializeToString()


def test_handshake_and_episode_with_fake_peer(conn: OpenGymConnection, peer: zmq.Socket) -> None:
    peer.send(init_msg())
    init = conn.handshake()
    assert init.observation_space == OBS and init.action_space == ACT
    ack = pb.SimInitAck.FromString(peer.recv())
    assert ack.done and not ack.stopSimReq
    peer.send(state_msg(np.array([1, 2, 3], np.float32)))
    state = conn.receive_state()
    np.testing.assert_array_equal(state.obs, [1, 2, 3])
    assert state.reward == 1.5 and not state.game_over
    conn.send_action(2)
    act = pb.EnvActMsg.FromString(peer.recv())
    assert not act.stopSimReq and act.actData.type == pb.Discrete
    peer.send(state_msg(np.zeros(3, np.float32), game_over=True, reason=pb.EnvStateMsg.GameOver))
    state = conn.receive_state()
    assert state.terminated and not state.truncated
    # answered like ns3-gym's client: stop request at once
    assert pb.EnvActMsg.FromString(peer.recv()).stopSimReq


def test_garbage_instead_of_siminit_is_a_protocol_error(
    conn: OpenGymConnection, peer: zmq.Socket
) -> None:
    peer.send(b"\xff\xfe garbage")
    with pytest.raises(ProtocolError, match="do not parse as the expected ns3opengym.SimInitMsg"):
        conn.handshake()


def test_wrong_any_type_in_siminit_is_a_protocol_error(
    conn: OpenGymConnection, peer: zmq.Socket
) -> None:
    desc = pb.SpaceDescription(type=pb.Box)
    pack_any(desc.space, pb.SimInitAck(done=True))
    msg = pb.SimInitMsg(obsSpace=desc, actSpace=space_to_proto(ACT))
    peer.send(msg.SerializeToString())
    expected = (
        "SimInitMsg.obsSpace: expected Any of type ns3opengym.BoxSpace, "
        "got type.googleapis.com/ns3opengym.SimInitAck"
    )
    with pytest.raises(ProtocolError, match=expected):
        conn.handshake()


def test_siminit_where_a_state_is_expected_is_a_protocol_error(
    conn: OpenGymConnection, peer: zmq.Socket
) -> None:
    peer.send(init_msg())
    conn.handshake()
    peer.recv()
    peer.send(init_msg())
    with pytest.raises(ProtocolError, match="is not an EnvStateMsg"):
        conn.receive_state()


def test_wrong_observation_container_is_a_protocol_error(
    conn: OpenGymConnection, peer: zmq.Socket
) -> None:
    peer.send(init_msg())
    conn.handshake()
    peer.recv()
    msg = pb.EnvStateMsg()
    msg.obsData.type = pb.Box
    pack_any(msg.obsData.data, pb.DiscreteDataContainer(data=3))
    peer.send(msg.SerializeToString())
    with pytest.raises(ProtocolError, match="expected Any of type ns3opengym.BoxDataContainer"):
        conn.receive_state()


def test_bad_action_is_refused_before_sending(conn: OpenGymConnection, peer: zmq.Socket) -> None:
    peer.send(init_msg())
    conn.handshake()
    peer.recv()
    peer.send(state_msg(np.zeros(3, np.float32)))
    conn.receive_state()
    for bad in (4, -1, 1.5, np.array([1, 2])):
        with pytest.raises(ValueError, match="action"):
            conn.send_action(bad)
    with pytest.raises(zmq.Again):
        peer.recv(zmq.NOBLOCK)  # nothing was sent
    conn.send_action(3)
    act = pb.EnvActMsg.FromString(peer.recv())
    assert SpaceCodec(ACT).decode(act.actData) == 3


def test_no_peer_times_out(conn: OpenGymConnection) -> None:
    fast = OpenGymConnection(connect_timeout_s=0.3, spin_s=0.0)
    start = time.monotonic()
    with pytest.raises(SimulatorTimeout, match=r"no SimInitMsg .* within 0.3 s"):
        fast.handshake()
    assert time.monotonic() - start < 2.0
    fast.close()


def test_sixteen_connections_get_distinct_loopback_ports() -> None:
    conns = [OpenGymConnection() for _ in range(16)]
    try:
        ports = {c.port for c in conns}
        assert len(ports) == 16
        assert all(c.endpoint.startswith("tcp://127.0.0.1:") for c in conns)
        assert conns[0].scenario_flags() == [f"--openGymPort={conns[0].port}"]
    finally:
        for c in conns:
            c.close()


def test_ipc_endpoint_and_loopback_only() -> None:
    ipc = OpenGymConnection("ipc")
    assert ipc.endpoint.startswith("ipc://") and ipc.port is None
    assert ipc.scenario_flags() == [f"--openGymEndpoint={ipc.endpoint}"]
    ipc.close()
    with pytest.raises(ValueError, match="loopback only"):
        OpenGymConnection("tcp://0.0.0.0:0")


def test_process_dying_during_handshake_is_reported_with_stderr() -> None:
    script = "import sys; sys.stderr.write('line1\\nboom: no luck\\n'); sys.exit(3)"
    conn = OpenGymConnection.launch(sys.executable, ["-c", script], spin_s=0.0)
    start = time.monotonic()
    with pytest.raises(SimulatorDied, match="exit code 3") as info:
        conn.handshake()
    assert time.monotonic() - start < 3.0
    assert info.value.returncode == 3
    assert "boom: no luck" in info.value.stderr_tail and "boom: no luck" in str(info.value)
    conn.close()


def test_process_close_kills_the_whole_group_and_reaps() -> None:
    script = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(child.pid, flush=True); time.sleep(60)"
    )
    proc = ScenarioProcess([sys.executable, "-c", script], grace_s=0.5)
    time.sleep(0.5)
    assert proc.is_alive()
    grandchildren = [
        int(p) for p in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
    ]
    assert grandchildren
    pid = proc.pid
    status = proc.close()
    assert status == -signal.SIGTERM
    assert wait_gone(pid, 2.0) and not is_zombie(pid)
    for child in grandchildren:
        assert wait_gone(child, 5.0), f"grandchild {child} survived"
    proc.close()  # idempotent


def test_process_refuses_missing_binary() -> None:
    with pytest.raises(FileNotFoundError, match="does not exist or is not executable"):
        ScenarioProcess(["/nonexistent/scenario"])


SLEEPER_PARENT = """
import sys, time
from bridge.ns3.process import ScenarioProcess
proc = ScenarioProcess(["/bin/sleep", "60"])
print(proc.pid, flush=True)
if sys.argv[1] == "exit":
    sys.exit(0)
time.sleep(60)
"""


@pytest.mark.parametrize("how", ["exit", "SIGTERM", "SIGINT", "SIGHUP"])
def test_parent_exit_or_signal_stops_a_child_that_does_not_watch_its_parent(how: str) -> None:
    assert_child_dies_with_parent(SLEEPER_PARENT, [], how, "child")
