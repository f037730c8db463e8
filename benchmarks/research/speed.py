"""Cost of the sequential allocation: rollout env-steps/s (one 100-frame episode of 16 main
environments through the rollout layer) and one PPO minibatch pass (forward + backward on
800 stored transitions), independent heads vs sequential, interleaved so that both see the
same machine load."""

from __future__ import annotations

import time

import torch

from agents.policy_gradient import MaskedMultiCategorical
from agents.rollouts import EnvSlot, LocalRollouts, PolicySnapshot
from benchmarks.research.bc import network
from benchmarks.research.common import report, study_config
from bridge.fallback.env import IABVectorEnv
from bridge.tasks import TaskDistribution


def main() -> None:
    torch.set_num_threads(1)
    cfg = study_config("main")
    tasks = TaskDistribution.for_config(cfg)
    slots = [EnvSlot(t, 7, 0, i) for i, t in enumerate(tasks.sample("train", 1, 16))]
    times: dict[str, list[float]] = {}
    for _rep in range(2):
        for allocation in ("independent", "sequential"):
            model = network(cfg, allocation)
            with LocalRollouts(lambda n: IABVectorEnv(n, cfg), cfg, envs_per_job=16) as ro:
                t = time.perf_counter()
                r = ro.collect([(slots, PolicySnapshot.capture(model))])
                roll = time.perf_counter() - t
            n = r.steps * r.num_envs
            obs, act = r.obs.reshape(n, -1)[:800], r.action.reshape(n, -1)[:800]
            mask = r.mask.reshape(n, *r.mask.shape[2:])[:800]
            t = time.perf_counter()
            logits, _, _ = model(obs, prefix=act)
            MaskedMultiCategorical(logits, mask).log_prob(act).sum().backward()
            upd = time.perf_counter() - t
            times.setdefault(f"{allocation}_rollout_env_steps_per_s", []).append(n / roll)
            times.setdefault(f"{allocation}_minibatch_800_s", []).append(upd)
    report("speed study=main", {k: [round(x, 2) for x in v] for k, v in times.items()})


if __name__ == "__main__":
    main()
