"""`iabmeta reproduce --backend ns3 --quick` end to end against the real IAB scenario."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agents.cli import main

TINY = Path(__file__).parents[1] / "data" / "tiny_experiment.toml"


@pytest.mark.ns3
def test_reproduce_on_ns3_writes_the_report(tmp_path, scenario_build_dir):
    out = tmp_path / "ns3"
    assert main(["reproduce", "--backend", "ns3", "--quick", "--config", str(TINY),
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["backend"] == "ns3"
    methods = results["studies"]["main"]["methods"]
    assert {"ppo", "maml", "rl2", "attention", "greedy_max_sinr"} <= set(methods)
    assert "upper_bound" not in methods  # exhaustive search replays the fallback only
    for name, m in methods.items():
        assert math.isfinite(m["throughput_mbps"]) and m["throughput_mbps"] >= 0, name
        assert 0 <= m["sinr_violation_rate"] <= 1 and 0 <= m["jain_fairness"] <= 1, name
    assert methods["greedy_max_sinr"]["throughput_mbps"] > 0
    for name in ("report.md", "metrics.png", "adaptation.png", "training.png"):
        assert (out / name).stat().st_size > 0
