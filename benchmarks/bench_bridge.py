"""Print the ns-3 bridge benchmark as JSON: ns3-gym-style client vs ours, ZMQ vs Unix transport."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.ns3.bench import CONFIGS, bench_bridge  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--configs",
        default=None,
        help="comma-separated subset of: " + ", ".join(c.name for c in CONFIGS),
    )
    args = parser.parse_args()
    configs = None if args.configs is None else args.configs.split(",")
    result = bench_bridge(steps=args.steps, repeats=args.repeats, configs=configs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
