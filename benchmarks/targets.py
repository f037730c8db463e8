"""The targets of ``iabmeta bench``: name -> benchmark function (each returns JSON-able data)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.fallback import bench_fallback
from benchmarks.ns3_env import bench_ns3
from benchmarks.ppo import bench_ppo
from benchmarks.rollouts import bench_rollouts
from benchmarks.training import bench_training
from benchmarks.wire_protocol import bench_bridge

TARGETS: dict[str, Callable[[], dict[str, Any]]] = {
    "fallback": bench_fallback,    # simulator env-steps/s at 1, 64, 1024 environments
    "bridge": bench_bridge,        # wire-protocol round trips/s against the echo scenario
    "ns3": bench_ns3,              # IAB scenario env-steps/s on ns-3
    "ppo": bench_ppo,              # PPO training env-steps/s in one vector env
    "rollouts": bench_rollouts,    # the rollout layer: Ray workers vs in process
    "training": bench_training,    # meta-training env-steps/s per agent, updates included
}
