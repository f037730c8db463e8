"""Throughput of the IAB scenario on ns-3: env-steps/s of the default task and of a fast-UE
training task, optionally side by side with another build of the scenario (old vs new)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bridge.config import ScenarioConfig
from bridge.layout import ObservationLayout
from bridge.ns3.iab_env import Ns3IABVectorEnv

# task name -> ScenarioConfig.replace overrides. fast_ue: the top of the training range of
# dynamics.ue_speed_mps (bridge/tasks.py), where every UE's 3GPP channels are generated anew
# every 10 m and LOS states change most often; fast_ue_max (not run by default): also the
# training range's most UEs (max_ues) and two-hop backhaul, the costliest training task
TASKS: dict[str, dict[str, Any]] = {
    "default": {},
    "fast_ue": {"dynamics__ue_speed_mps": 15.0},
    "fast_ue_max": {"dynamics__ue_speed_mps": 15.0, "topology__n_ue": 24,
                    "topology__topology": "chain"},
}
_MEDIAN_KEYS = ("process_setup_s", "env_steps_per_s", "env_steps_per_s_with_resets",
                "episode_reset_s", "scenario_cpu_s")


def largest_backlog(obs: np.ndarray, mask: np.ndarray, layout: ObservationLayout) -> np.ndarray:
    """Fixed reference policy: each base station serves its child with the largest backlog on
    every free channel (used by the benchmark and the backend cross-checks)."""
    n = obs.shape[0]
    backlog = layout.split(obs)["backlog_mb"][..., 0]
    m = mask.reshape(n, layout.n_bs, layout.n_channels, layout.n_choices)
    score = np.where(m[..., 1:], backlog[:, None, None, :] + 1e-9, -1.0)
    best = score.argmax(axis=-1)
    busy = np.take_along_axis(score, best[..., None], axis=-1)[..., 0] > 0
    return np.where(busy, best + 1, 0).reshape(n, -1)


def _run(config: ScenarioConfig, episodes: int, seed: int, scenario_args: list[str],
         binary: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    cpu0 = _children_cpu_s()
    env = Ns3IABVectorEnv(1, config, scenario_args=scenario_args, binary=binary)
    result: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        obs, info = env.reset(seed=seed)
        setup_s = time.perf_counter() - t0
        steps, episode_s, reset_s = 0, 0.0, 0.0
        for episode in range(episodes):
            if episode:
                t0 = time.perf_counter()
                obs, info = env.reset()
                reset_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            done = False
            while not done:
                obs, _, _, trunc, info = env.step(
                    largest_backlog(obs, info["action_mask"], env.layout))
                steps += 1
                done = bool(trunc[0])
            episode_s += time.perf_counter() - t0
        session = env._sessions[0]  # noqa: SLF001 - the scenario's own timing report
        last = session.last_info if session is not None else {}
        result = {
            "steps": steps,
            "process_setup_s": round(setup_s, 3),
            "env_steps_per_s": round(steps / episode_s, 1),
            "env_steps_per_s_with_resets": round(steps / (episode_s + reset_s), 1),
            "episode_reset_s": round(reset_s / max(episodes - 1, 1), 3),
            "scenario_compute_s": last.get("compute_s", {}),
            "channel_refreshes": last.get("channel_refreshes"),
            "throughput_mbps": float(info["episode_metrics"]["throughput_mbps"][0]),
        }
    finally:
        env.close()
    # CPU time of the scenario process (set-up included; known once it has exited): less
    # sensitive to other load on the machine than the wall-clock rates
    result["scenario_cpu_s"] = round(_children_cpu_s() - cpu0, 3)
    return result


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians of the rates and times over repetitions; the rest from the first run (the
    same seed gives the same episodes, so throughput must not vary)."""
    out = dict(runs[0])
    for key in _MEDIAN_KEYS:
        out[key] = round(statistics.median(r[key] for r in runs), 3)
    out["env_steps_per_s_runs"] = [r["env_steps_per_s"] for r in runs]
    out["throughput_mbps_runs"] = sorted({r["throughput_mbps"] for r in runs})
    return out


