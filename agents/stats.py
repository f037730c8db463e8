"""Small statistics for reports: means with t-based confidence intervals, adaptation speed."""

from __future__ import annotations

import math
from collections.abc import Sequence

# two-sided 95% Student-t quantiles for 1..30 degrees of freedom (then the normal's 1.96)
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval (0 for fewer than two values)."""
    if level != 0.95:
        raise ValueError(f"level={level}: only 0.95 is tabulated")
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, 0.0
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    df = len(xs) - 1
    t = _T95[df - 1] if df <= len(_T95) else 1.96
    return m, t * math.sqrt(var / len(xs))


def episodes_to_fraction(curve: Sequence[float], fraction: float = 0.9) -> int | None:
    """First adaptation episode k at which ``curve[k]`` reaches ``fraction`` of the final
    value (for metrics where higher is better); None for an empty curve."""
    if not curve:
        return None
    final = float(curve[-1])
    for k, v in enumerate(curve):
        if final <= 0 and v >= final:
            return k
        if final > 0 and float(v) >= fraction * final:
            return k
    return len(curve) - 1
