"""Shared fixtures: small configurations that keep the suite fast on two cores."""

from __future__ import annotations

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
