"""What the adaptive heuristic's two extras are worth: greedy_measured_sinr with and without
its sensing debounce (``debounce_above``; 2.0 never triggers) and its channel order (most
interfered first, ``reorder_channels``), on the main study's held-out episodes of the seed-0
plan (all 11 adaptation episodes of 4 tasks x 8 environments). Output:
``heuristic_ablation.out``.

    PYTHONPATH=. python -m benchmarks.research.heuristic_ablation
"""

from __future__ import annotations

import numpy as np

from agents.agent import use_torch_threads
from agents.heuristics import GreedyMeasuredSinr
from agents.study import build_spec, evaluate_baseline


def main() -> None:
    use_torch_threads(1)
    spec = build_spec(agents=["ppo"])
    study = spec.study("main")
    defaults = GreedyMeasuredSinr.debounce_above, GreedyMeasuredSinr.reorder_channels
    try:
        for debounce, reorder in ((defaults[0], True), (2.0, True), (defaults[0], False),
                                  (2.0, False)):
            GreedyMeasuredSinr.debounce_above = debounce
            GreedyMeasuredSinr.reorder_channels = reorder
            recs = evaluate_baseline(spec, study, "greedy_measured_sinr")
            mbps = float(np.mean([r["throughput_mbps"] for r in recs]))
            viol = float(np.mean([r["sinr_violation_rate"] for r in recs]))
            print(f"greedy_measured_sinr debounce_above={debounce} reorder_channels={reorder}: "
                  f"{mbps:.1f} Mb/s, SINR violations {viol:.4f} ({len(recs)} episode means)",
                  flush=True)
    finally:
        GreedyMeasuredSinr.debounce_above, GreedyMeasuredSinr.reorder_channels = defaults


if __name__ == "__main__":
    main()
