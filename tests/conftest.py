"""Shared fixtures: small configurations that keep the suite fast on two cores."""

from __future__ import annotations

import os
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


@pytest.fixture(autouse=True, scope="session")
def _no_stray_temporary_dirs(tmp_path_factory: pytest.TempPathFactory):
    """Stable-Baselines3 makes a ``$TMPDIR/SB3-<time>`` log directory per ``learn`` unless
    ``SB3_LOGDIR`` names one: point it into pytest's own temporary tree. At the end, remove
    the bridge run directories of processes that died without cleaning up (Ray workers are
    killed at shutdown, so their exit handlers never run)."""
    from bridge.ns3.rundir import sweep_stale_run_dirs

    previous = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3"))
    yield
    if previous is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = previous
    sweep_stale_run_dirs()
