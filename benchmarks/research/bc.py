"""Experiment b: behaviour cloning from the best heuristic (greedy max-SINR; on small also the
upper bound) on training tasks, then held-out evaluation without adaptation, mode and sample.
Saves the cloned weights for experiment c under /tmp/sched_ckpt."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from agents.networks import ActorCritic
from agents.warm_start import behaviour_clone, collect_teacher
from benchmarks.research.common import (
    Timer,
    baselines,
    evaluate,
    heuristic_act,
    model_act,
    ratios,
    report,
    study_config,
    upper_bound_act,
)
from bridge.fallback.env import IABVectorEnv
from bridge.layout import ObservationLayout
from bridge.tasks import TaskDistribution

CKPT = Path("/tmp/sched_ckpt")


def network(cfg, allocation: str, seed: int = 0) -> ActorCritic:
    torch.manual_seed(seed)
    return ActorCritic(ObservationLayout.from_config(cfg), idle_bias=-1.0, allocation=allocation,
                       channel_hz=cfg.radio.channel_bandwidth_hz, frame_s=cfg.dynamics.frame_s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    CKPT.mkdir(exist_ok=True)
    for study, teachers in (("main", ("greedy_max_sinr",)),
                            ("small", ("greedy_max_sinr", "upper_bound"))):
        cfg = study_config(study)
        base = baselines(study, with_upper_bound=study == "small")
        tasks = TaskDistribution.for_config(cfg)
        for teacher in teachers:
            t = Timer()
            factory = (lambda: upper_bound_act("reward")) if teacher == "upper_bound" else (
                lambda cfg=cfg: heuristic_act("greedy_max_sinr", cfg))
            n_tasks, per_task = (16, 4) if teacher != "upper_bound" else (8, 2)
            data = collect_teacher(lambda n, cfg=cfg: IABVectorEnv(n, cfg), tasks, factory,
                                   args.rounds, n_tasks, per_task, seed=1)
            report(f"bc-data study={study} teacher={teacher}",
                   {"samples": len(data), "env_steps": len(data), "wall_s": t.s()})
            for allocation in ("sequential", "independent"):
                t = Timer()
                model = network(cfg, allocation)
                stats = behaviour_clone(model, data, epochs=args.epochs)
                torch.save(model.state_dict(), CKPT / f"bc-{study}-{teacher}-{allocation}.pt")
                for det in (True, False):
                    r = ratios(evaluate(cfg, model_act(model, det)), base)
                    report(f"bc study={study} teacher={teacher} allocation={allocation} "
                           f"{'mode' if det else 'sample'}",
                           {**r, "train_nll": stats["nll"],
                            "train_head_agreement": stats["head_agreement"], "wall_s": t.s()})


if __name__ == "__main__":
    main()
