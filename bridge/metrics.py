"""Metric definitions shared by both backends, every agent and every report."""

from __future__ import annotations

import numpy as np

# Episode metrics, in the order reports show them, with their units.
METRICS: dict[str, str] = {
    "throughput_mbps": "Mb/s delivered to UEs over the episode (network total)",
    "per_ue_throughput_mbps": "mean per-UE delivered Mb/s",
    "sinr_violation_rate": "scheduled link-channel-frames with SINR below threshold / scheduled",
    "latency_violation_rate": "bytes dropped past their delay budget / (delivered + dropped)",
    "jain_fairness": "Jain index of per-UE delivered throughput",
    "offered_mbps": "Mb/s that arrived at the donor",
    "incumbent_collision_rate": "transmissions on incumbent-occupied channels / scheduled",
    "half_duplex_conflicts": "IAB transmissions dropped for half-duplex, per frame",
    "invalid_actions": "masked choices taken (treated as idle), per frame",
}

HEADLINE_METRICS = ("throughput_mbps", "sinr_violation_rate", "latency_violation_rate",
                    "jain_fairness")


def jain_index(x: np.ndarray, valid: np.ndarray | None = None, axis: int = -1) -> np.ndarray:
    """Jain fairness (sum x)^2 / (n sum x^2) over ``axis``, counting only ``valid`` entries;
    0 when nobody was served (an idle network earns no fairness credit)."""
    x = np.asarray(x, dtype=np.float64)
    if valid is None:
        valid = np.ones(x.shape, dtype=bool)
    xv = np.where(valid, x, 0.0)
    n = valid.sum(axis=axis)
    s1 = xv.sum(axis=axis)
    s2 = (xv * xv).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        j = s1 * s1 / (n * s2)
    return np.where(s2 > 0, j, 0.0)


def episode_metrics(acc: dict[str, np.ndarray], frames: np.ndarray, frame_s: float,
                    ue_valid: np.ndarray) -> dict[str, np.ndarray]:
    """Per-environment episode metrics from the accumulators the simulators keep:
    ``delivered_ue`` (N, U) bytes, ``dropped`` (N,), ``arrived`` (N,), ``scheduled`` (N,),
    ``sinr_violations`` (N,), ``incumbent_collisions`` (N,), ``half_duplex`` (N,),
    ``invalid`` (N,)."""
    frames = np.maximum(np.asarray(frames, dtype=np.float64), 1.0)
    duration = frames * frame_s
    delivered_ue = np.where(ue_valid, acc["delivered_ue"], 0).astype(np.float64)
    delivered = delivered_ue.sum(axis=-1)
    n_ue = np.maximum(ue_valid.sum(axis=-1), 1)
    sched = np.maximum(acc["scheduled"].astype(np.float64), 1.0)
    handled = np.maximum(delivered + acc["dropped"], 1.0)
    tp = delivered * 8 / duration / 1e6
    return {
        "throughput_mbps": tp,
        "per_ue_throughput_mbps": tp / n_ue,
        "sinr_violation_rate": acc["sinr_violations"] / sched,
        "latency_violation_rate": acc["dropped"] / handled,
        "jain_fairness": jain_index(delivered_ue, ue_valid),
        "offered_mbps": acc["arrived"] * 8 / duration / 1e6,
        "incumbent_collision_rate": acc["incumbent_collisions"] / sched,
        "half_duplex_conflicts": acc["half_duplex"] / frames,
        "invalid_actions": acc["invalid"] / frames,
    }
