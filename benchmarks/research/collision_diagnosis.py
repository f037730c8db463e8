"""Incumbent collisions and SINR violations of a finished study's meta-trained agents,
zero-shot (one episode, before any adaptation) on the main study's held-out tasks: the
sampled policy and its mode, every seed, 8 environments per task.

    PYTHONPATH=. python -m benchmarks.research.collision_diagnosis RUN_DIR ppo_finetune maml

RUN_DIR is an ``iabmeta reproduce`` output directory (its ``checkpoints/``). One line per
agent: mean incumbent collision rate and SINR violation rate, sampled and mode.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from agents.registry import load_agent
from agents.rollouts import LocalRollouts, PolicySnapshot, task_slots
from agents.study import build_spec
from agents.study.rollout_runtime import env_factory
from benchmarks.research.common import report

RECURRENT = ("rl2", "attention")


def main() -> None:
    run_dir, names = Path(sys.argv[1]), sys.argv[2:]
    spec = build_spec()
    study = spec.study("main")
    with LocalRollouts(env_factory("fallback", study.config), study.config) as rollouts:
        for name in names:
            values: dict[str, list[float]] = {k: [] for k in (
                "collision", "sinr_violation", "mode_collision", "mode_sinr_violation")}
            for seed in spec.seeds:
                agent = load_agent(name, run_dir / "checkpoints" / f"main-{name}-s{seed}.pt")
                model = getattr(agent, "model", None) or agent.actor
                for t, (task, inst) in enumerate(spec.held_out(study)):
                    slots = task_slots(task, inst, [1000 * seed + 10 * t + j for j in range(8)])
                    sampled, mode = rollouts.collect_groups(
                        [(slots, PolicySnapshot.capture(model)),
                         (slots, PolicySnapshot.capture(model, deterministic=True))],
                        episodes=1, trial=name in RECURRENT)
                    for prefix, ro in (("", sampled), ("mode_", mode)):
                        values[prefix + "collision"] += [
                            e["incumbent_collision_rate"] for e in ro.episode_records]
                        values[prefix + "sinr_violation"] += [
                            e["sinr_violation_rate"] for e in ro.episode_records]
            report(f"collisions agent={name}",
                   {k: round(float(np.mean(v)), 4) for k, v in values.items()})


if __name__ == "__main__":
    main()
