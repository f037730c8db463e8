"""Hostile and broken messages from a peer: every one is a quick ProtocolError, nothing else.

Hand-built adversarial messages (the issue's: a Box of 2**32-1 entries, 300M entries, Tuples
nested 400 deep, 40 and 64 dimensions, a Dict of 200k keys), then random, truncated and
mutated ones. Each must decode or raise ProtocolError within a bounded time and memory;
MemoryError, RecursionError, numpy or gymnasium errors are failures.
"""

from __future__ import annotations

import random
import resource
import time

import numpy as np
import pytest
from gymnasium import spaces

from bridge.ns3.connection import decode_sim_init, decode_state
from bridge.protocol import ns3opengym_pb2 as pb
from bridge.protocol.codec import (
    DecodeLimits,
    SpaceCodec,
    pack_any,
    proto_to_data,
    space_to_proto,
)
from bridge.protocol.errors import ProtocolError

PER_MESSAGE_S = 2.0


def box_desc(shape: list[int], dtype: int = pb.FLOAT, low: float = -1.0,
             high: float = 1.0) -> pb.SpaceDescription:
    desc = pb.SpaceDescription(type=pb.Box)
    pack_any(desc.space, pb.BoxSpace(low=low, high=high, dtype=dtype, shape=shape))
    return desc


def init_bytes(obs: pb.SpaceDescription, act: pb.SpaceDescription | None = None) -> bytes:
    act = act if act is not None else box_desc([2])
    return pb.SimInitMsg(simProcessId=1, obsSpace=obs, actSpace=act).SerializeToString()


def nested_tuple(depth: int) -> pb.SpaceDescription:
    desc = box_desc([1])
    for _ in range(depth):
        outer = pb.SpaceDescription(type=pb.Tuple)
        pack_any(outer.space, pb.TupleSpace(element=[desc]))
        desc = outer
    return desc


def wide_dict(keys: int) -> pb.SpaceDescription:
    dct = pb.DictSpace()
    for k in range(keys):
        el = dct.element.add(type=pb.Discrete, name=f"k{k}")
        pack_any(el.space, pb.DiscreteSpace(n=2))
    desc = pb.SpaceDescription(type=pb.Dict)
    pack_any(desc.space, dct)
    return desc


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def expect_protocol_error(raw: bytes, limits: DecodeLimits | None = None) -> str:
    start = time.perf_counter()
    with pytest.raises(ProtocolError) as info:
        decode_sim_init(raw, limits or DecodeLimits())
    assert time.perf_counter() - start < PER_MESSAGE_S
    return str(info.value)


@pytest.mark.parametrize(
    ("obs", "message"),
    [
        (box_desc([2**32 - 1]), "max_elements"),
        (box_desc([300_000_000]), "max_elements"),
        (box_desc([2] * 40), "max_dims"),
        (box_desc([2] * 64), "max_dims"),
        (box_desc([65536, 65536]), "max_elements"),
        (nested_tuple(400), "max_depth"),
        (wide_dict(200_000), "max_children"),
        (box_desc([4], low=float("nan")), "expected low <= high"),
        (box_desc([4], low=2.0, high=1.0), "expected low <= high"),
        (box_desc([4], dtype=99), "BoxSpace.dtype"),
    ],
)
def test_hand_built_adversarial_spaces_are_refused_quickly(obs: pb.SpaceDescription,
                                                           message: str) -> None:
    before = peak_rss_mb()
    text = expect_protocol_error(init_bytes(obs))
    assert message in text
    assert peak_rss_mb() - before < 200  # no allocation of the declared size


def test_many_small_sub_spaces_hit_the_space_count() -> None:
    tup = pb.TupleSpace(element=[box_desc([0]) for _ in range(1000)])
    wide = pb.SpaceDescription(type=pb.Tuple)
    pack_any(wide.space, tup)
    outer = pb.TupleSpace(element=[wide] * 8)
    desc = pb.SpaceDescription(type=pb.Tuple)
    pack_any(desc.space, outer)
    assert "max_spaces" in expect_protocol_error(init_bytes(desc))


