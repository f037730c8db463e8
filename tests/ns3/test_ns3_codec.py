"""The codec between gymnasium spaces / numpy values and ns3opengym protobuf messages."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium import spaces

from bridge.protocol import ns3opengym_pb2 as pb
from bridge.protocol.codec import (
    BoundsWidenedWarning,
    SpaceCodec,
    data_to_proto,
    pack_any,
    proto_to_data,
    proto_to_space,
    space_to_proto,
)
from bridge.protocol.errors import ProtocolError

WIRE_DTYPES = [np.int32, np.uint32, np.float32, np.float64]


def roundtrip_space(space: spaces.Space) -> spaces.Space:
    desc = space_to_proto(space)
    wire = pb.SpaceDescription.FromString(desc.SerializeToString())
    return proto_to_space(wire)


def roundtrip_data(space: spaces.Space, value: object) -> object:
    container = data_to_proto(space, value)
    wire = pb.DataContainer.FromString(container.SerializeToString())
    return proto_to_data(wire, space)


def assert_same_value(a: object, b: object) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for key in a:
            assert_same_value(a[key], b[key])
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_value(x, y)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert np.asarray(a).dtype == np.asarray(b).dtype or np.asarray(a).ndim == 0


@pytest.mark.parametrize("dtype", WIRE_DTYPES)
@pytest.mark.parametrize("shape", [(5,), (2, 3), (), (0,)])
def test_box_space_and_data_roundtrip(dtype: type, shape: tuple[int, ...]) -> None:
    low, high = (0, 50) if np.dtype(dtype).kind == "u" else (-50, 50)
    space = spaces.Box(low, high, shape=shape, dtype=dtype)
    back = roundtrip_space(space)
    assert back == space
    value = space.sample()
    decoded = roundtrip_data(space, value)
    assert decoded.dtype == np.dtype(dtype) and decoded.shape == shape
    np.testing.assert_array_equal(decoded, value)


def test_discrete_tuple_dict_nested_roundtrip() -> None:
    space = spaces.Dict(
        {
            "a": spaces.Discrete(7),
            "b": spaces.Tuple(
                [
                    spaces.Box(-1.0, 1.0, (3,), np.float64),
                    spaces.Dict({"c": spaces.Box(0, 9, (2, 2), np.uint32)}),
                    spaces.Discrete(2),
                ]
            ),
            "d": spaces.Box(-5, 5, (4,), np.int32),
        }
    )
    assert roundtrip_space(space) == space
    space.seed(3)
    for _ in range(5):
        value = space.sample()
        assert_same_value(roundtrip_data(space, value), value)
        # self-describing decode (no space) gives the same values
        container = data_to_proto(space, value)
        assert_same_value(proto_to_data(container), value)


def test_float_fast_path_is_byte_identical_to_protobuf() -> None:
    for dtype, field in ((np.float32, "floatData"), (np.float64, "doubleData")):
        space = spaces.Box(-1, 1, (3, 4), dtype)
        value = space.sample()
        container = SpaceCodec(space).encode(value)
        reference = pb.BoxDataContainer(
            dtype=pb.FLOAT if dtype == np.float32 else pb.DOUBLE, shape=[3, 4]
        )
        getattr(reference, field).extend(value.ravel().tolist())
        assert container.data.value == reference.SerializeToString()
        assert container.data.type_url == "type.googleapis.com/ns3opengym.BoxDataContainer"


def test_narrow_and_wide_dtypes_follow_the_documented_rules() -> None:
    assert roundtrip_space(spaces.Box(0, 9, (2,), np.int8)).dtype == np.int32
    assert roundtrip_space(spaces.Box(0, 9, (2,), np.uint16)).dtype == np.uint32
    assert roundtrip_space(spaces.Box(0, 1, (2,), np.float16)).dtype == np.float32
    assert roundtrip_space(spaces.Box(-9, 9, (2,), np.int64)) == spaces.Box(-9, 9, (2,), np.int32)
    with pytest.raises(ValueError, match="int64 .* does not fit the 32-bit wire type"):
        space_to_proto(spaces.Box(0, 2**40, (2,), np.int64))
    with pytest.raises(ValueError, match="bool is not representable"):
        space_to_proto(spaces.Box(0, 1, (2,), np.bool_))
    with pytest.raises(ValueError, match="MultiBinary has no ns3opengym wire form"):
        space_to_proto(spaces.MultiBinary(3))
    with pytest.raises(ValueError, match="start=2"):
        space_to_proto(spaces.Discrete(4, start=2))


def test_per_element_bounds_become_the_hull_with_a_warning() -> None:
    low, high = np.array([0.0, -2.0], np.float32), np.array([1.0, 3.0], np.float32)
    space = spaces.Box(low, high, dtype=np.float32)
    with pytest.warns(BoundsWidenedWarning, match="per-element bounds"):
        back = roundtrip_space(space)
    assert back == spaces.Box(-2.0, 3.0, (2,), np.float32)
    with pytest.raises(ValueError, match="strict_bounds"):
        space_to_proto(space, strict_bounds=True)


def test_bounds_are_rounded_outwards_to_float32() -> None:
    space = spaces.Box(0.1, 0.7, (2,), np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = roundtrip_space(space)
    assert back.low[0] <= 0.1 and back.high[0] >= 0.7
    assert back.contains(np.array([0.1, 0.7]))
    wide = roundtrip_space(
        spaces.Box(np.iinfo(np.int32).min, np.iinfo(np.int32).max, (1,), np.int32)
    )
    assert wide.low[0] == np.iinfo(np.int32).min and wide.high[0] == np.iinfo(np.int32).max


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.array([0.0, np.nan, 0.0]), r"action\[1\]=nan is not finite"),
        (np.zeros(4), r"shape \(4,\), expected \(3,\)"),
        (np.array([0.0, 2.0, 0.0]), r"action\[1\]=2.0 out of range, expected within \[-1.0, 1.0\]"),
        ("abc", "expected numbers"),
    ],
)
def test_box_validation_names_the_problem(value: object, message: str) -> None:
    codec = SpaceCodec(spaces.Box(-1.0, 1.0, (3,), np.float32))
    with pytest.raises(ValueError, match=message):
        codec.check(value, "action")


def test_discrete_and_container_validation() -> None:
    codec = SpaceCodec(spaces.Tuple([spaces.Discrete(3), spaces.Dict({"k": spaces.Discrete(2)})]))
    codec.check((np.int64(2), {"k": 1}), "action")
    with pytest.raises(ValueError, match=r"action\[0\]=3 out of range"):
        codec.check((3, {"k": 1}), "action")
    with pytest.raises(ValueError, match=r"action\[0\]=1.5, expected an integer"):
        codec.check((1.5, {"k": 1}), "action")
    with pytest.raises(ValueError, match="missing \\['k'\\], unexpected \\['x'\\]"):
        codec.check((1, {"x": 1}), "action")
    with pytest.raises(ValueError, match="has 1 elements, expected 2"):
        codec.check((1,), "action")
    int_box = SpaceCodec(spaces.Box(0, 5, (2,), np.int32))
    with pytest.raises(ValueError, match="is not an integer"):
        int_box.check(np.array([1.0, 2.5]), "action")


def box_container(dtype: int, shape: list[int], **data: list) -> pb.DataContainer:
    container = pb.DataContainer(type=pb.Box)
    pack_any(container.data, pb.BoxDataContainer(dtype=dtype, shape=shape, **data))
    return container


def test_malformed_containers_raise_protocol_error() -> None:
    space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    wrong_any = pb.DataContainer(type=pb.Box)
    pack_any(wrong_any.data, pb.DiscreteDataContainer(data=1))
    expected = (
        "expected Any of type ns3opengym.BoxDataContainer, "
        "got type.googleapis.com/ns3opengym.DiscreteDataContainer"
    )
    with pytest.raises(ProtocolError, match=expected):
        proto_to_data(wrong_any, space)
    with pytest.raises(ProtocolError, match="floatData has 2 values, expected 3"):
        proto_to_data(box_container(pb.FLOAT, [3], floatData=[1.0, 2.0]), space)
    with pytest.raises(ProtocolError, match=r"shape=\[4\], expected \[3\]"):
        proto_to_data(box_container(pb.FLOAT, [4], floatData=[0.0] * 4), space)
    with pytest.raises(ProtocolError, match="dtype=DOUBLE, expected FLOAT"):
        proto_to_data(box_container(pb.DOUBLE, [3], doubleData=[0.0] * 3), space)
    with pytest.raises(ProtocolError, match="fields with data: \\['doubleData'\\]"):
        proto_to_data(box_container(pb.FLOAT, [3], doubleData=[0.0] * 3))
    with pytest.raises(ProtocolError, match="type=Discrete, expected Box"):
        proto_to_data(pb.DataContainer(type=pb.Discrete), space)
    garbage = pb.DataContainer(type=pb.Box)
    garbage.data.type_url = "type.googleapis.com/ns3opengym.BoxDataContainer"
    garbage.data.value = b"\xff\xff\xff"
    with pytest.raises(ProtocolError, match="not a valid ns3opengym.BoxDataContainer"):
        proto_to_data(garbage, space)
    with pytest.raises(ProtocolError, match=r"keys \['a'\], expected \['b'\]"):
        dct = pb.DictDataContainer()
        dct.element.append(data_to_proto(spaces.Discrete(2), 1))
        dct.element[0].name = "a"
        container = pb.DataContainer(type=pb.Dict)
        pack_any(container.data, dct)
        proto_to_data(container, spaces.Dict({"b": spaces.Discrete(2)}))


def test_malformed_spaces_raise_protocol_error() -> None:
    with pytest.raises(ProtocolError, match=r"type=7, expected Discrete\(1\)"):
        proto_to_space(pb.SpaceDescription(type=7))
    desc = pb.SpaceDescription(type=pb.Box)
    pack_any(desc.space, pb.DiscreteSpace(n=3))
    with pytest.raises(
        ProtocolError,
        match="expected Any of type ns3opengym.BoxSpace, got type.googleapis.com/ns3opengym.Disc",
    ):
        proto_to_space(desc)
    bad_box = pb.SpaceDescription(type=pb.Box)
    pack_any(bad_box.space, pb.BoxSpace(low=2.0, high=1.0, dtype=pb.FLOAT, shape=[1]))
    with pytest.raises(ProtocolError, match=r"bounds \[2.0, 1.0\], expected low <= high"):
        proto_to_space(bad_box)
    no_dtype = pb.SpaceDescription(type=pb.Box)
    pack_any(no_dtype.space, pb.BoxSpace(low=0, high=1, shape=[1]))
    with pytest.raises(ProtocolError, match="dtype=0, expected INT"):
        proto_to_space(no_dtype)
    zero = pb.SpaceDescription(type=pb.Discrete)
    pack_any(zero.space, pb.DiscreteSpace(n=0))
    with pytest.raises(ProtocolError, match="n=0, expected n >= 1"):
        proto_to_space(zero)


def test_continue_episode_is_a_field_ns3gym_peers_skip() -> None:
    """EnvActMsg.continueEpisode (our extension, field 16) parses under ns3-gym's own
    EnvActMsg (fields 1 and 2 only) as a message with no action and no stop request, and our
    messages without it are byte-identical to ns3-gym's."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    legacy = descriptor_pb2.FileDescriptorProto(name="legacy_ns3gym.proto", package="legacy")
    msg = legacy.message_type.add(name="EnvActMsg")
    msg.field.add(name="actData", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    msg.field.add(name="stopSimReq", number=2,
                  type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(legacy)
    LegacyAct = message_factory.GetMessageClass(pool.FindMessageTypeByName("legacy.EnvActMsg"))

    ours = pb.EnvActMsg()
    ours.continueEpisode.episodeSeed = (1 << 62) - 5
    theirs = LegacyAct.FromString(ours.SerializeToString())
    assert theirs.actData == b"" and theirs.stopSimReq is False
    assert pb.EnvActMsg.FromString(ours.SerializeToString()).continueEpisode.episodeSeed == \
        (1 << 62) - 5
    stop = pb.EnvActMsg(stopSimReq=True)
    assert not stop.HasField("continueEpisode")
    assert LegacyAct(stopSimReq=True).SerializeToString() == stop.SerializeToString()
