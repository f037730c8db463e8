"""PPOAgent.learn for 24k env-steps on test_agent_ppo's tiny network (1 BS, 4 UEs, 2
channels, 150 Mb/s per UE): independent heads vs sequential allocation (with the default
50 MHz capacity scale and with the scenario's own channel bandwidth)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from agents.ppo import PPOAgent, PPOConfig
from bridge.fallback.env import IABVectorEnv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "agents"))
from test_agent_ppo import TINY, evaluate  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    for alloc, hz in (("independent", 50e6), ("sequential", 50e6),
                      ("sequential", TINY.radio.channel_bandwidth_hz)):
        env = IABVectorEnv(32, TINY)
        agent = PPOAgent(env.layout, PPOConfig(num_steps=16, learning_rate=1e-3, ent_coef=0.0,
                                               allocation=alloc, channel_hz=hz), seed=0)
        before = evaluate(agent)
        agent.learn(env, 24_000)
        print(f"tiny-ppo allocation={alloc} channel_hz={hz:.0f} (return, Mb/s) before "
              f"{before} after {evaluate(agent)}", flush=True)


if __name__ == "__main__":
    main()
