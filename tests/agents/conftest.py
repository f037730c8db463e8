"""Fixtures for the agent tests: tiny scenarios that keep learning tests to seconds."""

from __future__ import annotations

import pytest
import torch

from bridge.config import ScenarioConfig


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture
def tiny_config() -> ScenarioConfig:
    """Donor + 1 IAB node, 4 UEs, 2 channels, 20-frame episodes."""
    return ScenarioConfig().replace(
        topology__n_ue=4, topology__max_ues=6, topology__n_iab=1, topology__max_iab=1,
        radio__n_channels=2, dynamics__episode_frames=20)
