"""Meta-train / meta-test protocol as a library call: meta-train each agent on the training
split, adapt it on held-out tasks, and summarise adaptation curves with confidence intervals.

The result is plain JSON-able data. Every agent and seed sees the same held-out (task,
instance seed) pairs, so the comparison is paired.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from agents.base import CURVE_METRICS, Budget, quick_budget, torch_threads
from agents.core import seed_everything
from agents.registry import make_agent
from agents.rollouts import LocalRollouts
from agents.stats import mean_ci
from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv
from bridge.tasks import Task, TaskDistribution

AGENT_NAMES = ("ppo", "maml", "rl2", "attention")


def held_out_tasks(tasks: TaskDistribution, budget: Budget, seed: int = 0
                   ) -> list[tuple[Task, int]]:
    """The (task, instance seed) pairs of the test split every agent is evaluated on."""
    sampled = tasks.sample("test", seed=seed + 7_777, n=budget.n_test_tasks)
    return [(t, seed * 1000 + 500 + i) for i, t in enumerate(sampled)]


def summarise_curves(curves: Sequence[Sequence[dict[str, float]]],
                     metrics: Sequence[str] = CURVE_METRICS) -> dict[str, Any]:
    """Mean and 95% CI half-width per adaptation episode over curves (one per (seed, task))."""
    n_points = min(len(c) for c in curves) if curves else 0
    out: dict[str, Any] = {"episodes": list(range(n_points)), "n_curves": len(curves)}
    for m in metrics:
        means, cis = [], []
        for k in range(n_points):
            mean, ci = mean_ci([c[k][m] for c in curves if m in c[k]])
            means.append(mean)
            cis.append(ci)
        out[m] = {"mean": means, "ci95": cis}
    return out


def run_agent(name: str, config: ScenarioConfig, tasks: TaskDistribution, budget: Budget,
              seed: int, test_tasks: Sequence[tuple[Task, int]],
              callback: Callable[[dict[str, float]], bool | None] | None = None,
              overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Meta-train one agent with one seed, then adapt it on every held-out task."""
    seed_everything(seed)
    agent = make_agent(name, config, seed, overrides)
    start = time.perf_counter()
    with LocalRollouts(lambda n: IABVectorEnv(n, config), config,
                       envs_per_job=budget.envs_per_job) as rollouts:
        info = agent.meta_train(rollouts, tasks, budget, callback)
        train_s = time.perf_counter() - start
        curves = []
        start = time.perf_counter()
        for t_index, (task, instance_seed) in enumerate(test_tasks):
            seed_everything(seed * 100 + t_index + 17)
            curves.append(agent.adapt(rollouts, task, budget.adapt_episodes, instance_seed,
                                      num_envs=budget.adapt_envs))
    return {"agent": name, "seed": seed, "meta_train_env_steps": int(info["env_steps"]),
            "meta_train_wall_s": train_s, "meta_train_iterations": int(info["iterations"]),
            "adapt_wall_s": time.perf_counter() - start, "curves": curves}


def run_protocol(agents: Sequence[str] = AGENT_NAMES, budget: Budget | None = None,
                 config: ScenarioConfig | None = None, tasks: TaskDistribution | None = None,
                 seed: int = 0, callback: Callable[[str, dict[str, float]], Any] | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole protocol for ``agents`` under ``budget`` (default: the quick profile).

    Returns {"budget", "scenario", "test_tasks", "agents": {name: {"runs": [...per seed],
    "adaptation": per-episode mean/ci95 of every metric over (seed, task) curves,
    "meta_train_env_steps", "meta_train_wall_s": mean/ci95 over seeds}}}."""
    torch_threads(2)
    budget = budget or quick_budget()
    config = (config or ScenarioConfig()).replace(
        dynamics__episode_frames=budget.episode_frames)
    tasks = tasks or TaskDistribution.for_config(config)
    test = held_out_tasks(tasks, budget, seed)
    result: dict[str, Any] = {"budget": budget.to_dict(), "scenario": config.to_dict(),
                              "test_tasks": [{"task": t.to_dict(), "instance_seed": s}
                                             for t, s in test], "agents": {}}
    for name in agents:
        runs = []
        for s in budget.seeds:
            def per_iteration(stats: dict[str, float], name: str = name) -> None:
                if callback is not None:
                    callback(name, stats)

            runs.append(run_agent(name, config, tasks, budget, seed * 10_000 + s, test,
                                  per_iteration, (overrides or {}).get(name)))
        curves = [c for r in runs for c in r["curves"]]
        steps_mean, steps_ci = mean_ci([r["meta_train_env_steps"] for r in runs])
        wall_mean, wall_ci = mean_ci([r["meta_train_wall_s"] for r in runs])
        result["agents"][name] = {
            "runs": runs,
            "adaptation": summarise_curves(curves),
            "meta_train_env_steps": {"mean": steps_mean, "ci95": steps_ci},
            "meta_train_wall_s": {"mean": wall_mean, "ci95": wall_ci},
        }
    return result