def test_limits_are_configurable_and_checked() -> None:
    raw = init_bytes(box_desc([100]))
    assert "max_elements" in expect_protocol_error(raw, DecodeLimits(max_elements=99))
    decode_sim_init(raw, DecodeLimits(max_elements=100 + 2))  # obs + act fit exactly
    assert "max_message_bytes" in expect_protocol_error(raw, DecodeLimits(max_message_bytes=10))
    with pytest.raises(ValueError, match="max_depth"):
        DecodeLimits(max_depth=0)


def test_self_describing_data_is_bounded_too() -> None:
    inner = pb.DataContainer(type=pb.Discrete)
    pack_any(inner.data, pb.DiscreteDataContainer(data=1))
    for _ in range(300):
        outer = pb.DataContainer(type=pb.Tuple)
        pack_any(outer.data, pb.TupleDataContainer(element=[inner]))
        inner = outer
    with pytest.raises(ProtocolError, match="max_depth"):
        proto_to_data(inner)
    box = pb.DataContainer(type=pb.Box)
    pack_any(box.data, pb.BoxDataContainer(dtype=pb.INT, shape=[2] * 20, intData=[]))
    with pytest.raises(ProtocolError, match="max_dims"):
        proto_to_data(box)


# ---------------------------------------------------------------------------- random fuzzing
OBS_SPACE = spaces.Dict({
    "obs": spaces.Box(-np.inf, np.inf, (6,), np.float32),
    "mask": spaces.Box(0, 1, (3, 2), np.uint32),
    "t": spaces.Tuple([spaces.Discrete(4), spaces.Box(-1.0, 1.0, (2,), np.float64)]),
})


def valid_messages() -> tuple[bytes, bytes]:
    init = pb.SimInitMsg(simProcessId=3, obsSpace=space_to_proto(OBS_SPACE),
                         actSpace=space_to_proto(spaces.Box(0, 5, (4,), np.int32)))
    codec = SpaceCodec(OBS_SPACE)
    state = pb.EnvStateMsg(reward=1.5, info="{}")
    codec.encode(OBS_SPACE.sample(), state.obsData)
    return init.SerializeToString(), state.SerializeToString()


