"""The few-shot protocol's numbers: reported episodes, paired ratios, gains and the SINR
violations while adapting, on records whose answers are known."""

from __future__ import annotations

import math

import pytest

from agents.study.few_shot import (
    adaptation_episodes,
    few_shot,
    few_shot_points,
    gain_excludes_zero,
)


def test_points_are_the_protocol_within_the_budget_and_always_the_last_episode():
    assert few_shot_points(10) == [0, 1, 2, 5, 10]
    assert few_shot_points(3) == [0, 1, 2, 3]
    assert few_shot_points(7) == [0, 1, 2, 5, 7]
    assert few_shot_points(0) == [0]
    assert adaptation_episodes(10) == list(range(10))
    assert adaptation_episodes(0) == [0]


def _baseline(tp: dict[tuple[int, int], float], sinr: float = 0.2) -> dict:
    return {"kind": "baseline", "tp": tp,
            "by_episode": {k: {"throughput_mbps": v, "sinr_violation_rate": sinr}
                           for k, v in tp.items()}}


def _agent(runs: list[tuple[int, dict[int, tuple[float, float]]]]) -> dict:
    """runs: (task, {episode: (throughput, sinr)}); the mode delivers 1.5x the sample."""
    return {"kind": "agent", "runs": [
        {"task": t, "by_episode": {e: {"throughput_mbps": tp, "mode_throughput_mbps": 1.5 * tp,
                                       "sinr_violation_rate": s}
                                   for e, (tp, s) in eps.items()}}
        for t, eps in runs]}


def test_ratios_are_paired_per_task_and_episode_and_gains_remove_episode_zero():
    K = 5
    # the best heuristic's traffic differs per task and episode: the ratio must follow it
    best = _baseline({(t, e): 100.0 * (t + 1) + 10 * e for t in (0, 1) for e in range(K + 1)})
    # the agent delivers 0.8 of it at episode 0 and 0.8 + 0.04 e after e episodes, per task
    agent = _agent([(t, {e: ((0.8 + 0.04 * e) * (100.0 * (t + 1) + 10 * e), 0.1 * (e + 1))
                         for e in range(K + 1)}) for t in (0, 1)])
    out = few_shot({"best": best, "agent": agent}, "best", K)
    e = out["agent"]
    assert e["episodes"] == [0, 1, 2, 5]
    assert e["ratio"] == pytest.approx([0.8, 0.84, 0.88, 1.0])
    assert e["gain"] == pytest.approx([0.0, 0.04, 0.08, 0.2])
    # identical values on both tasks: no spread, so the intervals are 0 and nothing is
    # claimed to exclude 0 (the check needs an interval)
    assert e["gain_ci95"] == pytest.approx([0.0] * 4)
    assert gain_excludes_zero(e) == [False] * 4
    assert e["mode_ratio"] == pytest.approx([1.5 * r for r in e["ratio"]])
    # the sampled policy's SINR violations over episodes 0..K-1
    assert e["sinr_violations_during_adaptation"] == pytest.approx(
        sum(0.1 * (k + 1) for k in range(K)) / K)
    assert out["best"]["ratio"] == pytest.approx([1.0] * 4)


def test_a_gain_with_spread_is_claimed_only_when_its_interval_excludes_zero():
    best = _baseline({(t, e): 100.0 for t in range(4) for e in range(3)})
    clear = _agent([(t, {0: (80.0, 0.1), 1: (90.0 + t, 0.1), 2: (95.0 - t, 0.1)})
                    for t in range(4)])
    noisy = _agent([(t, {0: (80.0, 0.1), 1: (80.0 + (10 if t % 2 else -10), 0.1),
                         2: (80.0, 0.1)}) for t in range(4)])
    out = few_shot({"best": best, "clear": clear, "noisy": noisy}, "best", 2)
    assert gain_excludes_zero(out["clear"]) == [False, True, True]
    assert gain_excludes_zero(out["noisy"]) == [False, False, False]
    assert out["noisy"]["gain"][1] == pytest.approx(0.0)


def test_a_missing_episode_of_the_reference_gives_nan_not_a_made_up_ratio():
    best = _baseline({(0, 0): 100.0})  # episode 1 of the reference is missing
    agent = _agent([(0, {0: (50.0, 0.1), 1: (60.0, 0.1)})])
    e = few_shot({"best": best, "agent": agent}, "best", 1)["agent"]
    assert e["ratio"][0] == pytest.approx(0.5)
    assert math.isnan(e["ratio"][1]) and math.isnan(e["gain"][1])
