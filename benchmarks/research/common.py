"""Shared pieces of the scheduling experiments: the two studies, held-out evaluation on the
episodes evaluate_policy uses, and policy adapters (heuristic, upper bound, network)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from agents.allocation_policy import sample_action
from agents.heuristics import make_heuristic
from agents.oracle import ExhaustiveUpperBound
from agents.rollouts import pin_tasks
from agents.study.spec import SMALL_STUDY
from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv
from bridge.tasks import Task, TaskDistribution

EPISODE_FRAMES = 100  # the default budget's episode length
EVAL_SEED = 0  # the study seed: test tasks as agents.study.seeds.SeedPlan draws them
N_TEST_TASKS = 4
ADAPT_ENVS = 8

# act(env, obs, mask) -> action (N, B*K)
Act = Callable[[IABVectorEnv, np.ndarray, np.ndarray], np.ndarray]


def study_config(name: str) -> ScenarioConfig:
    base = ScenarioConfig().replace(dynamics__episode_frames=EPISODE_FRAMES)
    if name == "main":
        return base
    if name == "small":
        return base.replace(**SMALL_STUDY)
    raise ValueError(f"study {name!r}: expected 'main' or 'small'")


def test_tasks(config: ScenarioConfig, seed: int = EVAL_SEED) -> list[tuple[Task, int]]:
    """agents.study.seeds.SeedPlan.test_tasks for study seed ``seed`` (default 0) and the
    default budget's 4 test tasks."""
    tasks = TaskDistribution.for_config(config).sample("test", seed=seed + 7_777,
                                                        n=N_TEST_TASKS)
    return [(t, seed * 1000 + 500 + i) for i, t in enumerate(tasks)]


def evaluate(config: ScenarioConfig, act: Act, episodes: int = 1,
             pairs: list[tuple[Task, int]] | None = None) -> dict[str, float]:
    """Mean episode metrics over the held-out tasks (default: :func:`test_tasks`, the
    episodes evaluate_policy and the agents' adaptation see) x ADAPT_ENVS replicas, first
    ``episodes`` episodes."""
    pairs = test_tasks(config) if pairs is None else pairs
    env = IABVectorEnv(ADAPT_ENVS * len(pairs), config)
    try:
        cursor = pin_tasks(env, [t for t, _ in pairs], [s for _, s in pairs])
        obs, mask = cursor.obs, cursor.mask
        rows = []
        for _ in range(episodes):
            for _ in range(config.dynamics.episode_frames):
                obs, _, _, _, info = env.step(act(env, obs, mask))
                mask = info["action_mask"]
            rows.append({k: float(np.mean(v)) for k, v in info["episode_metrics"].items()})
            obs, *_, info = env.step(np.zeros((env.num_envs, env.layout.action_size),
                                              dtype=np.int64))
            mask = info["action_mask"]
    finally:
        env.close()
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def heuristic_act(name: str, config: ScenarioConfig) -> Act:
    policy = None

    def act(env: IABVectorEnv, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        nonlocal policy
        if policy is None:
            policy = make_heuristic(name, env.layout, seed=0, config=config)
            policy.reset(env.num_envs)
        return policy.act(obs, mask)

    return act


def upper_bound_act(objective: str = "reward") -> Act:
    ub = ExhaustiveUpperBound(objective)
    return lambda env, obs, mask: ub.act_on_core(env.core)


def model_act(model: torch.nn.Module, deterministic: bool, seed: int = 0) -> Act:
    gen = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def act(env: IABVectorEnv, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        mask_t = torch.as_tensor(mask, dtype=torch.bool)
        logits, _, _ = model(obs_t)
        u = torch.rand(mask_t.shape[:2], generator=gen, dtype=torch.float64)
        action, _ = sample_action(model, obs_t, mask_t, logits, u, deterministic)
        return action.numpy()

    return act


_BASELINES: dict[str, dict[str, dict[str, float]]] = {}


def baselines(study: str, with_upper_bound: bool = False) -> dict[str, dict[str, float]]:
    """Held-out metrics of random, greedy max-SINR and PF (and the upper bound on small)."""
    if study not in _BASELINES:
        cfg = study_config(study)
        out = {name: evaluate(cfg, heuristic_act(name, cfg))
               for name in ("random", "greedy_max_sinr", "proportional_fair")}
        if with_upper_bound:
            out["upper_bound"] = evaluate(cfg, upper_bound_act("reward"))
        _BASELINES[study] = out
    return _BASELINES[study]


def ratios(metrics: dict[str, float], base: dict[str, dict[str, float]]) -> dict[str, float]:
    """Throughput as a ratio to greedy, to the best heuristic and (if known) the upper bound;
    SINR violation rate."""
    best = max(v["throughput_mbps"] for k, v in base.items() if k != "upper_bound")
    out = {"throughput_mbps": metrics["throughput_mbps"],
           "vs_greedy": metrics["throughput_mbps"] / base["greedy_max_sinr"]["throughput_mbps"],
           "vs_best_heuristic": metrics["throughput_mbps"] / best,
           "sinr_violation_rate": metrics["sinr_violation_rate"]}
    if "upper_bound" in base:
        out["vs_upper_bound"] = metrics["throughput_mbps"] / base["upper_bound"][
            "throughput_mbps"]
    return out


def report(tag: str, values: dict[str, Any]) -> None:
    """One measured line: tag + JSON (the experiments' output format)."""
    print(f"{tag} {json.dumps(values, default=float, sort_keys=True)}", flush=True)
    sys.stdout.flush()


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def s(self) -> float:
        return round(time.perf_counter() - self.start, 1)
