"""Out-of-range action values are reported as they were passed, not after an integer cast."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bridge.fallback.env import IABEnv


@pytest.mark.parametrize(
    ("value", "dtype", "shown"),
    [(1e19, np.float64, "1e+19"), (-1e19, np.float64, "-1e+19"),
     (2**63, np.uint64, str(2**63)), (10**19, np.uint64, str(10**19)),
     (2**31, np.int64, str(2**31))],
)
def test_out_of_range_action_is_reported_as_passed(tiny_config, value, dtype, shown) -> None:
    env = IABEnv(tiny_config)
    env.reset(seed=1)
    action = np.zeros(env.layout.action_size, dtype=dtype)
    action[1] = value
    with pytest.raises(ValueError, match=rf"action\[\[1\]\]={re.escape(shown)} is out of range"):
        env.step(action)
