"""Training speed per agent: env-steps/s of meta-training including the updates, on the
default scenario with the default profile's batch sizes, rollouts in this process.

PPO's study baseline trains only inside adaptation, so it is timed in its multi-task
pretraining loop (``pretrain = true``: one episode per environment and a PPO update per
iteration, the shape of an adaptation episode). The first iteration (warm-up) is not timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from collections.abc import Sequence
from typing import Any

import torch

from agents.agent import use_torch_threads
from agents.registry import AGENT_NAMES, make_agent
from agents.rollouts import LocalRollouts
from agents.study.rollout_runtime import env_factory
from agents.study.spec import build_spec


def bench_training(agents: Sequence[str] = AGENT_NAMES, iterations: int = 3,
                   profile: str = "default", study: str = "main",
                   overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Time ``iterations`` meta-training iterations of each agent after one warm-up
    iteration (the callback stops the run, so the step budget does not matter);
    ``overrides`` are the study's ``--set`` values (e.g. ``agents.ppo.allocation=...``)."""
    spec = build_spec(overrides=overrides, profile=profile, agents=agents)
    use_torch_threads(spec.torch_threads)
    st = spec.study(study)
    budget = spec.budget.replace(meta_train_env_steps=10**12)
    out: dict[str, Any] = {"benchmark": "training", "profile": profile, "study": study,
                           "num_envs": budget.num_envs, "episode_frames": budget.episode_frames,
                           "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                           "machine": platform.machine(), "overrides": list(overrides),
                           "agents": {}}
    for name in agents:
        hyperparams = spec.agent_hyperparams(name)
        if name == "ppo":
            hyperparams = dataclasses.replace(hyperparams, pretrain=True)
        agent = make_agent(name, st.config, 0, hyperparams)
        marks: list[tuple[float, float]] = []

        def mark(stats: dict[str, float], marks: list[tuple[float, float]] = marks) -> bool:
            marks.append((stats["env_steps"], stats["wall_s"]))
            return len(marks) <= iterations

        with LocalRollouts(env_factory(spec.backend, st.config), st.config,
                           envs_per_job=budget.envs_per_job) as rollouts:
            agent.meta_train(rollouts, st.tasks, budget, mark)
        (steps0, wall0), (steps1, wall1) = marks[0], marks[-1]
        out["agents"][name] = {"env_steps_per_s": (steps1 - steps0) / (wall1 - wall0),
                               "env_steps_per_iteration": (steps1 - steps0) / iterations,
                               "timed_iterations": iterations, "warmup_s": wall0}
    out["timestamp"] = time.time()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", default=",".join(AGENT_NAMES))
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--study", default="main")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="a study override, as iabmeta's --set")
    args = parser.parse_args()
    print(json.dumps(bench_training(args.agents.split(","), args.iterations, args.profile,
                                    args.study, args.overrides), indent=2))


if __name__ == "__main__":
    main()
