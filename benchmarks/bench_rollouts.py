"""Benchmark: the rollout layer. ns-3 rollouts on 1 and 2 Ray workers (and in one process);
fallback rollouts through Ray against the same jobs in this process, with the cost per batch.
Needs the ray extra (pip install '.[ray]') and, for ns-3, the built scenarios (make ns3)."""

from __future__ import annotations

import argparse
import json

from agents.base import torch_threads
from agents.rollouts.bench import bench_fallback_rollouts, bench_ns3_rollouts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=("fallback", "ns3"), default=None)
    parser.add_argument("--deployments", type=int, default=4, help="ns-3 jobs per round")
    parser.add_argument("--rounds", type=int, default=4, help="ns-3 rounds (the first cold)")
    parser.add_argument("--repeats", type=int, default=7, help="fallback batches timed")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    torch_threads(2)
    result = {}
    if args.only in (None, "fallback"):
        result["fallback"] = bench_fallback_rollouts(repeats=args.repeats)
    if args.only in (None, "ns3"):
        result["ns3"] = bench_ns3_rollouts(deployments=args.deployments, rounds=args.rounds)
    if args.json:
        print(json.dumps(result))
        return
    if "ns3" in result:
        r = result["ns3"]
        print(f"ns-3 rollouts ({r['deployments']} jobs x {r['episodes_per_job']} episodes of "
              f"{r['frames']} frames per round), env-steps/s warm (cold):")
        for n, w in r["workers"].items():
            print(f"  {n} Ray worker(s)   {w['warm_env_steps_per_s']:7.1f} "
                  f"({w['cold_env_steps_per_s']:.1f})")
        p = r["in_process"]
        print(f"  in one process   {p['warm_env_steps_per_s']:7.1f} "
              f"({p['cold_env_steps_per_s']:.1f})")
        print(f"  2 vs 1 workers: {r.get('speedup_2_vs_1_warm')}x warm, "
              f"{r.get('speedup_2_vs_1_cold')}x cold")
    if "fallback" in result:
        r = result["fallback"]
        print(f"fallback rollouts, a batch of {r['envs']} envs in jobs of {r['envs_per_job']} "
              "(median s per batch):")
        for key in ("batch_in_process", "batch_in_process_serial", "batch_ray_1",
                    "batch_ray_2"):
            print(f"  {key:24s} {r[key]['median_s']:.3f} s "
                  f"({r[key]['env_steps_per_s']:.0f} env-steps/s)")
        print(f"  overhead per batch (Ray, 1 worker, vs the same jobs in process): "
              f"{r['overhead_per_batch_s']:.3f} s; per job round trip "
              f"{r['overhead_per_job_round_trip_s'] * 1e3:.1f} ms; "
              f"{r['bytes_per_batch']['trajectories'] / 1e6:.1f} MB of trajectories")


if __name__ == "__main__":
    main()
