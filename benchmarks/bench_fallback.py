"""Fallback simulator throughput: env-steps/s at 1, 64 and 1024 environments (JSON)."""

import json
import sys

from bridge.fallback.bench import bench_fallback

if __name__ == "__main__":
    sizes = tuple(int(a) for a in sys.argv[1:]) or (1, 64, 1024)
    print(json.dumps(bench_fallback(sizes), indent=2))
