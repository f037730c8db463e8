"""Benchmark: PPO training throughput (env-steps/s including updates) on the fallback env."""

from __future__ import annotations

import argparse
import json

from agents.bench import bench_ppo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--num-steps", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    result = bench_ppo(num_envs=args.num_envs, num_steps=args.num_steps,
                       iterations=args.iterations, threads=args.threads)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
