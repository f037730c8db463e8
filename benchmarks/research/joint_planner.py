"""How much is coordinated allocation worth on the main network? A per-frame local-search
planner with full knowledge of the frame (frame replay, as the small study's exhaustive upper
bound) starts from an allocation and applies the best single-slot change (one base station's
channel given to another link or muted) until no change raises the frame's objective.

On the small network it is checked against the exhaustive upper bound; on the main network,
where enumeration is impossible, it is a lower bound of the per-frame upper bound. Its ratio
to the adaptive heuristic measures the room a coordinated scheduler has on today's model.
With ``--samples M`` candidates are scored on M other draws of the frame from the same state
(it knows the state, not the fading draw): the ceiling for a policy that learns everything.
Results and their reading: RESULTS.md, "How much room any policy has".

    PYTHONPATH=. python -m benchmarks.research.joint_planner --study main --samples 3
"""

from __future__ import annotations

import argparse

import numpy as np

from agents.oracle import frame_objective
from benchmarks.research.common import (
    Timer,
    evaluate,
    heuristic_act,
    report,
    study_config,
    test_tasks,
    upper_bound_act,
)
from bridge.fallback.core import BatchedIABCore

FRAME_SHIFT = 7919  # replays at frame + j * FRAME_SHIFT draw other fading, arrivals, on/off


def evaluate_frame(core: BatchedIABCore, env_i: np.ndarray, cand: np.ndarray, objective: str,
                   samples: int) -> np.ndarray:
    """The frame objective of allocations ``cand`` for environments ``env_i``: on this
    frame's realisation (samples == 0: the planner knows the frame) or the mean over
    ``samples`` other realisations from the same state (it knows the state, not the frame)."""
    if samples == 0:
        reward, info = core.take(env_i).step(cand)
        return frame_objective(reward, info, objective)
    total = np.zeros(len(env_i))
    for j in range(1, samples + 1):
        trial = core.take(env_i)
        trial.frame = trial.frame + j * FRAME_SHIFT
        reward, info = trial.step(cand)
        total += frame_objective(reward, info, objective)
    return total / samples


def improve(core: BatchedIABCore, action: np.ndarray, objective: str, max_moves: int,
            samples: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Best-improvement local search from ``action`` (N, B*K) on every environment of
    ``core`` at once; returns the improved actions and the number of moves each took."""
    action = action.copy()
    N = len(action)
    mask = core.action_mask()  # (N, S, 1+L)
    moves = np.zeros(N, dtype=np.int64)
    live = np.ones(N, dtype=bool)
    # the current objective of every environment
    current = evaluate_frame(core, np.arange(N), action, objective, samples)
    for _ in range(max_moves):
        envs, slots, values = [], [], []
        for n in np.flatnonzero(live):
            s_idx, v_idx = np.nonzero(mask[n])
            change = v_idx != action[n, s_idx]
            envs.append(np.full(int(change.sum()), n))
            slots.append(s_idx[change])
            values.append(v_idx[change])
        if not envs:
            break
        env_i = np.concatenate(envs)
        slot_i = np.concatenate(slots)
        val_i = np.concatenate(values)
        cand = action[env_i].copy()
        cand[np.arange(len(env_i)), slot_i] = val_i
        value = evaluate_frame(core, env_i, cand, objective, samples)
        improved = False
        for n in np.flatnonzero(live):
            rows = np.flatnonzero(env_i == n)
            best = rows[np.argmax(value[rows])]
            if value[best] > current[n] * (1 + 1e-9) + 1e-9:
                action[n] = cand[best]
                current[n] = value[best]
                moves[n] += 1
                improved = True
            else:
                live[n] = False
        if not improved:
            break
    return action, moves


def planner_act(start: str, config, objective: str, max_moves: int, samples: int,
                stats: dict):
    inner = heuristic_act(start, config)

    def act(env, obs, mask):
        action = inner(env, obs, mask)
        better, moves = improve(env.core, action, objective, max_moves, samples)
        stats.setdefault("moves", []).append(moves)
        return better

    return act


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", default="main")
    ap.add_argument("--start", default="greedy_measured_sinr")
    ap.add_argument("--objective", default="throughput")
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--max-moves", type=int, default=40)
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--samples", type=int, default=0,
                    help="0: plan on this frame's realisation; M: on the mean of M others")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--eval-seed", type=int, default=0,
                    help="the study seed whose held-out tasks to run (SeedPlan's draw)")
    args = ap.parse_args()
    cfg = study_config(args.study)
    pairs = test_tasks(cfg, args.eval_seed)[: args.tasks]
    for name in () if args.no_baselines else ("greedy_max_sinr", "greedy_measured_sinr"):
        t = Timer()
        m = evaluate(cfg, heuristic_act(name, cfg), episodes=args.episodes, pairs=pairs)
        report(f"study={args.study} policy={name}",
               {"throughput_mbps": m["throughput_mbps"],
                "sinr_violation_rate": m["sinr_violation_rate"], "jain": m.get("jain_fairness"),
                "wall_s": t.s()})
    if args.study == "small" and not args.no_baselines:
        t = Timer()
        m = evaluate(cfg, upper_bound_act(args.objective), episodes=args.episodes, pairs=pairs)
        report(f"study={args.study} policy=exhaustive_{args.objective}",
               {"throughput_mbps": m["throughput_mbps"],
                "sinr_violation_rate": m["sinr_violation_rate"], "wall_s": t.s()})
    stats: dict = {}
    t = Timer()
    m = evaluate(cfg, planner_act(args.start, cfg, args.objective, args.max_moves,
                                       args.samples, stats),
                 episodes=args.episodes, pairs=pairs)
    moves = np.concatenate(stats["moves"])
    report(f"study={args.study} policy=local_search start={args.start} "
           f"objective={args.objective} samples={args.samples}",
           {"throughput_mbps": m["throughput_mbps"],
            "sinr_violation_rate": m["sinr_violation_rate"], "jain": m.get("jain_fairness"),
            "moves_mean": float(moves.mean()), "moves_max": int(moves.max()),
            "wall_s": t.s()})


if __name__ == "__main__":
    main()
