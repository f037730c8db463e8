"""The report's ratios compare methods on the same episodes: a fixed policy's all-episode
mean with the reference's all-episode mean, a last-episode value with the reference's last
episode, whatever the reference's own table value is."""

from __future__ import annotations

import pytest

from agents.study.labels import GAIN, METRICS, MODE_PREFIX
from agents.study.report import _summarise

K = 2  # episodes 0..K


def _records(tp: list[float], sinr: list[float]) -> list[dict[str, float]]:
    return [{k: 0.0 for k in METRICS} | {"throughput_mbps": t, "sinr_violation_rate": s}
            for t, s in zip(tp, sinr)]


def _baseline(tp: list[float], sinr: list[float], adaptive: bool) -> dict:
    recs = _records(tp, sinr)
    finals = [recs[-1]] if adaptive else [{k: sum(r[k] for r in recs) / len(recs)
                                           for k in METRICS}]
    return {"kind": "baseline", "last_episode": adaptive, "finals": finals, "curve": recs,
            "tp": {(0, e): r["throughput_mbps"] for e, r in enumerate(recs)},
            "by_episode": {(0, e): r for e, r in enumerate(recs)}}


def _agent(tp: list[float], sinr: list[float]) -> dict:
    recs = [r | {MODE_PREFIX + k: v for k, v in r.items()} for r in _records(tp, sinr)]
    final = dict(recs[-1]) | {GAIN: tp[-1] - tp[0], MODE_PREFIX + GAIN: tp[-1] - tp[0],
                              "_tp0": tp[0], "_" + MODE_PREFIX + "tp0": tp[0], "_task": 0}
    return {"kind": "agent", "last_episode": True, "finals": [final], "curve": recs,
            "curves": [recs],
            "train": [{"env_steps": 1, "wall_s": 1.0}],
            "runs": [{"seed": 0, "task": 0, "by_episode": dict(enumerate(recs))}]}


def test_fixed_baselines_are_paired_on_all_episodes_and_agents_on_the_last():
    rows = {
        # the adaptive heuristic learns: its table value is its last episode (300)
        "greedy_measured_sinr": _baseline([100.0, 200.0, 300.0], [0.3] * 3, adaptive=True),
        # a fixed policy 10% above it in every episode: mean 220 vs the heuristic's mean 200
        "hidden_oracle": _baseline([110.0, 220.0, 330.0], [0.3] * 3, adaptive=False),
        "greedy_max_sinr": _baseline([50.0, 100.0, 150.0], [0.4, 0.4, 0.2], adaptive=False),
        "ppo": _agent([90.0, 180.0, 240.0], [0.25, 0.25, 0.25]),
    }
    out = _summarise(rows)
    assert out["hidden_oracle"]["best_heuristic"] == "greedy_measured_sinr"
    # the same episodes: 1.10 and 0.5, not 220 / 300 and 100 / 300
    assert out["hidden_oracle"]["fraction_of_best_heuristic"] == pytest.approx(1.1)
    assert out["greedy_max_sinr"]["fraction_of_best_heuristic"] == pytest.approx(0.5)
    assert out["greedy_measured_sinr"]["fraction_of_best_heuristic"] == pytest.approx(1.0)
    assert out["ppo"]["fraction_of_best_heuristic"] == pytest.approx(240 / 300)
    assert out["hidden_oracle"]["room_to_adapt"] == pytest.approx(1.1)
    # against PPO's last episode, a fixed policy's last episode
    assert out["hidden_oracle"]["throughput_vs_ppo"] == pytest.approx(330 / 240)
    assert out["greedy_max_sinr"]["sinr_violation_reduction_vs_ppo"] == pytest.approx(
        1 - 0.2 / 0.25)
    assert out["greedy_measured_sinr"]["throughput_vs_ppo"] == pytest.approx(300 / 240)
