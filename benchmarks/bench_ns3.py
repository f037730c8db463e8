"""Benchmark: env-steps/s of the IAB scenario on ns-3 (full default scenario, one process)."""

from __future__ import annotations

import argparse
import json

from bridge.ns3.iab_bench import bench_ns3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--subbands", type=int, default=4, help="spectrum sub-bands per channel")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    result = bench_ns3(episodes=args.episodes, subbands_per_channel=args.subbands)
    if args.json:
        print(json.dumps(result))
        return
    print(f"IAB scenario on ns-3, {result['scenario']}")
    for mode in ("statistical", "deterministic"):
        r = result[mode]
        print(f"  {mode:13s} {r['env_steps_per_s']:8.1f} env-steps/s "
              f"({r['env_steps_per_s_with_resets']:.1f} with episode resets), "
              f"process set-up {r['process_setup_s']:.2f} s, "
              f"reset {r['episode_reset_s']:.2f} s, {r['throughput_mbps']:.0f} Mb/s")


if __name__ == "__main__":
    main()
