"""Conversion between ns3opengym protobuf messages and gymnasium spaces / numpy values.

Rules that the wire format imposes (see NS3-NOTES.md):

* Box dtypes travel as INT (int32), UINT (uint32), FLOAT (float32) or DOUBLE (float64).
  Narrower integer and float dtypes are widened (int8/int16 -> INT, uint8/uint16 -> UINT,
  float16 -> FLOAT). int64/uint64 are sent as INT/UINT only if both bounds fit in 32 bits,
  otherwise they are refused. bool Boxes are refused (use ``Discrete(2)`` or an int32 Box).
  Decoding always yields the wire dtype, so an int8 Box comes back as an int32 Box.
* Box low/high travel as one scalar float32 each. Per-element bounds are sent as their hull
  (``min(low)``, ``max(high)``) with a :class:`BoundsWidenedWarning`, or refused with
  ``strict_bounds=True``. Bounds are rounded outwards to float32 so that every value of the
  original space stays inside the decoded one. Integer bounds are clamped to the dtype range.
* ``Discrete`` has no ``start`` on the wire: only ``start == 0`` is accepted.
* Only Discrete, Box, Tuple and Dict exist in the protocol; other spaces are refused.

Everything a peer sends is bounded by :class:`DecodeLimits` (message bytes, total elements,
sub-spaces, nesting depth, Box dimensions, entries of one Tuple or Dict): a message beyond a
limit, or malformed in any other way, raises :class:`ProtocolError` before anything of its
declared size is allocated, never MemoryError, RecursionError or a numpy/gymnasium error.

The hot path is :class:`SpaceCodec`: build one per space and reuse it; it keeps scratch
messages and precomputed dtypes so encoding and decoding do no per-element Python work.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from gymnasium import spaces

from bridge.protocol import ns3opengym_pb2 as pb
from bridge.protocol.errors import ProtocolError

TYPE_URL_PREFIX = "type.googleapis.com/"

__all__ = [
    "DEFAULT_LIMITS",
    "BoundsWidenedWarning",
    "DecodeLimits",
    "SpaceCodec",
    "TYPE_URL_PREFIX",
    "data_to_proto",
    "pack_any",
    "proto_to_data",
    "proto_to_space",
    "space_to_proto",
    "type_url",
    "unpack_any",
    "wire_dtype",
]


class BoundsWidenedWarning(UserWarning):
    """Per-element Box bounds were replaced by their scalar hull to fit the wire format."""


@dataclass(frozen=True)
class DecodeLimits:
    """What a peer's message may declare at most; beyond any of these it is a ProtocolError.

    Why: a space of a few bytes can declare a Box of 2**32 entries (gymnasium would allocate
    its bounds, tens of GB) or nest Tuples deeper than Python's recursion limit. The defaults
    are far above what ns3-gym scenarios use and keep one decode under about a second and a
    few hundred MB.

    Attributes:
        max_message_bytes: bytes of one message (the Unix transport refuses a longer frame
            from its length prefix, before reading it).
        max_elements: entries of a whole space (the sum of its Box sizes, 1 per Discrete).
        max_spaces: sub-spaces of a whole space (every Discrete, Box, Tuple and Dict).
        max_depth: nesting of Tuple and Dict (a Box at top level has depth 0).
        max_dims: dimensions of one Box.
        max_children: elements of one Tuple or keys of one Dict.
    """

    max_message_bytes: int = 64 << 20
    max_elements: int = 1 << 20
    max_spaces: int = 4096
    max_depth: int = 16
    max_dims: int = 8
    max_children: int = 1024

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_elements", "max_spaces", "max_depth",
                     "max_dims", "max_children"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DecodeLimits.{name}={value!r}: expected an integer >= 1")

    def check_message(self, size: int, what: str) -> None:
        """Raise ProtocolError if a message of ``size`` bytes is over ``max_message_bytes``."""
        if size > self.max_message_bytes:
            raise ProtocolError(
                f"{what} of {size} bytes exceeds DecodeLimits.max_message_bytes="
                f"{self.max_message_bytes}"
            )


DEFAULT_LIMITS = DecodeLimits()


class _Budget:
    """What is left of the limits while one space is decoded."""

    def __init__(self, limits: DecodeLimits) -> None:
        self.limits = limits
        self.elements = 0
        self.spaces = 0

    def enter(self, where: str, depth: int) -> None:
        self.spaces += 1
        if self.spaces > self.limits.max_spaces:
            raise ProtocolError(
                f"{where}: the space has more than DecodeLimits.max_spaces="
                f"{self.limits.max_spaces} sub-spaces"
            )
        if depth > self.limits.max_depth:
            raise ProtocolError(
                f"{where}: Tuple/Dict nesting deeper than DecodeLimits.max_depth="
                f"{self.limits.max_depth}"
            )

    def children(self, where: str, count: int, kind: str) -> None:
        if count > self.limits.max_children:
            raise ProtocolError(
                f"{where}: {kind} with {count} elements, more than DecodeLimits.max_children="
                f"{self.limits.max_children}"
            )

    def add_elements(self, where: str, count: int) -> None:
        self.elements += count
        if self.elements > self.limits.max_elements:
            raise ProtocolError(
                f"{where}: the space declares more than DecodeLimits.max_elements="
                f"{self.limits.max_elements} entries in total"
            )


def type_url(message_cls: Any) -> str:
    """Return the Any type URL of a generated message class, e.g. ``...ns3opengym.BoxSpace``."""
    return TYPE_URL_PREFIX + message_cls.DESCRIPTOR.full_name


def pack_any(target: any_pb2.Any, message: Any) -> None:
    """Store ``message`` in ``target`` with the standard type URL (same bytes as Any.Pack)."""
    target.type_url = type_url(type(message))
    target.value = message.SerializeToString()


def unpack_any(source: any_pb2.Any, into: Any, where: str = "Any") -> Any:
    """Parse ``source`` into the message ``into`` after checking the type URL.

    Raises:
        ProtocolError: the type URL names another message or the payload does not parse.
    """
    expected = into.DESCRIPTOR.full_name
    if source.type_url != TYPE_URL_PREFIX + expected:
        got = source.type_url or "an empty type URL"
        raise ProtocolError(f"{where}: expected Any of type {expected}, got {got}")
    try:
        into.ParseFromString(source.value)
    except DecodeError as exc:
        raise ProtocolError(
            f"{where}: payload of {len(source.value)} bytes is not a valid {expected}: {exc}"
        ) from exc
    return into


# ---------------------------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------------------------

# wire Dtype -> (numpy dtype, name of the BoxDataContainer field that carries the values)
_WIRE_TO_NUMPY: dict[int, tuple[np.dtype, str]] = {
    pb.INT: (np.dtype(np.int32), "intData"),
    pb.UINT: (np.dtype(np.uint32), "uintData"),
    pb.FLOAT: (np.dtype(np.float32), "floatData"),
    pb.DOUBLE: (np.dtype(np.float64), "doubleData"),
}
_DATA_FIELDS = ("intData", "uintData", "floatData", "doubleData")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _box_prefix(dtype: int, shape: tuple[int, ...]) -> bytes:
    """Encoded BoxDataContainer fields 1 (dtype) and 2 (packed shape), then the tag of the
    packed float/double field; the caller appends the payload length and bytes."""
    out = b"\x08" + _varint(dtype)
    if shape:
        dims = b"".join(_varint(d) for d in shape)
        out += b"\x12" + _varint(len(dims)) + dims
    field = 5 if dtype == pb.FLOAT else 6
    return out + bytes([(field << 3) | 2])


def _dtype_name(value: int) -> str:
    return pb.Dtype.Name(value) if value in pb.Dtype.values() else str(value)


def wire_dtype(dtype: np.dtype | type, low: Any = None, high: Any = None) -> int:
    """Map a numpy dtype to the wire ``Dtype`` following the rules in the module docstring.

    ``low``/``high`` are only consulted for int64/uint64 (they must fit in 32 bits).
    """
    dt = np.dtype(dtype)
    if dt == np.bool_:
        raise ValueError(
            "Box dtype bool is not representable on the ns3opengym wire "
            "(expected int8..int32, uint8..uint32, float16..float64); "
            "use Discrete(2) or Box(0, 1, dtype=np.int32)"
        )
    if dt.kind == "f" and dt.itemsize <= 4:
        return pb.FLOAT
    if dt == np.float64:
        return pb.DOUBLE
    if dt.kind in "iu" and dt.itemsize <= 4:
        return pb.INT if dt.kind == "i" else pb.UINT
    if dt.kind in "iu" and dt.itemsize == 8:
        wire_dt = np.int32 if dt.kind == "i" else np.uint32
        info = np.iinfo(wire_dt)
        if low is not None and high is not None and np.size(low) and np.size(high):
            lo, hi = np.min(low), np.max(high)
            if lo < info.min or hi > info.max:
                raise ValueError(
                    f"Box dtype {dt} with bounds [{lo}, {hi}] does not fit the 32-bit wire type "
                    f"{np.dtype(wire_dt)} (expected bounds within [{info.min}, {info.max}])"
                )
        return pb.INT if dt.kind == "i" else pb.UINT
    raise ValueError(
        f"Box dtype {dt} is not representable on the ns3opengym wire "
        "(expected int8..int64, uint8..uint64, float16, float32 or float64)"
    )


def _f32_outward(x: float, down: bool) -> float:
    """Round ``x`` to float32, away from the inside of the interval (down for low, up for high)."""
    with np.errstate(over="ignore"):
        f = np.float32(x)
    # compare as Python floats: NumPy 2 would compare a Python float with a float32 in float32
    if down and float(f) > x:
        f = np.nextafter(f, np.float32(-np.inf))
    elif not down and float(f) < x:
        f = np.nextafter(f, np.float32(np.inf))
    return float(f)


# ---------------------------------------------------------------------------------------------
# spaces
# ---------------------------------------------------------------------------------------------


def space_to_proto(
    space: spaces.Space, name: str = "", *, strict_bounds: bool = False
) -> pb.SpaceDescription:
    """Describe a gymnasium space as a ``SpaceDescription`` (nested for Tuple and Dict).

    Raises:
        ValueError: the space (or its dtype / bounds with ``strict_bounds``) has no wire form.
    """
    desc = pb.SpaceDescription(name=name)
    if isinstance(space, spaces.Discrete):
        if int(space.start) != 0:
            raise ValueError(
                f"Discrete space {name or ''}start={space.start}: the wire format has no start "
                "(expected start=0)"
            )
        if not 0 < int(space.n) <= np.iinfo(np.int32).max:
            raise ValueError(f"Discrete n={space.n} does not fit int32 (expected 1..2**31-1)")
        desc.type = pb.Discrete
        pack_any(desc.space, pb.DiscreteSpace(n=int(space.n)))
    elif isinstance(space, spaces.Box):
        dtype = wire_dtype(space.dtype, space.low, space.high)
        low, high = space.low, space.high
        lo, hi = (float(np.min(low)), float(np.max(high))) if low.size else (0.0, 0.0)
        if low.size and (np.any(low != lo) or np.any(high != hi)):
            message = (
                f"Box {name or 'space'} has per-element bounds; the wire carries one scalar low "
                f"and high, sending the hull [{lo}, {hi}]"
            )
            if strict_bounds:
                raise ValueError(message + " refused (strict_bounds=True expects uniform bounds)")
            warnings.warn(message, BoundsWidenedWarning, stacklevel=2)
        desc.type = pb.Box
        box = pb.BoxSpace(
            low=_f32_outward(lo, down=True),
            high=_f32_outward(hi, down=False),
            dtype=dtype,
            shape=[int(d) for d in space.shape],
        )
        pack_any(desc.space, box)
    elif isinstance(space, spaces.Tuple):
        desc.type = pb.Tuple
        tup = pb.TupleSpace()
        for sub in space.spaces:
            tup.element.append(space_to_proto(sub, strict_bounds=strict_bounds))
        pack_any(desc.space, tup)
    elif isinstance(space, spaces.Dict):
        desc.type = pb.Dict
        dct = pb.DictSpace()
        for key, sub in space.spaces.items():
            if not isinstance(key, str):
                raise ValueError(f"Dict space key {key!r} is not a str (expected str keys)")
            dct.element.append(space_to_proto(sub, key, strict_bounds=strict_bounds))
        pack_any(desc.space, dct)
    else:
        raise ValueError(
            f"space {type(space).__name__} has no ns3opengym wire form "
            "(expected Discrete, Box, Tuple or Dict)"
        )
    return desc


def _int_bound(value: float, dtype: np.dtype, low: bool) -> int:
    info = np.iinfo(dtype)
    if math.isinf(value):
        return int(info.min) if value < 0 else int(info.max)
    bound = math.ceil(value) if low else math.floor(value)
    return int(min(max(bound, info.min), info.max))


def proto_to_space(
    desc: pb.SpaceDescription, where: str = "space", limits: DecodeLimits = DEFAULT_LIMITS
) -> spaces.Space:
    """Build the gymnasium space described by a ``SpaceDescription``, within ``limits``.

    Raises:
        ProtocolError: unknown type, Any payload of the wrong type, impossible parameters, or
            a space beyond ``limits``; nothing else (any other failure of gymnasium or numpy
            on a hostile description is reported as a ProtocolError too).
    """
    try:
        return _proto_to_space(desc, where, _Budget(limits), 0)
    except ProtocolError:
        raise
    except (ValueError, TypeError, OverflowError, RuntimeError, MemoryError) as exc:
        raise ProtocolError(f"{where}: the space cannot be built: {exc!r}") from exc


def _proto_to_space(desc: pb.SpaceDescription, where: str, budget: _Budget,
                    depth: int) -> spaces.Space:
    budget.enter(where, depth)
    kind = desc.type
    if kind == pb.Discrete:
        msg = unpack_any(desc.space, pb.DiscreteSpace(), where)
        if msg.n <= 0:
            raise ProtocolError(f"{where}: DiscreteSpace.n={msg.n}, expected n >= 1")
        budget.add_elements(where, 1)
        return spaces.Discrete(int(msg.n))
    if kind == pb.Box:
        msg = unpack_any(desc.space, pb.BoxSpace(), where)
        if msg.dtype not in _WIRE_TO_NUMPY:
            raise ProtocolError(
                f"{where}: BoxSpace.dtype={msg.dtype}, expected INT, UINT, FLOAT or DOUBLE"
            )
        if len(msg.shape) > budget.limits.max_dims:
            raise ProtocolError(
                f"{where}: BoxSpace has {len(msg.shape)} dimensions, more than "
                f"DecodeLimits.max_dims={budget.limits.max_dims}"
            )
        dtype = _WIRE_TO_NUMPY[msg.dtype][0]
        shape = tuple(int(d) for d in msg.shape)
        budget.add_elements(where, math.prod(shape))  # exact: Python integers
        low, high = float(msg.low), float(msg.high)
        if math.isnan(low) or math.isnan(high) or low > high:
            raise ProtocolError(f"{where}: BoxSpace bounds [{low}, {high}], expected low <= high")
        if dtype.kind in "iu":
            ilow, ihigh = _int_bound(low, dtype, True), _int_bound(high, dtype, False)
            if ilow > ihigh:
                raise ProtocolError(
                    f"{where}: BoxSpace bounds [{low}, {high}] contain no {dtype} value"
                )
            return spaces.Box(ilow, ihigh, shape=shape, dtype=dtype)
        return spaces.Box(low, high, shape=shape, dtype=dtype)
    if kind == pb.Tuple:
        msg = unpack_any(desc.space, pb.TupleSpace(), where)
        budget.children(where, len(msg.element), "TupleSpace")
        return spaces.Tuple([
            _proto_to_space(el, f"{where}[{i}]", budget, depth + 1)
            for i, el in enumerate(msg.element)
        ])
    if kind == pb.Dict:
        msg = unpack_any(desc.space, pb.DictSpace(), where)
        budget.children(where, len(msg.element), "DictSpace")
        items: dict[str, spaces.Space] = {}
        for el in msg.element:
            if el.name in items:
                raise ProtocolError(f"{where}: DictSpace key {el.name!r} appears twice")
            items[el.name] = _proto_to_space(el, f"{where}[{el.name!r}]", budget, depth + 1)
        return spaces.Dict(items)
    raise ProtocolError(
        f"{where}: SpaceDescription.type={kind}, expected Discrete(1), Box(2), Tuple(3) or Dict(4)"
    )


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------

_URL_DISCRETE = type_url(pb.DiscreteDataContainer)
_URL_BOX = type_url(pb.BoxDataContainer)
_URL_TUPLE = type_url(pb.TupleDataContainer)
_URL_DICT = type_url(pb.DictDataContainer)
_TYPE_NAMES = {pb.Discrete: "Discrete", pb.Box: "Box", pb.Tuple: "Tuple", pb.Dict: "Dict"}


class SpaceCodec:
    """Encoder/decoder of values of one gymnasium space to and from ``DataContainer``.

    Build once per space (cheap) and reuse: it precomputes the wire dtype, shape and bounds and
    keeps scratch messages. Not thread-safe (one codec per thread).
    """

    def __init__(self, space: spaces.Space, name: str = "") -> None:
        self.space = space
        self.name = name
        self._children: list[SpaceCodec] = []
        if isinstance(space, spaces.Discrete):
            self.kind = pb.Discrete
            self._n = int(space.n)
            if int(space.start) != 0:
                raise ValueError(f"Discrete start={space.start}, expected start=0 on the wire")
            self._scratch: Any = pb.DiscreteDataContainer()
        elif isinstance(space, spaces.Box):
            self.kind = pb.Box
            self._wire_dtype = wire_dtype(space.dtype, space.low, space.high)
            self._np_dtype, self._field = _WIRE_TO_NUMPY[self._wire_dtype]
            self._shape = tuple(int(d) for d in space.shape)
            self._size = int(np.prod(self._shape, dtype=np.int64))
            self._low = np.asarray(space.low)
            self._high = np.asarray(space.high)
            self._is_float = self._np_dtype.kind == "f"
            # uniform finite bounds allow a two-reduction range check (NaN fails it too)
            self._uniform = (
                self._low.size > 0
                and bool(np.all(self._low == self._low.flat[0]))
                and bool(np.all(self._high == self._high.flat[0]))
                and bool(np.isfinite(self._low.flat[0]) and np.isfinite(self._high.flat[0]))
            )
            if self._uniform:
                self._low_scalar = self._low.flat[0]
                self._high_scalar = self._high.flat[0]
            # float payloads are fixed-width on the wire: pre-encode everything but the values
            self._packed_prefix = _box_prefix(self._wire_dtype, self._shape)
            self._le_dtype = self._np_dtype.newbyteorder("<")
            payload_bytes = self._size * self._np_dtype.itemsize
            # complete canonical header in front of the float payload (None: no fast path)
            self._packed_header = (
                self._packed_prefix + _varint(payload_bytes)
                if self._is_float and payload_bytes
                else None
            )
            self._packed_len = (
                len(self._packed_header) + payload_bytes if self._packed_header else -1
            )
            self._scratch = pb.BoxDataContainer()
        elif isinstance(space, spaces.Tuple):
            self.kind = pb.Tuple
            self._children = [SpaceCodec(sub) for sub in space.spaces]
            self._scratch = pb.TupleDataContainer()
        elif isinstance(space, spaces.Dict):
            self.kind = pb.Dict
            self._children = [SpaceCodec(sub, key) for key, sub in space.spaces.items()]
            self._keys = [c.name for c in self._children]
            self._scratch = pb.DictDataContainer()
        else:
            raise ValueError(
                f"space {type(space).__name__} has no ns3opengym wire form "
                "(expected Discrete, Box, Tuple or Dict)"
            )

    # ----------------------------------------------------------------------------- encode
    def check(self, value: Any, where: str = "value") -> Any:
        """Validate ``value`` against the space; return it normalised (arrays, ints, tuples).

        Raises:
            ValueError: wrong type, shape, NaN/inf, non-integral or out-of-range entries; the
                message names the offending path (e.g. ``action[1]['power']``).
        """
        if self.kind == pb.Box:
            return self._check_box(value, where)
        if self.kind == pb.Discrete:
            return self._check_discrete(value, where)
        if self.kind == pb.Tuple:
            if not isinstance(value, Sequence) or isinstance(value, str | bytes):
                raise ValueError(f"{where} is {type(value).__name__}, expected a tuple")
            if len(value) != len(self._children):
                raise ValueError(
                    f"{where} has {len(value)} elements, expected {len(self._children)}"
                )
            return tuple(
                c.check(v, f"{where}[{i}]")
                for i, (c, v) in enumerate(zip(self._children, value, strict=True))
            )
        if not isinstance(value, Mapping):
            raise ValueError(f"{where} is {type(value).__name__}, expected a dict")
        missing = [k for k in self._keys if k not in value]
        extra = [k for k in value if k not in self._keys]
        if missing or extra:
            raise ValueError(
                f"{where} keys {sorted(map(str, value))}: missing {missing}, unexpected {extra} "
                f"(expected {self._keys})"
            )
        return {c.name: c.check(value[c.name], f"{where}[{c.name!r}]") for c in self._children}

    def _check_discrete(self, value: Any, where: str) -> int:
        if isinstance(value, np.ndarray):
            if value.shape != () and value.shape != (1,):
                raise ValueError(f"{where} has shape {value.shape}, expected a scalar integer")
            value = value.reshape(()).item()
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
            if isinstance(value, float | np.floating) and float(value).is_integer():
                value = int(value)
            else:
                raise ValueError(f"{where}={value!r}, expected an integer in [0, {self._n})")
        ivalue = int(value)
        if not 0 <= ivalue < self._n:
            raise ValueError(
                f"{where}={ivalue} out of range, expected an integer in [0, {self._n})"
            )
        return ivalue

    def _check_box(self, value: Any, where: str) -> np.ndarray:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where} is not array-like ({exc}), expected {self.space}") from exc
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{where} has dtype {arr.dtype}, expected numbers for {self.space}")
        if arr.shape != self._shape:
            raise ValueError(f"{where} has shape {arr.shape}, expected {self._shape}")
        if (
            self._uniform
            and arr.size
            and (arr.dtype.kind != "f" or self._is_float)
            and arr.min() >= self._low_scalar
            and arr.max() <= self._high_scalar
        ):
            return arr
        if arr.dtype.kind == "f":
            finite = np.isfinite(arr)
            if not finite.all():
                idx = tuple(int(i) for i in np.argwhere(~finite)[0])
                raise ValueError(f"{where}{list(idx)}={arr[idx]} is not finite (NaN or inf)")
            if not self._is_float and not np.all(arr == np.round(arr)):
                idx = tuple(int(i) for i in np.argwhere(arr != np.round(arr))[0])
                raise ValueError(
                    f"{where}{list(idx)}={arr[idx]} is not an integer (Box dtype {self._np_dtype})"
                )
        bad = (arr < self._low) | (arr > self._high)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            low = self._low[idx] if self._low.ndim else self._low
            high = self._high[idx] if self._high.ndim else self._high
            raise ValueError(
                f"{where}{list(idx)}={arr[idx]} out of range, expected within [{low}, {high}]"
            )
        return arr

    def encode(
        self, value: Any, out: pb.DataContainer | None = None, *, validate: bool = True
    ) -> pb.DataContainer:
        """Write ``value`` into ``out`` (a new ``DataContainer`` if None) and return it."""
        if out is None:
            out = pb.DataContainer()
        if validate:
            value = self.check(value)
        out.type = self.kind
        if self.name:
            out.name = self.name
        any_msg = out.data
        if self.kind == pb.Box:
            any_msg.type_url = _URL_BOX
            flat = np.asarray(value, dtype=self._np_dtype).ravel()
            if self._is_float:
                # canonical packed encoding, byte-identical to SerializeToString()
                payload = flat.astype(self._le_dtype, copy=False).tobytes()
                if payload:
                    any_msg.value = b"".join((self._packed_prefix, _varint(len(payload)), payload))
                else:
                    any_msg.value = self._packed_prefix[:-1]
            else:
                box = self._scratch
                box.Clear()
                box.dtype = self._wire_dtype
                box.shape.extend(self._shape)
                getattr(box, self._field).extend(flat.tolist())
                any_msg.value = box.SerializeToString()
        elif self.kind == pb.Discrete:
            self._scratch.data = int(value)
            any_msg.type_url = _URL_DISCRETE
            any_msg.value = self._scratch.SerializeToString()
        elif self.kind == pb.Tuple:
            tup = pb.TupleDataContainer()
            for child, sub in zip(self._children, value, strict=True):
                child.encode(sub, tup.element.add(), validate=False)
            any_msg.type_url = _URL_TUPLE
            any_msg.value = tup.SerializeToString()
        else:
            dct = pb.DictDataContainer()
            for child in self._children:
                child.encode(value[child.name], dct.element.add(), validate=False)
            any_msg.type_url = _URL_DICT
            any_msg.value = dct.SerializeToString()
        return out

    # ----------------------------------------------------------------------------- decode
    def decode(self, container: pb.DataContainer, where: str = "data") -> Any:
        """Return the value carried by ``container`` as a member of the space.

        Box -> ``np.ndarray`` of the space dtype and shape, Discrete -> ``np.int64``,
        Tuple -> ``tuple``, Dict -> ``dict`` in the space's key order.

        Raises:
            ProtocolError: the container does not match the space (type, Any URL, shape, dtype,
                element count, Dict keys).
        """
        if container.type != self.kind:
            raise ProtocolError(
                f"{where}: DataContainer.type={_TYPE_NAMES.get(container.type, container.type)}, "
                f"expected {_TYPE_NAMES[self.kind]} for {self.space}"
            )
        if self.kind == pb.Box:
            any_msg = container.data
            header = self._packed_header
            if header is not None and any_msg.type_url == _URL_BOX:
                raw = any_msg.value
                # canonical packed encoding (what protobuf writers emit): read it in place
                if len(raw) == self._packed_len and raw.startswith(header):
                    flat = np.frombuffer(raw, self._le_dtype, self._size, len(header))
                    return flat.astype(self._np_dtype).reshape(self._shape)
            box = unpack_any(any_msg, self._scratch, where)
            if box.dtype != self._wire_dtype:
                raise ProtocolError(
                    f"{where}: BoxDataContainer.dtype={_dtype_name(box.dtype)}, "
                    f"expected {_dtype_name(self._wire_dtype)}"
                )
            if tuple(box.shape) != self._shape:
                raise ProtocolError(
                    f"{where}: BoxDataContainer.shape={list(box.shape)}, "
                    f"expected {list(self._shape)}"
                )
            values = getattr(box, self._field)
            if len(values) != self._size:
                filled = [f for f in _DATA_FIELDS if len(getattr(box, f))]
                raise ProtocolError(
                    f"{where}: BoxDataContainer.{self._field} has {len(values)} values, "
                    f"expected {self._size} for shape {list(self._shape)} "
                    f"(fields with data: {filled})"
                )
            return np.array(values, dtype=self._np_dtype).reshape(self._shape)
        if self.kind == pb.Discrete:
            msg = unpack_any(container.data, self._scratch, where)
            return np.int64(msg.data)
        if self.kind == pb.Tuple:
            tup = unpack_any(container.data, pb.TupleDataContainer(), where)
            if len(tup.element) != len(self._children):
                raise ProtocolError(
                    f"{where}: TupleDataContainer has {len(tup.element)} elements, "
                    f"expected {len(self._children)}"
                )
            return tuple(
                c.decode(el, f"{where}[{i}]")
                for i, (c, el) in enumerate(zip(self._children, tup.element, strict=True))
            )
        dct = unpack_any(container.data, pb.DictDataContainer(), where)
        if len(dct.element) != len(self._keys):
            raise ProtocolError(
                f"{where}: DictDataContainer has {len(dct.element)} keys, expected {self._keys}"
            )
        by_name = {el.name: el for el in dct.element}
        if len(by_name) != len(dct.element) or set(by_name) != set(self._keys):
            raise ProtocolError(
                f"{where}: DictDataContainer keys {[el.name for el in dct.element]}, "
                f"expected {self._keys}"
            )
        return {c.name: c.decode(by_name[c.name], f"{where}[{c.name!r}]") for c in self._children}


def data_to_proto(
    space: spaces.Space, value: Any, out: pb.DataContainer | None = None, *, validate: bool = True
) -> pb.DataContainer:
    """Encode ``value`` (a member of ``space``) as a ``DataContainer``.

    For repeated use on the same space build a :class:`SpaceCodec` once instead.

    Raises:
        ValueError: with ``validate``, the value is not a member of the space.
    """
    return SpaceCodec(space).encode(value, out, validate=validate)


def proto_to_data(
    container: pb.DataContainer, space: spaces.Space | None = None, where: str = "data",
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> Any:
    """Decode a ``DataContainer``; check it against ``space`` if given.

    Without a space the container describes itself: Box -> array of the wire dtype and shape,
    Discrete -> ``np.int64``, Tuple -> ``tuple``, Dict -> ``dict`` in wire order; its nesting,
    dimensions and entries are bounded by ``limits`` as a space's are.

    Raises:
        ProtocolError: the container is malformed, beyond ``limits`` or does not match ``space``.
    """
    if space is not None:
        return SpaceCodec(space).decode(container, where)
    return _proto_to_data(container, where, _Budget(limits), 0)


def _proto_to_data(container: pb.DataContainer, where: str, budget: _Budget, depth: int) -> Any:
    budget.enter(where, depth)
    kind = container.type
    if kind == pb.Discrete:
        budget.add_elements(where, 1)
        return np.int64(unpack_any(container.data, pb.DiscreteDataContainer(), where).data)
    if kind == pb.Box:
        box = unpack_any(container.data, pb.BoxDataContainer(), where)
        if box.dtype not in _WIRE_TO_NUMPY:
            raise ProtocolError(
                f"{where}: BoxDataContainer.dtype={box.dtype}, expected INT, UINT, FLOAT or DOUBLE"
            )
        if len(box.shape) > budget.limits.max_dims:
            raise ProtocolError(
                f"{where}: BoxDataContainer has {len(box.shape)} dimensions, more than "
                f"DecodeLimits.max_dims={budget.limits.max_dims}"
            )
        dtype, field = _WIRE_TO_NUMPY[box.dtype]
        shape = tuple(int(d) for d in box.shape)
        values = getattr(box, field)
        size = math.prod(shape)
        if len(values) != size:
            filled = [f for f in _DATA_FIELDS if len(getattr(box, f))]
            raise ProtocolError(
                f"{where}: BoxDataContainer.{field} has {len(values)} values, expected {size} "
                f"for shape {list(shape)} (fields with data: {filled})"
            )
        budget.add_elements(where, size)
        return np.array(values, dtype=dtype).reshape(shape)
    if kind == pb.Tuple:
        tup = unpack_any(container.data, pb.TupleDataContainer(), where)
        budget.children(where, len(tup.element), "TupleDataContainer")
        return tuple(_proto_to_data(el, f"{where}[{i}]", budget, depth + 1)
                     for i, el in enumerate(tup.element))
    if kind == pb.Dict:
        dct = unpack_any(container.data, pb.DictDataContainer(), where)
        budget.children(where, len(dct.element), "DictDataContainer")
        return {el.name: _proto_to_data(el, f"{where}[{el.name!r}]", budget, depth + 1)
                for el in dct.element}
    raise ProtocolError(
        f"{where}: DataContainer.type={kind}, expected Discrete(1), Box(2), Tuple(3) or Dict(4)"
    )
