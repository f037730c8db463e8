"""The one place a backend is chosen by name: :func:`make_env`, :func:`make_vector_env`.

The Gymnasium registrations (``bridge/__init__.py``), the CLI, the study runner and the Ray
rollout workers all go through these two functions and :data:`BACKENDS`. Backends are
imported on first use, so choosing the fallback never imports the ns-3 launcher.
"""

from __future__ import annotations

import importlib
from typing import Any

from bridge.config import ScenarioConfig
from bridge.contract.single_env import IABSingleEnv
from bridge.contract.vector_env import IABVectorEnvBase
from bridge.tasks import TaskDistribution

# name -> (module, single-env class, vector-env class)
_CLASSES = {
    "fallback": ("bridge.fallback.env", "IABEnv", "IABVectorEnv"),
    "ns3": ("bridge.ns3.iab_env", "Ns3IABEnv", "Ns3IABVectorEnv"),
}
BACKENDS: tuple[str, ...] = tuple(_CLASSES)
DEFAULT_BACKEND = "fallback"


def check_backend(backend: str) -> str:
    """``backend`` if it names a backend, else ValueError naming the value and the choices."""
    if backend not in _CLASSES:
        raise ValueError(f"backend={backend!r}: expected one of {list(BACKENDS)}")
    return backend


def backend_classes(backend: str) -> tuple[type[IABSingleEnv], type[IABVectorEnvBase]]:
    """The single-env and vector-env classes of ``backend``."""
    module, single, vector = _CLASSES[check_backend(backend)]
    mod = importlib.import_module(module)
    return getattr(mod, single), getattr(mod, vector)


def supports_frame_replay(backend: str) -> bool:
    """Whether ``backend``'s vector envs offer :meth:`IABVectorEnvBase.frame_replay` (the
    simulator state the exhaustive upper bound replays candidate allocations on)."""
    return backend_classes(backend)[1].supports_frame_replay


def supports_hidden_conditions(backend: str) -> bool:
    """Whether ``backend``'s vector envs offer :meth:`IABVectorEnvBase.hidden_conditions`
    (what the per-task oracle knows)."""
    return backend_classes(backend)[1].supports_hidden_conditions


def _check_options(backend: str, options: dict[str, Any]) -> None:
    if options and backend != "ns3":
        raise ValueError(f"options {sorted(options)} only apply to backend='ns3'")


def make_env(backend: str = DEFAULT_BACKEND,
             config: ScenarioConfig | dict | str | None = None,
             task_split: str | None = None, tasks: TaskDistribution | None = None,
             new_deployment_each_episode: bool = False, **backend_options: Any
             ) -> IABSingleEnv:
    """One IAB environment on ``backend`` ("fallback" or "ns3"); ``backend_options`` go to
    the ns-3 environment (binary, endpoint, timeouts, scenario_args)."""
    single, _ = backend_classes(backend)
    _check_options(backend, backend_options)
    return single(config, task_split, tasks, new_deployment_each_episode, **backend_options)


def make_vector_env(backend: str = DEFAULT_BACKEND, num_envs: int = 1,
                    config: ScenarioConfig | dict | str | None = None,
                    task_split: str | None = None, tasks: TaskDistribution | None = None,
                    new_deployment_each_episode: bool = False, **backend_options: Any
                    ) -> IABVectorEnvBase:
    """``num_envs`` IAB environments on ``backend``: the batched numpy core ("fallback") or
    one ns-3 process per environment, stepped concurrently ("ns3")."""
    _, vector = backend_classes(backend)
    _check_options(backend, backend_options)
    return vector(num_envs, config, task_split, tasks, new_deployment_each_episode,
                  **backend_options)
