"""Throughput of the IAB scenario on ns-3: env-steps/s of the full default scenario."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from bridge.config import ScenarioConfig
from bridge.layout import ObservationLayout
from bridge.ns3.iab_env import Ns3IABVectorEnv


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


def _run(config: ScenarioConfig, episodes: int, seed: int,
         scenario_args: list[str]) -> dict[str, Any]:
    env = Ns3IABVectorEnv(1, config, scenario_args=scenario_args)
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
        return {
            "steps": steps,
            "process_setup_s": round(setup_s, 3),
            "env_steps_per_s": round(steps / episode_s, 1),
            "env_steps_per_s_with_resets": round(steps / (episode_s + reset_s), 1),
            "episode_reset_s": round(reset_s / max(episodes - 1, 1), 3),
            "scenario_compute_s": last.get("compute_s", {}),
            "throughput_mbps": float(info["episode_metrics"]["throughput_mbps"][0]),
        }
    finally:
        env.close()


def bench_ns3(episodes: int = 2, seed: int = 3, subbands_per_channel: int = 4
              ) -> dict[str, Any]:
    """env-steps/s of the full default scenario (5 base stations, 16 UEs, 8 channels, 200-frame
    episodes) in one iab-scenario process driven by the largest-backlog heuristic, in the
    statistical (3GPP channel) and the deterministic mode. ``env_steps_per_s`` counts the
    stepping only; ``..._with_resets`` adds the in-process episode restarts; the process set-up
    (3GPP channel generation for every node pair) is reported separately."""
    args = [f"--ns3::IabLinkGainModel::SubbandsPerChannel={subbands_per_channel}"]
    base = ScenarioConfig()
    return {
        "scenario": "default (n_iab=4, n_ue=16, K=8, 200 frames)",
        "statistical": _run(base, episodes, seed, args),
        "deterministic": _run(base.replace(radio__deterministic=True), episodes, seed, args),
    }


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
