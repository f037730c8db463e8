"""Fixtures of the ns-3 bridge tests: the echo scenario built once per session, process checks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bridge.ns3.build import BuildError, build_scenarios, check_build_requirements, scenario_binary


@pytest.fixture(scope="session")
def scenario_build_dir() -> Path:
    """Build all scenarios once per session (incremental: fast when nothing changed)."""
    try:
        check_build_requirements()
    except BuildError as exc:
        pytest.skip(f"ns-3 scenarios cannot be built here: {exc}")
    return build_scenarios(jobs=2)


@pytest.fixture(scope="session")
def echo_binary(scenario_build_dir: Path) -> Path:
    """Path of the compiled echo-scenario."""
    return scenario_binary("echo-scenario", scenario_build_dir)


def process_gone(pid: int) -> bool:
    """True if no process (not even a zombie) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def is_zombie(pid: int) -> bool:
    """True if ``pid`` is an unreaped (zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pid: int, timeout_s: float = 5.0) -> bool:
    """Wait until ``pid`` no longer exists; False if it is still there (or a zombie)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.02)
    return False
