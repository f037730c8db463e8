"""Fixtures of the environment-contract suite: one vector-env factory per backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ScenarioConfig
from bridge.contract import IABSingleEnv, IABVectorEnvBase, make_env, make_vector_env

# Every test of the suite runs on both backends; the ns-3 half needs the compiled scenario.
BACKEND_PARAMS = ["fallback", pytest.param("ns3", marks=pytest.mark.ns3)]


@pytest.fixture
def contract_config() -> ScenarioConfig:
    """Small and short, so the ns-3 half stays fast: donor + 1 IAB node, 3 UEs, 2 channels,
    4-frame episodes."""
    return ScenarioConfig().replace(
        topology__n_iab=1, topology__max_iab=1, topology__n_ue=3, topology__max_ues=4,
        radio__n_channels=2, dynamics__episode_frames=4)


def backend_options(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ns-3 scenario binary of this worktree's build (built once per session)."""
    if backend != "ns3":
        return {}
    from bridge.ns3.build import scenario_binary

    build_dir: Path = request.getfixturevalue("scenario_build_dir")
    return {"binary": scenario_binary("iab-scenario", build_dir)}


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_vec(backend: str, request: pytest.FixtureRequest
             ) -> Iterator[Callable[..., IABVectorEnvBase]]:
    """``make_vec(num_envs, config, **kwargs)`` on the test's backend; closed at the end."""
    made: list[IABVectorEnvBase] = []
    options = backend_options(backend, request)

    def make(num_envs: int, config: ScenarioConfig, **kwargs: Any) -> IABVectorEnvBase:
        env = make_vector_env(backend, num_envs, config, **kwargs, **options)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


@pytest.fixture
def make_single(backend: str, request: pytest.FixtureRequest
                ) -> Iterator[Callable[..., IABSingleEnv]]:
    """``make_single(config, **kwargs)`` on the test's backend; closed at the end."""
    made: list[IABSingleEnv] = []
    options = backend_options(backend, request)

    def make(config: ScenarioConfig, **kwargs: Any) -> IABSingleEnv:
        env = make_env(backend, config, **kwargs, **options)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()
