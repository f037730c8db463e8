"""How often the upper bound's allocation lies inside the hard coverage mask (every scheduled
choice goes to a link whose backlog earlier choices had not yet covered), on the small study's
held-out episodes; the same check for greedy max-SINR (always inside, by construction)."""

from __future__ import annotations

import numpy as np

from benchmarks.research.common import (
    evaluate,
    heuristic_act,
    report,
    study_config,
    upper_bound_act,
)
from bridge.allocation import Allocation, inside_coverage


def main() -> None:
    cfg = study_config("small")
    for name, inner in (("upper_bound", upper_bound_act("reward")),
                        ("greedy_max_sinr", heuristic_act("greedy_max_sinr", cfg))):
        inside: list[np.ndarray] = []

        def act(env, obs, mask, inner=inner, inside=inside):
            action = inner(env, obs, mask)
            alloc = Allocation.from_observation(obs, env.layout, cfg.radio.channel_bandwidth_hz,
                                                cfg.dynamics.frame_s)
            inside.append(inside_coverage(alloc, action, env.layout.n_channels))
            return action

        metrics = evaluate(cfg, act)
        report(f"coverage study=small policy={name}",
               {"frames_inside_hard_coverage_mask": float(np.concatenate(inside).mean()),
                "frames": int(np.concatenate(inside).size),
                "throughput_mbps": metrics["throughput_mbps"]})


if __name__ == "__main__":
    main()
