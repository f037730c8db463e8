"""How often an untrained sequential policy leaves a head idle that could schedule a link, and
what it delivers, for a few initial idle logits (``idle_bias``): main network, one episode of
16 environments, no feedback memory. Output: ``untrained_idle_share`` lines in
``agent_defaults_s6.out``.

    PYTHONPATH=. python -m benchmarks.research.idle_logit
"""

from __future__ import annotations

import numpy as np
import torch

from agents.agent import use_torch_threads
from agents.ppo import sampling_policy
from agents.registry import agent_config, make_agent
from agents.rollouts.trajectory import EnvCursor, collect
from agents.study import build_spec
from bridge.fallback.env import IABVectorEnv


def main() -> None:
    use_torch_threads(1)
    study = build_spec(agents=["ppo"]).study("main")
    frames = study.config.dynamics.episode_frames
    for bias in (-1.0, -3.0, -6.0):
        torch.manual_seed(0)
        agent = make_agent("ppo", study.config, 0, agent_config("ppo", {"idle_bias": bias}))
        env = IABVectorEnv(16, study.config)
        rollout = collect(env, EnvCursor.start(env, seed=5), frames,
                          sampling_policy(agent.model), env.layout)
        env.close()
        could = rollout.mask[..., 1:].any(-1)  # heads with at least one link allowed
        idle = (rollout.action == 0) & could
        share = float(idle.float().sum() / could.float().sum())
        mbps = float(np.mean([r["throughput_mbps"] for r in rollout.episode_records]))
        print(f"untrained_idle_share idle_bias={bias}: idle share of heads that could "
              f"schedule {share:.3f}, throughput {mbps:.1f} Mb/s", flush=True)


if __name__ == "__main__":
    main()
