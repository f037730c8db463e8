"""Can the adaptive heuristic shed its SINR violations by itself? ``greedy_measured_sinr``
with a safety margin: a link may use a channel only while its estimated SINR there (CQI minus
the learned interference penalty) is at least the violation threshold plus ``margin`` dB.
Held-out tasks of seed 0, episodes 0..E-1.

    PYTHONPATH=. python -m benchmarks.research.safe_margin --study main
"""

from __future__ import annotations

import argparse

import numpy as np

from agents.heuristics import GreedyMeasuredSinr
from benchmarks.research.common import evaluate, report, study_config
from bridge.layout import SNR_SCALE_DB, ObservationLayout


class SafeMeasuredSinr(GreedyMeasuredSinr):
    margin_db = 0.0
    threshold_db = 0.0

    def _plan(self, obs, mask, penalty_db=None, order=None):
        if penalty_db is not None:
            cqi_db = self._fields(obs)["cqi"].astype(np.float64) * SNR_SCALE_DB  # (N, L, K)
            unsafe = cqi_db - penalty_db < self.threshold_db + self.margin_db
            mask = self.layout.without_pairs(mask, unsafe)
        return super()._plan(obs, mask, penalty_db, order)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", default="main")
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--margins", default="none,-3,0,3,6")
    args = ap.parse_args()
    cfg = study_config(args.study)
    for m in args.margins.split(","):
        policy = None

        def act(env, obs, mask, m=m):
            nonlocal policy
            if policy is None:
                cls = GreedyMeasuredSinr if m == "none" else type(
                    "Safe", (SafeMeasuredSinr,), {"margin_db": float(m),
                                                  "threshold_db": cfg.radio.sinr_threshold_db})
                policy = cls(ObservationLayout.from_config(cfg), seed=0,
                             channel_hz=cfg.radio.channel_bandwidth_hz,
                             frame_s=cfg.dynamics.frame_s)
                policy.reset(env.num_envs)
            return policy.act(obs, mask)

        out = evaluate(cfg, act, episodes=args.episodes)
        report(f"study={args.study} margin_db={m} episodes={args.episodes}",
               {k: out[k] for k in ("throughput_mbps", "sinr_violation_rate",
                                    "latency_violation_rate", "jain_fairness")
                if k in out})


if __name__ == "__main__":
    main()
