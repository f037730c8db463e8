"""Print the ns-3 bridge benchmark (ours vs an ns3-gym-style client, tcp vs ipc) as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.ns3.bench import bench_bridge  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-pinned", action="store_true", help="skip the one-CPU runs")
    args = parser.parse_args()
    result = bench_bridge(steps=args.steps, repeats=args.repeats, pinned=not args.no_pinned)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
