"""Throughput benchmark of the batched simulator (env-steps per second)."""

from __future__ import annotations

import platform
import statistics
import time

import numpy as np

from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv


def bench_fallback(sizes: tuple[int, ...] = (1, 64, 1024), seconds: float = 2.0,
                   repeats: int = 3, config: ScenarioConfig | None = None) -> dict:
    """Env-steps/s of ``IABVectorEnv`` on the default scenario for each batch size: median of
    ``repeats`` timed windows of about ``seconds`` each. Actions are random draws from the
    action mask, sampled before timing (the policy's cost is not measured)."""
    config = config or ScenarioConfig()
    out: dict = {"benchmark": "fallback", "scenario": "default",
                 "python": platform.python_version(),
                 "numpy": np.__version__, "sizes": {}}
    for n in sizes:
        env = IABVectorEnv(n, config)
        obs, info = env.reset(seed=0)
        rng = np.random.default_rng(0)
        pool = [np.where(info["action_mask"], rng.random(info["action_mask"].shape), -1)
                .argmax(-1) for _ in range(8)]
        env.step(pool[0])  # warm-up
        rates = []
        for _ in range(repeats):
            steps, start = 0, time.perf_counter()
            while True:
                env.step(pool[steps % len(pool)])
                steps += 1
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    break
            rates.append(steps * n / elapsed)
        out["sizes"][str(n)] = {"num_envs": n, "steps_per_s": statistics.median(rates),
                                "runs": rates}
    return out