def random_varint(rng: random.Random) -> bytes:
    value = rng.choice([0, 1, 2, 4, 127, 128, 2**31 - 1, 2**32 - 1, 2**63, rng.getrandbits(64)])
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def mutate(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:  # flip a bit
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:  # insert a random varint (huge lengths, counts, dims)
            data[pos:pos] = random_varint(rng)
        elif op == 2 and data:  # delete a few bytes
            del data[pos:pos + rng.randint(1, 8)]
        elif op == 3:  # duplicate a slice (repeated fields, nested messages)
            a = rng.randrange(len(data) + 1)
            data[pos:pos] = data[a:a + rng.randint(1, 64)]
        else:  # overwrite with a random byte
            if data:
                data[min(pos, len(data) - 1)] = rng.randrange(256)
    return bytes(data)


def decode_or_refuse(kind: str, raw: bytes, codec: SpaceCodec) -> bool:
    """True if the message decoded, False if it was refused with ProtocolError."""
    start = time.perf_counter()
    try:
        if kind == "init":
            decode_sim_init(raw)
        else:
            decode_state(raw, codec)
        ok = True
    except ProtocolError:
        ok = False
    elapsed = time.perf_counter() - start
    assert elapsed < PER_MESSAGE_S, f"{kind} message of {len(raw)} bytes took {elapsed:.2f} s"
    return ok


def test_random_truncated_and_mutated_messages_decode_or_raise_protocol_error() -> None:
    rng = random.Random(20261201)
    init, state = valid_messages()
    codec = SpaceCodec(OBS_SPACE)
    counts = {"decoded": 0, "refused": 0}
    deadline = time.monotonic() + 30.0  # bounded: the suite runs this in CI
    cases = 0
    before = peak_rss_mb()
    while cases < 6000 and time.monotonic() < deadline:
        kind, raw = rng.choice([("init", init), ("state", state)])
        style = cases % 3
        if style == 0:
            raw = raw[: rng.randrange(len(raw))]
        elif style == 1:
            raw = mutate(raw, rng)
        else:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        counts["decoded" if decode_or_refuse(kind, raw, codec) else "refused"] += 1
        cases += 1
    print(f"fuzz: {cases} messages, {counts}")
    assert cases >= 1000 and counts["refused"] > cases // 3
    assert peak_rss_mb() - before < 300


def random_space(rng: random.Random, depth: int = 0) -> pb.SpaceDescription:
    """A random space description, hostile one time in a few: huge or many dimensions, odd
    dtypes and bounds, deep or wide nesting, wrong Any payloads."""

    def pick(usual: list, hostile: list) -> object:
        return rng.choice(hostile if rng.random() < 0.15 else usual)

    kind = pick([pb.Discrete, pb.Box, pb.Box, pb.Tuple, pb.Dict], [0, 7])
    if depth > 8:
        kind = pb.Box
    desc = pb.SpaceDescription(type=kind)
    if kind == pb.Discrete:
        pack_any(desc.space, pb.DiscreteSpace(n=pick([1, 3, 100], [-5, 0, 2**31 - 1])))
    elif kind in (pb.Tuple, pb.Dict):
        width = pick([1, 2, 3], [0, 40, 1100]) if depth < 1 else pick([1, 2], [0, 1, 2])
        children = [random_space(rng, depth + 1) for _ in range(min(width, 3))]
        children = [children[i % len(children)] for i in range(width)] if children else []
        if kind == pb.Tuple:
            pack_any(desc.space, pb.TupleSpace(element=children))
        else:
            copies = []
            for i, child in enumerate(children):
                named = pb.SpaceDescription()
                named.CopyFrom(child)
                named.name = pick([f"k{i}"], ["dup", ""])
                copies.append(named)
            pack_any(desc.space, pb.DictSpace(element=copies))
    else:
        dims = pick([0, 1, 2, 3], [9, 33, 65])
        shape = [pick([1, 2, 7], [0, 2**16, 2**32 - 1]) for _ in range(dims)]
        bounds = pick([(-1.0, 1.0), (0.0, 5.0), (float("-inf"), float("inf"))],
                      [(1.0, -1.0), (float("nan"), 0.0), (3.4e38, float("inf")),
                       (float("inf"), float("inf"))])
        pack_any(desc.space, pb.BoxSpace(low=bounds[0], high=bounds[1],
                                         dtype=pick([1, 2, 3, 4], [0, 9]), shape=shape))
    if rng.random() < 0.03:
        desc.space.type_url = rng.choice(["", "type.googleapis.com/ns3opengym.BoxSpace",
                                          "type.googleapis.com/other.Message"])
    return desc


def leaf_spaces(space: spaces.Space) -> list[spaces.Space]:
    if isinstance(space, spaces.Tuple):
        return [leaf for sub in space.spaces for leaf in leaf_spaces(sub)]
    if isinstance(space, spaces.Dict):
        return [leaf for sub in space.spaces.values() for leaf in leaf_spaces(sub)]
    return [space]


def test_random_hostile_spaces_build_or_raise_protocol_error() -> None:
    rng = random.Random(7)
    built = refused = 0
    slowest = grown = 0.0
    deadline = time.monotonic() + 10.0
    while built + refused < 1500 and time.monotonic() < deadline:
        raw = init_bytes(random_space(rng), random_space(rng))
        start, rss = time.perf_counter(), peak_rss_mb()
        try:
            init = decode_sim_init(raw)
        except ProtocolError:
            refused += 1
            continue
        finally:
            slowest = max(slowest, time.perf_counter() - start)
            grown = max(grown, peak_rss_mb() - rss)
        built += 1
        # an accepted space takes its own (small enough) samples back through the decoder
        space = init.observation_space
        if sum(int(np.prod(s.shape or (1,))) for s in leaf_spaces(space)) > 10_000:
            continue
        codec = SpaceCodec(space)
        sample = space.sample()
        try:
            codec.check(sample)
        except ValueError:
            continue  # gymnasium sampled inf from a half-infinite Box: not sendable
        state = pb.EnvStateMsg()
        codec.encode(sample, state.obsData)
        decode_state(state.SerializeToString(), codec)
    print(f"random spaces: {built} built, {refused} refused, slowest {slowest:.3f} s, "
          f"peak memory growth in a decode {grown:.0f} MB")
    assert slowest < PER_MESSAGE_S and grown < 200
    assert built > 10 and refused > 100
