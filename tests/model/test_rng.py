"""The counter-based mixer's shortcuts give the same words as the full finaliser."""

from __future__ import annotations

import numpy as np

from bridge.config import ScenarioConfig
from bridge.fallback.core import BatchedIABCore
from bridge.instance import generate_instance
from bridge.model import rng


def test_mix64_with_scratch_and_top_bits_agree_with_mix64():
    words = np.random.default_rng(0).integers(0, 2**63, size=100_000, dtype=np.int64)
    words = words.astype(np.uint64) * np.uint64(3)  # the whole 64-bit range
    full = rng.mix64(words.copy())
    assert np.array_equal(rng.mix64(words.copy(), np.empty_like(words)), full)
    top = rng.mix64_top(words.copy(), np.empty_like(words))
    assert np.array_equal(top >> np.uint64(33), full >> np.uint64(33))
    assert not np.array_equal(top, full)  # only the top bits are promised


def test_fading_tables_are_indexed_by_the_top_bits_only():
    # the fallback's fading lookup uses mix64_top, valid for tables of up to 2^31 entries
    config = ScenarioConfig()
    core = BatchedIABCore(config, [generate_instance(config, 0)])
    assert 1 << core._fade_bits == len(core.fade_los) and core._fade_bits <= 31


def test_stream_part_is_the_stream_term_of_hash_keys():
    key = rng.seed_key(np.arange(5))
    for stream in (rng.STREAM_FADING, rng.STREAM_ARRIVALS):
        words = rng.hash_keys(key, stream)
        assert np.array_equal(rng.mix64(key + rng.stream_part(stream)), words)