def bench_ns3(episodes: int = 2, seed: int = 3, subbands_per_channel: int = 4,
              repeats: int = 3, reference_binary: str | os.PathLike[str] | None = None,
              tasks: tuple[str, ...] = ("default", "fast_ue")) -> dict[str, Any]:
    """env-steps/s of the IAB scenario (5 base stations, 16 UEs, 8 channels, 200-frame
    episodes) in one iab-scenario process driven by the largest-backlog heuristic: per task of
    TASKS the statistical (3GPP channel) mode, and for the default task also the
    deterministic one; medians of ``repeats`` runs. ``env_steps_per_s`` counts the stepping
    only; ``..._with_resets`` adds the in-process episode restarts; the process set-up (3GPP
    channel generation for every node pair) is reported separately; ``scenario_cpu_s`` is the
    CPU time of the scenario process over the whole run, set-up included.

    With ``reference_binary`` (another build of iab-scenario, e.g. the previous version) each
    statistical run is repeated with it, alternating run by run so that both see the same
    load, and ``speedup`` gives the ratio of the medians (this build / reference)."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"tasks={unknown}: unknown, expected names from {sorted(TASKS)}")
    if reference_binary is not None and not Path(reference_binary).is_file():
        raise FileNotFoundError(f"reference_binary={str(reference_binary)!r} is not a file")
    args = [f"--ns3::IabLinkGainModel::SubbandsPerChannel={subbands_per_channel}"]
    out: dict[str, Any] = {
        "scenario": "n_iab=4, n_ue=16, K=8, 200 frames unless a task says; tasks: " + json.dumps(
            {t: {k.replace("__", "."): v for k, v in TASKS[t].items()} for t in tasks}),
        "repeats": repeats,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "tasks": {},
    }
    for task in tasks:
        config = ScenarioConfig().replace(**TASKS[task])
        runs: dict[str, list[dict[str, Any]]] = {"statistical": [], "reference": []}
        for _ in range(repeats):
            runs["statistical"].append(_run(config, episodes, seed, args))
            if reference_binary is not None:
                runs["reference"].append(_run(config, episodes, seed, args, reference_binary))
        entry: dict[str, Any] = {"statistical": _median(runs["statistical"])}
        if task == "default":
            entry["deterministic"] = _median(
                [_run(config.replace(radio__deterministic=True), episodes, seed, args)
                 for _ in range(repeats)])
        if reference_binary is not None:
            ref = _median(runs["reference"])
            entry["reference_statistical"] = ref
            entry["speedup"] = round(entry["statistical"]["env_steps_per_s"]
                                     / ref["env_steps_per_s"], 2)
            entry["same_throughput_as_reference"] = (
                entry["statistical"]["throughput_mbps_runs"] == ref["throughput_mbps_runs"])
        out["tasks"][task] = entry
    if reference_binary is not None:
        out["reference_binary"] = str(reference_binary)
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--subbands", type=int, default=4, help="spectrum sub-bands per channel")
    parser.add_argument("--tasks", nargs="+", default=["default", "fast_ue"], choices=TASKS)
    parser.add_argument("--reference-binary", type=Path, default=None,
                        help="another iab-scenario build to measure side by side (old vs new)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    result = bench_ns3(episodes=args.episodes, subbands_per_channel=args.subbands,
                       repeats=args.repeats, reference_binary=args.reference_binary,
                       tasks=tuple(args.tasks))
    if args.json:
        print(json.dumps(result))
        return
    print(f"IAB scenario on ns-3 ({result['scenario']}), medians of {result['repeats']} runs, "
          f"load average {result['load_average_before']} -> {result['load_average_after']}")
    for task, entry in result["tasks"].items():
        for mode in ("statistical", "deterministic", "reference_statistical"):
            if mode not in entry:
                continue
            r = entry[mode]
            print(f"  {task:8s} {mode:21s} {r['env_steps_per_s']:8.1f} env-steps/s "
                  f"({r['env_steps_per_s_with_resets']:.1f} with episode resets), "
                  f"process set-up {r['process_setup_s']:.2f} s, "
                  f"reset {r['episode_reset_s']:.2f} s, {r['throughput_mbps']:.0f} Mb/s")
        if "speedup" in entry:
            print(f"  {task:8s} speedup {entry['speedup']:.2f}x, same throughput: "
                  f"{entry['same_throughput_as_reference']}")


if __name__ == "__main__":
    main()
