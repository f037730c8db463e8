"""The fallback benchmark's profile: every phase of the step is timed, and the CLI prints it."""

from __future__ import annotations

import pytest

from agents.cli import main
from benchmarks.fallback_profile import format_profile, profile_fallback
from bridge.fallback.core import BatchedIABCore


def test_profile_times_the_phases_of_the_step(small_config):
    result = profile_fallback(sizes=(3,), seconds=0.2, config=small_config)
    size = result["sizes"]["3"]
    phases = {p["phase"]: p for p in size["phases"]}
    # the queue ticks, the SINR, the geometry and the observation each show up with time
    for name in ("_run_queues", "_sinr", "_update_geometry", "observation", "contract"):
        assert phases[name]["us_per_env_step"] > 0, name
    assert sum(p["share"] for p in size["phases"]) == pytest.approx(1.0)
    assert size["steps_per_s"] > 0
    # the instrumentation is removed afterwards
    assert BatchedIABCore.step.__qualname__ == "BatchedIABCore.step"
    assert "_run_queues" in format_profile(result)


def test_cli_profile_is_for_the_fallback_only(capsys):
    assert main(["bench", "ns3", "--profile"]) == 2
    assert "only the 'fallback'" in capsys.readouterr().err
