"""Shared fixtures: small configurations that keep the suite fast on two cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import ScenarioConfig


@pytest.fixture
def small_config() -> ScenarioConfig:
    """A small network: donor + 2 IAB nodes, 6 UEs, 4 channels, short episodes."""
    return ScenarioConfig().replace(
        topology__n_iab=2, topology__max_iab=2, topology__n_ue=6, topology__max_ues=8,
        radio__n_channels=4, dynamics__episode_frames=30,
    )


@pytest.fixture
def oracle_config() -> ScenarioConfig:
    """Where the exhaustive upper bound runs: 2 base stations x 3 channels, 4 UEs."""
    return ScenarioConfig().replace(
        topology__n_iab=1, topology__max_iab=1, topology__n_ue=4, topology__max_ues=4,
        radio__n_channels=3, dynamics__episode_frames=12,
    )


@pytest.fixture
def tiny_config() -> ScenarioConfig:
    """Donor + 1 IAB node, 4 UEs, 2 channels, 20-frame episodes."""
    return ScenarioConfig().replace(
        topology__n_ue=4, topology__max_ues=6, topology__n_iab=1, topology__max_iab=1,
        radio__n_channels=2, dynamics__episode_frames=20)


@pytest.fixture(scope="session")
def scenario_build_dir() -> Path:
    """Build all ns-3 scenarios once per session (incremental: fast when nothing changed)."""
    from bridge.ns3.build import BuildError, build_scenarios, check_build_requirements

    try:
        check_build_requirements()
    except BuildError as exc:
        pytest.skip(f"ns-3 scenarios cannot be built here: {exc}")
    return build_scenarios(jobs=2)
