"""Physics sanity table: every heuristic on the default scenario (16 UEs, 400 MHz at 28 GHz).

Prints, per heuristic, the mean per-UE and network throughput, the SINR distribution of
scheduled link-channels and the violation rates, over several seeds (JSON with --json)."""

from __future__ import annotations

import json
import sys

import numpy as np

from agents.heuristics import HEURISTICS, make_heuristic
from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv


def run(num_envs: int = 16, seed: int = 0) -> dict:
    config = ScenarioConfig()
    env = IABVectorEnv(num_envs, config)
    out = {"scenario": "default", "num_envs": num_envs,
           "episode_s": config.dynamics.episode_frames * config.dynamics.frame_s, "rows": {}}
    for name in [*sorted(HEURISTICS), "idle"]:
        obs, info = env.reset(seed=seed)
        policy = None if name == "idle" else make_heuristic(name, env.layout, seed, config)
        sinr = []
        for _ in range(config.dynamics.episode_frames):
            if policy is None:
                action = np.zeros((num_envs, env.layout.action_size), dtype=np.int64)
            else:
                action = policy.act(obs, info["action_mask"])
            obs, _, _, _, info = env.step(action)
            s = info["sinr_db"]
            sinr.append(s[np.isfinite(s)])
        m = {k: float(np.mean(v)) for k, v in info["episode_metrics"].items()}
        all_sinr = np.concatenate(sinr)
        pct = np.percentile(all_sinr, [10, 50, 90]).tolist() if len(all_sinr) else []
        out["rows"][name] = {**m, "sinr_db_p10_p50_p90": pct}
    return out


if __name__ == "__main__":
    result = run()
    if "--json" in sys.argv:
        print(json.dumps(result, indent=1))
    else:
        print(f"{'policy':18s} {'Mb/s/UE':>8s} {'net Mb/s':>9s} {'offered':>8s} "
              f"{'SINR p10/p50/p90 dB':>22s} {'SINRviol':>8s} {'latviol':>8s} {'Jain':>6s}")
        for name, r in result["rows"].items():
            pct = "/".join(f"{v:.1f}" for v in r["sinr_db_p10_p50_p90"]) or "-"
            print(f"{name:18s} {r['per_ue_throughput_mbps']:8.1f} {r['throughput_mbps']:9.1f} "
                  f"{r['offered_mbps']:8.1f} {pct:>22s} {r['sinr_violation_rate']:8.3f} "
                  f"{r['latency_violation_rate']:8.3f} {r['jain_fairness']:6.3f}")
