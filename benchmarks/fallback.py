"""Throughput benchmark of the batched simulator (env-steps per second)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv
from bridge.fallback.sharded import ShardedIABVectorEnv


def bench_fallback(sizes: tuple[int, ...] = (1, 64, 1024), seconds: float = 2.0,
                   repeats: int = 3, config: ScenarioConfig | None = None,
                   sharded_sizes: tuple[int, ...] = (1024,), workers: int = 2) -> dict:
    """Env-steps/s of ``IABVectorEnv`` on the default scenario for each batch size (and of the
    multi-process ``ShardedIABVectorEnv`` for ``sharded_sizes``): median of
    ``repeats`` timed windows of about ``seconds`` each. Actions are random draws from the
    action mask, sampled before timing (the policy's cost is not measured)."""
    config = config or ScenarioConfig()
    out: dict = {"benchmark": "fallback", "scenario": "default",
                 "python": platform.python_version(),
                 "numpy": np.__version__, "sizes": {}}
    jobs = [(str(n), n, None) for n in sizes]
    jobs += [(f"{n}_sharded{workers}", n, workers) for n in sharded_sizes]
    for label, n, n_workers in jobs:
        env = (IABVectorEnv(n, config) if n_workers is None
               else ShardedIABVectorEnv(n, config, workers=n_workers))
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
        env.close()
        out["sizes"][label] = {"num_envs": n, "workers": n_workers or 1,
                               "steps_per_s": statistics.median(rates), "runs": rates}
    out["load_average"] = list(os.getloadavg())
    return out


def main() -> None:
    sizes = tuple(int(a) for a in sys.argv[1:]) or (1, 64, 1024)
    print(json.dumps(bench_fallback(sizes), indent=2))


if __name__ == "__main__":
    main()
