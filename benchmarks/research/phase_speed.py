"""CPU time of the study's costliest phase shapes, for an old-vs-new comparison of two source
trees: a baseline phase (every held-out task of the main study, the adaptive heuristic) and
the adaptation of PPO from scratch and of RL^2 (untrained, their phase's work: sampled policy
and mode on every adaptation episode, PPO's updates) on the first held-out task.

Run it against a tree by putting that tree first on the path; it uses only functions both
trees have, and prints one JSON line:

    cd <tree> && PYTHONPATH=. python /path/to/benchmarks/research/phase_speed.py --tag new

CPU time of this process (``time.process_time``), which other jobs on a shared machine
disturb less than wall time; the results (Mb/s) are printed too, so a change that is meant
to be exact can be seen to be.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from agents.agent import seed_everything, use_torch_threads
from agents.registry import make_agent
from agents.rollouts import LocalRollouts
from agents.study import build_spec, evaluate_baseline
from agents.study.rollout_runtime import env_factory
from benchmarks.research.common import report


def timed(fn: Any) -> tuple[Any, float]:
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    use_torch_threads(1)
    spec = build_spec()
    study = spec.study("main")
    budget = spec.budget
    out: dict[str, Any] = {}
    records, cpu = timed(lambda: evaluate_baseline(spec, study, "greedy_measured_sinr"))
    out["baseline_gms_cpu_s"] = round(cpu, 2)
    out["baseline_gms_mbps"] = round(float(np.mean([r["throughput_mbps"] for r in records])),
                                     3)
    task, inst_seed = spec.held_out(study)[0]
    for name in ("ppo", "rl2"):
        seed_everything(0)
        agent = make_agent(name, study.config, 0)
        with LocalRollouts(env_factory("fallback", study.config), study.config,
                           envs_per_job=budget.envs_per_job) as rollouts:
            curve, cpu = timed(lambda agent=agent, rollouts=rollouts: agent.adapt(
                rollouts, task, budget.adapt_episodes, instance_seed=inst_seed,
                num_envs=budget.adapt_envs))
        out[f"adapt_{name}_cpu_s"] = round(cpu, 2)
        out[f"adapt_{name}_mbps"] = round(float(np.mean([p["throughput_mbps"]
                                                         for p in curve])), 3)
    out["torch_threads"] = torch.get_num_threads()
    report(f"phase_speed {args.tag}".strip(), out)


if __name__ == "__main__":
    main()
