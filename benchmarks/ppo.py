"""PPO training throughput on the fallback vector environment (env-steps/s, updates included)."""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import torch

from agents.agent import TORCH_THREADS, use_torch_threads
from agents.ppo import PPOAgent, PPOConfig
from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv


def bench_ppo(num_envs: int = 256, num_steps: int = 32, iterations: int = 6,
              warmup_iterations: int = 1, threads: int = TORCH_THREADS,
              config: ScenarioConfig | None = None) -> dict[str, Any]:
    """Run PPO on the default scenario and time it: rollout (env + policy) and update, with
    CleanRL's default update (4 epochs); the first ``warmup_iterations`` are not timed."""
    use_torch_threads(threads)
    cfg = PPOConfig(num_steps=num_steps, num_minibatches=max(1, num_envs * num_steps // 1024))
    env = IABVectorEnv(num_envs, config)
    agent = PPOAgent(env.layout, cfg, seed=0)
    timings: list[dict[str, float]] = []

    def record(stats: dict[str, float]) -> None:
        timings.append({"wall_s": stats["wall_s"], "env_steps": stats["env_steps"]})

    per_iter = num_envs * num_steps
    agent.learn(env, per_iter * (iterations + warmup_iterations), callback=record)
    env.close()
    t0 = timings[warmup_iterations - 1]["wall_s"] if warmup_iterations else 0.0
    wall = timings[-1]["wall_s"] - t0
    steps = per_iter * (len(timings) - warmup_iterations)
    return {
        "benchmark": "ppo_training",
        "env_steps_per_s": steps / wall,
        "env_steps": steps,
        "wall_s": wall,
        "num_envs": num_envs,
        "num_steps": num_steps,
        "update_epochs": cfg.update_epochs,
        "minibatch_size": per_iter // cfg.num_minibatches,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "timestamp": time.time(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--num-steps", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--threads", type=int, default=TORCH_THREADS)
    args = parser.parse_args()
    result = bench_ppo(num_envs=args.num_envs, num_steps=args.num_steps,
                       iterations=args.iterations, threads=args.threads)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
