"""Adaptive heuristics and the per-task oracle on the held-out tasks, episode by episode.

The study's baseline phase (agents.study.phases.evaluate_baseline: the seed plan's held-out
tasks, ``adapt_envs`` replicas each, one policy per task over all its episodes) runs greedy
max-SINR, proportional fair, the adaptive heuristics and the oracle that knows the hidden
conditions for episodes 0..K. Output: one JSON line per method with its throughput per
episode (mean over tasks x replicas), then the room to adapt = oracle / best task-blind
heuristic (the report's rule: a fixed heuristic's mean over episodes, an adaptive one's last
episode), overall and per task.

    PYTHONPATH=. python -m benchmarks.research.adaptive_baselines [--study main]
        [--episodes 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from agents.heuristics import HEURISTICS
from agents.study import build_spec, evaluate_baseline
from agents.study.spec import HIDDEN_ORACLE
from benchmarks.research.common import report

METHODS = ("greedy_max_sinr", "proportional_fair", "greedy_measured_sinr", HIDDEN_ORACLE)


def value(method: str, records: list[dict], episodes: int, task: int | None = None) -> float:
    """The report's value of a baseline: the last episode for an adaptive heuristic, else
    the mean over episodes (of one task, or all)."""
    rows = [r for r in records if task is None or r["task"] == task]
    if method in HEURISTICS and HEURISTICS[method].adaptive:
        rows = [r for r in rows if r["episode"] == episodes]
    return float(np.mean([r["throughput_mbps"] for r in rows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="main", choices=("main", "small"))
    parser.add_argument("--episodes", type=int, default=10, help="adaptation episodes K")
    args = parser.parse_args()
    spec = build_spec()
    spec = spec.replace(budget=spec.budget.replace(adapt_episodes=args.episodes))
    study = spec.study(args.study)
    results = {}
    for method in METHODS:
        start = time.perf_counter()
        recs = evaluate_baseline(spec, study, method)
        results[method] = recs
        curve = [float(np.mean([r["throughput_mbps"] for r in recs if r["episode"] == e]))
                 for e in range(args.episodes + 1)]
        report(f"baseline study={args.study} method={method}",
               {"throughput_mbps_per_episode": [round(c, 1) for c in curve],
                "value_mbps": value(method, recs, args.episodes),
                "sinr_violation_rate": float(np.mean([r["sinr_violation_rate"]
                                                      for r in recs])),
                "incumbent_collision_rate": float(np.mean([r["incumbent_collision_rate"]
                                                           for r in recs])),
                "wall_s": time.perf_counter() - start})
    blind = [m for m in METHODS if m != HIDDEN_ORACLE]
    tasks = sorted({r["task"] for r in results[HIDDEN_ORACLE]})
    for task in (None, *tasks):
        vals = {m: value(m, results[m], args.episodes, task) for m in METHODS}
        best = max(blind, key=vals.__getitem__)
        report(f"room study={args.study} task={'all' if task is None else task}",
               {"oracle_mbps": vals[HIDDEN_ORACLE], "best_task_blind": best,
                "best_task_blind_mbps": vals[best],
                "oracle_over_best": vals[HIDDEN_ORACLE] / vals[best],
                "adaptive_over_greedy": vals["greedy_measured_sinr"]
                / vals["greedy_max_sinr"]})


if __name__ == "__main__":
    main()
