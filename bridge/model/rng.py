"""Counter-based random numbers: every draw is a pure function of (seed, stream, counters).

The batched simulator never keeps one generator for the whole batch: environment ``i`` draws
``hash(seed_i, stream, frame, index)``, so a vector of N environments produces exactly what N
single environments with the same seeds produce, a frame can be replayed for many candidate
actions (the exhaustive upper bound does that), and the ns-3 scenario can reproduce the same
traffic from the same seeds. The mixer is SplitMix64's finaliser on a linear combination of the
keys (distinct odd 64-bit multipliers), vectorised over numpy ``uint64`` arrays.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# multipliers for the key positions (odd, from the SplitMix/Murmur families)
KEY_MULT = (
    np.uint64(0xD6E8FEB86659FD93),
    np.uint64(0xA0761D6478BD642F),
    np.uint64(0xE7037ED1A0B428DB),
    np.uint64(0x8EBC6AF09C88C6E3),
    np.uint64(0x589965CC75374CC3),
)
S30, S27, S31 = np.uint64(30), np.uint64(27), np.uint64(31)

# streams: one per kind of randomness, so adding a draw never shifts another
STREAM_ARRIVALS = 1
STREAM_ONOFF = 2
STREAM_FADING = 3
STREAM_SHADOW = 4
STREAM_LOS = 5
STREAM_BLOCK = 6
STREAM_MOBILITY = 7
STREAM_INCUMBENT = 8
STREAM_POLICY = 9
STREAM_EXTERNAL = 10  # per frame: is the external interferer on
STREAM_SENSING = 11  # per (frame, channel): is a busy incumbent missed by sensing
STREAM_DEPLOYMENT = 12  # per deployment (instance seed): the external interferer's draws


def mix64(x: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """SplitMix64 finaliser, in place on a uint64 array (returns it). ``scratch``, a uint64
    array of the same shape, holds the shifted words instead of three temporaries."""
    if scratch is None:
        with np.errstate(over="ignore"):
            x += _GOLDEN
            x ^= x >> S30
            x *= _M1
            x ^= x >> S27
            x *= _M2
            x ^= x >> S31
        return x
    # array arithmetic on uint64 wraps silently (no errstate needed)
    x += _GOLDEN
    x ^= np.right_shift(x, S30, out=scratch)
    x *= _M1
    x ^= np.right_shift(x, S27, out=scratch)
    x *= _M2
    x ^= np.right_shift(x, S31, out=scratch)
    return x


def mix64_top(x: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """:func:`mix64` for callers that keep only the top 31 bits (e.g. ``>> 52`` for a 4096-entry
    table), in place: the finaliser's last step ``x ^= x >> 31`` leaves bits 33-63 as they
    are, so it is skipped."""
    x += _GOLDEN
    return mix64_top_golden(x, scratch)


def mix64_top_golden(x: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """:func:`mix64_top` of words that already include the finaliser's first step (``+
    GOLDEN``, modulo 2^64): callers that precompute a constant part of their words fold it
    in there and save a pass."""
    x ^= np.right_shift(x, S30, out=scratch)
    x *= _M1
    x ^= np.right_shift(x, S27, out=scratch)
    x *= _M2
    return x


GOLDEN = _GOLDEN  # the finaliser's additive constant (see mix64_top_golden)


def stream_part(stream: int) -> np.uint64:
    """The stream's term of :func:`hash_keys` (``stream * KEY_MULT[0]`` modulo 2^64), for
    callers that precompute the constant part of a hash."""
    return np.uint64(stream * int(KEY_MULT[0]) % (1 << 64))


def seed_key(seeds: np.ndarray | int) -> np.ndarray:
    """Per-environment 64-bit key from integer seeds (any int, negative allowed)."""
    arr = np.atleast_1d(np.asarray(seeds, dtype=np.int64)).astype(np.uint64)
    return mix64(arr.copy())


def hash_keys(base: np.ndarray, *keys: np.ndarray | int) -> np.ndarray:
    """Mix ``base`` (uint64) with integer key arrays (broadcast) into uniform 64-bit words."""
    with np.errstate(over="ignore"):
        acc = np.array(base, dtype=np.uint64, copy=True)
        for mult, key in zip(KEY_MULT, keys):
            k = np.asarray(key)
            acc = acc + k.astype(np.uint64) * mult
    return mix64(acc)


def to_uniform(words: np.ndarray) -> np.ndarray:
    """uint64 words -> float64 uniforms in [0, 1) (53 bits)."""
    return (words >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


_NORMAL_BITS = 14
_NORMAL_TABLE = np.array(
    [NormalDist().inv_cdf((i + 0.5) / (1 << _NORMAL_BITS)) for i in range(1 << _NORMAL_BITS)],
    dtype=np.float64,
)


def to_normal(words: np.ndarray) -> np.ndarray:
    """uint64 words -> standard normal variates (inverse CDF on a 2^14-point table; the table's
    extreme points are +-3.9 sigma, enough for shadowing and traffic)."""
    return _NORMAL_TABLE[(words >> np.uint64(64 - _NORMAL_BITS)).astype(np.intp)]


def table_lookup(words: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling from a quantile table whose length is a power of two."""
    bits = int(np.log2(len(table)))
    return table[(words >> np.uint64(64 - bits)).astype(np.intp)]
