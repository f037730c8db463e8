"""Fixtures for the agent tests (the tiny scenario config is in tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)
