"""Experiment a: untrained networks (PPO's init, idle_bias -1) on the held-out tasks, mode and
sample, independent heads vs sequential allocation (soft and hard coverage)."""

from __future__ import annotations

import torch

from agents.networks import ActorCritic
from benchmarks.research.common import (
    Timer,
    baselines,
    evaluate,
    model_act,
    ratios,
    report,
    study_config,
)


def network(layout, cfg, allocation: str, coverage: str = "soft", seed: int = 0) -> ActorCritic:
    torch.manual_seed(seed)
    return ActorCritic(layout, idle_bias=-1.0, allocation=allocation, coverage=coverage,
                       channel_hz=cfg.radio.channel_bandwidth_hz, frame_s=cfg.dynamics.frame_s)


def main() -> None:
    torch.set_num_threads(1)
    from bridge.layout import ObservationLayout

    for study in ("main", "small"):
        cfg = study_config(study)
        base = baselines(study, with_upper_bound=study == "small")
        for name, metrics in base.items():
            report(f"baseline study={study} policy={name}", ratios(metrics, base))
        layout = ObservationLayout.from_config(cfg)
        for allocation, coverage in (("independent", "soft"), ("sequential", "soft"),
                                     ("sequential", "hard")):
            for seed in (0, 1):
                model = network(layout, cfg, allocation, coverage, seed)
                for det in (True, False):
                    t = Timer()
                    r = ratios(evaluate(cfg, model_act(model, det, seed)), base)
                    report(f"untrained study={study} allocation={allocation} coverage={coverage}"
                           f" seed={seed} {'mode' if det else 'sample'}", {**r, "wall_s": t.s()})


if __name__ == "__main__":
    main()
