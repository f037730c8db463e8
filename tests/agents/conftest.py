"""Fixtures for the agent tests (the tiny scenario config is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from agents.agent import use_torch_threads


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    use_torch_threads()
