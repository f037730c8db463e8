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

from agents.heuristics import HEURISTICS, GreedyMeasuredSinr
from agents.rollouts import pin_tasks
from agents.study import build_spec, evaluate_baseline
from agents.study.phases import baseline_policy
from agents.study.spec import HIDDEN_ORACLE, Study, StudySpec
from benchmarks.research.common import report
from bridge.contract import make_vector_env

METHODS = ("greedy_max_sinr", "proportional_fair", "greedy_measured_sinr", HIDDEN_ORACLE)


def value(method: str, records: list[dict], episodes: int, task: int | None = None,
          last: bool | None = None) -> float:
    """The report's value of a baseline: the last episode for an adaptive heuristic (or
    with ``last``), else the mean over episodes (of one task, or all)."""
    rows = [r for r in records if task is None or r["task"] == task]
    if last is None:
        last = method in HEURISTICS and HEURISTICS[method].adaptive
    if last:
        rows = [r for r in rows if r["episode"] == episodes]
    return float(np.mean([r["throughput_mbps"] for r in rows]))


class _InIndexOrder(GreedyMeasuredSinr):
    name = "ablation_in_index_order"
    reorder_channels = False


class _NoDebounce(GreedyMeasuredSinr):
    name = "ablation_no_debounce"
    debounce_above = float("inf")


def within_first_episode(spec: StudySpec, study: Study, method: str, block: int = 10
                         ) -> list[float]:
    """Throughput (Mb/s) per block of ``block`` frames of episode 0, over the held-out tasks
    x replicas (the phase's deployments, episodes and policy)."""
    frames = study.config.dynamics.episode_frames
    delivered = np.zeros(frames)
    for task, seed in spec.held_out(study):
        env = make_vector_env(spec.backend, spec.budget.adapt_envs, config=study.config)
        try:
            cursor = pin_tasks(env, [task], [seed])
            obs, mask = cursor.obs, cursor.mask
            act = baseline_policy(spec, study, method, env)
            for f in range(frames):
                obs, _, _, _, info = env.step(act(obs, mask))
                mask = info["action_mask"]
                delivered[f] += float(np.mean(info["delivered_bytes"]))
        finally:
            env.close()
    mbps = delivered / len(spec.held_out(study)) * 8 / study.config.dynamics.frame_s / 1e6
    return [float(np.mean(mbps[i: i + block])) for i in range(0, frames, block)]


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
        # the report's room: the oracle on the same episodes as the best one's value
        oracle = value(HIDDEN_ORACLE, results[HIDDEN_ORACLE], args.episodes, task,
                       last=HEURISTICS[best].adaptive)
        per_episode = [value(HIDDEN_ORACLE, [r for r in results[HIDDEN_ORACLE]
                                             if r["episode"] == e], e, task)
                       / value(best, [r for r in results[best] if r["episode"] == e], e,
                               task, last=False)
                       for e in range(args.episodes + 1)]
        report(f"room study={args.study} task={'all' if task is None else task}",
               {"oracle_mbps": oracle, "best_task_blind": best,
                "best_task_blind_mbps": vals[best],
                "oracle_over_best": oracle / vals[best],
                "oracle_over_best_per_episode": [round(x, 3) for x in per_episode],
                # on the same (all) episodes
                "adaptive_over_greedy": value("greedy_measured_sinr",
                                              results["greedy_measured_sinr"], args.episodes,
                                              task, last=False)
                / vals["greedy_max_sinr"]})
    for method in METHODS:
        report(f"first-episode study={args.study} method={method}",
               {"throughput_mbps_per_10_frames": [round(v, 1) for v in
                                                  within_first_episode(spec, study, method)]})
    for cls in (_InIndexOrder, _NoDebounce):
        HEURISTICS[cls.name] = cls  # registered for this run only
        recs = evaluate_baseline(spec, study, cls.name)
        curve = [float(np.mean([r["throughput_mbps"] for r in recs if r["episode"] == e]))
                 for e in range(args.episodes + 1)]
        report(f"ablation study={args.study} method={cls.name}",
               {"throughput_mbps_per_episode": [round(c, 1) for c in curve],
                "value_mbps": value(cls.name, recs, args.episodes),
                "incumbent_collision_rate": float(np.mean([r["incumbent_collision_rate"]
                                                           for r in recs]))})


if __name__ == "__main__":
    main()
