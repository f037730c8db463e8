"""A well-formed action of the wrong structure, or a multipart ZeroMQ reply, is a protocol
error on the scenario side: a clear line on stderr, exit code 5, reported by Python."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bridge.config import ScenarioConfig
from bridge.instance import generate_instance
from bridge.layout import ObservationLayout
from bridge.ns3.build import scenario_binary
from bridge.ns3.connection import OpenGymConnection, SimulatorDied
from bridge.protocol import ns3opengym_pb2 as pb
from bridge.protocol.codec import pack_any

pytestmark = pytest.mark.ns3

ECHO_ARGS = ["--steps=5", "--obsSize=6", "--actSize=3"]
STRUCTURE = "does not have the structure of the declared action space"


def box_action(dtype: int, values: list, shape: list[int] | None = None) -> bytes:
    box = pb.BoxDataContainer(dtype=dtype, shape=[len(values)] if shape is None else shape)
    field = {pb.INT: "intData", pb.UINT: "uintData", pb.FLOAT: "floatData",
             pb.DOUBLE: "doubleData"}[dtype]
    getattr(box, field).extend(values)
    msg = pb.EnvActMsg()
    msg.actData.type = pb.Box
    pack_any(msg.actData.data, box)
    return msg.SerializeToString()


def discrete_action(value: int) -> bytes:
    msg = pb.EnvActMsg()
    msg.actData.type = pb.Discrete
    pack_any(msg.actData.data, pb.DiscreteDataContainer(data=value))
    return msg.SerializeToString()


def assert_refused(conn: OpenGymConnection, send: Callable[[], None], *needles: str) -> None:
    """Send a bad reply to the pending state; the scenario must exit with code 5 and say why,
    and Python must report it with that message."""
    send()
    conn._owe_reply = False  # noqa: SLF001 - answered behind the connection's back
    with pytest.raises(SimulatorDied) as info:
        conn.receive_state()
    assert info.value.returncode == 5
    text = str(info.value)
    assert "exit code 5 (protocol error" in text
    for needle in needles:
        assert needle in text, text


ECHO_CASES = [
    (lambda n: discrete_action(1), ["a Discrete container", "expected Box"]),
    (lambda n: box_action(pb.INT, [1] * n), ["Box of dtype INT, expected FLOAT"]),
    (lambda n: box_action(pb.DOUBLE, [1.0] * n), ["Box of dtype DOUBLE, expected FLOAT"]),
    (lambda n: box_action(pb.FLOAT, [1.0] * (n - 1)), ["expected shape [3] (3 entries)"]),
    (lambda n: box_action(pb.FLOAT, [1.0] * (n + 1)), ["with 4 entries, expected shape [3]"]),
    (lambda n: box_action(pb.FLOAT, [1.0] * n, [1, n]), ["Box of shape [1, 3]"]),
]


@pytest.mark.parametrize(("make", "needles"), ECHO_CASES)
def test_echo_scenario_refuses_actions_of_the_wrong_structure(
        echo_binary: Path, make: Callable[[int], bytes], needles: list[str]) -> None:
    with OpenGymConnection.launch(echo_binary, ECHO_ARGS) as conn:
        conn.receive_state()
        conn.send_action(np.zeros(3, np.float32))  # a right one is applied
        conn.receive_state()
        assert_refused(conn, lambda: conn.transport.send(make(3)), STRUCTURE, *needles)


def test_multipart_reply_is_a_protocol_error_not_a_lost_peer(echo_binary: Path) -> None:
    with OpenGymConnection.launch(echo_binary, ECHO_ARGS) as conn:
        conn.receive_state()
        good = box_action(pb.FLOAT, [0.0, 0.0, 0.0])
        socket = conn.transport.socket  # type: ignore[attr-defined]
        assert_refused(conn, lambda: socket.send_multipart([good, b"extra"]),
                       "a ZeroMQ message of 2 parts, expected a single-part")


@pytest.fixture(scope="module")
def iab_instance(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    config = ScenarioConfig().replace(topology__n_iab=2, topology__n_ue=6,
                                      dynamics__episode_frames=10, radio__deterministic=True)
    path = tmp_path_factory.mktemp("strict") / "instance.json"
    instance = generate_instance(config, seed=3)
    path.write_text(json.dumps(instance.to_dict()))
    size = ObservationLayout.from_config(config).action_size
    return path, size


@pytest.mark.parametrize("case", ["discrete", "float", "too_few", "too_many"])
def test_iab_scenario_refuses_the_issues_wrong_actions(
        scenario_build_dir: Path, iab_instance: tuple[Path, int], case: str) -> None:
    binary = scenario_binary("iab-scenario", scenario_build_dir)
    path, size = iab_instance
    raw, needle = {
        "discrete": (discrete_action(0), "a Discrete container"),
        "float": (box_action(pb.FLOAT, [0.0] * size), "Box of dtype FLOAT, expected INT"),
        "too_few": (box_action(pb.INT, [0] * (size - 1)), f"expected shape [{size}]"),
        "too_many": (box_action(pb.INT, [0] * (size + 1)), f"with {size + 1} entries"),
    }[case]
    with OpenGymConnection.launch(binary, [f"--instance={path}", "--simSeed=1"]) as conn:
        conn.receive_state()
        assert conn.action_codec.space.shape == (size,)
        conn.send_action(np.zeros(size, np.int32))
        conn.receive_state()
        assert_refused(conn, lambda: conn.transport.send(raw), STRUCTURE, needle)
