"""Experiment e: Stable-Baselines3 PPO on the priority-weight action mode (bridge.priority_action)
of one fallback environment, vs greedy max-SINR and the masked random policy on the same
held-out episodes (the test tasks x 2 replicas, episode seeds of agents.rollouts.EnvSlot)."""

from __future__ import annotations

import argparse

import numpy as np
import torch

from agents.rollouts import EnvSlot
from benchmarks.research.common import Timer, report, study_config, test_tasks
from bridge.fallback.env import IABEnv
from bridge.priority_action import PriorityWeights
from bridge.tasks import TaskDistribution


def run_episodes(cfg, act, replicas: int = 2, wrap: bool = True) -> dict[str, float]:
    """act(env, obs, info) -> action (priority weights, or MultiDiscrete without ``wrap``);
    mean metrics over the episodes."""
    rows = []
    for task, inst in test_tasks(cfg):
        for j in range(replicas):
            env = PriorityWeights(IABEnv(cfg)) if wrap else IABEnv(cfg)
            env.unwrapped.set_task(task, inst)
            obs, info = env.reset(seed=EnvSlot(task, inst, j).episode_seed)
            done = False
            while not done:
                obs, _, term, trunc, info = env.step(act(env, obs, info))
                done = term or trunc
            rows.append(info["episode_metrics"])
            env.close()
    return {k: float(np.mean([r[k] for r in rows])) for k in ("throughput_mbps",
                                                               "sinr_violation_rate")}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--study", default="main")
    p.add_argument("--steps", type=int, default=100_000)
    args = p.parse_args()
    torch.set_num_threads(1)
    from stable_baselines3 import PPO

    cfg = study_config(args.study)
    zero = run_episodes(cfg, lambda env, obs, info: np.zeros(env.layout.n_links))
    report(f"sb3 study={args.study} policy=zero_weights(greedy)", zero)
    rng = np.random.default_rng(0)
    rand = run_episodes(cfg, lambda env, obs, info: rng.uniform(-4, 4, env.layout.n_links))
    report(f"sb3 study={args.study} policy=random_weights", rand)
    masked = run_episodes(cfg, lambda env, obs, info: np.where(
        info["action_mask"], rng.random(info["action_mask"].shape), -1.0).argmax(-1),
        wrap=False)
    report(f"sb3 study={args.study} policy=random_masked", masked)
    tasks = TaskDistribution.for_config(cfg)
    train_env = PriorityWeights(IABEnv(cfg, task_split="train", tasks=tasks,
                                       new_deployment_each_episode=True))
    t = Timer()
    model = PPO("MlpPolicy", train_env, n_steps=1024, batch_size=256, learning_rate=3e-4,
                seed=0, verbose=0, device="cpu")
    done = 0
    for chunk in (args.steps // 4,) * 4:
        model.learn(chunk, reset_num_timesteps=False)
        done += chunk
        res = run_episodes(cfg, lambda env, obs, info: model.predict(obs, deterministic=True)[0])
        report(f"sb3 study={args.study} policy=ppo steps={done}",
               {**res, "vs_greedy_weights": res["throughput_mbps"] / zero["throughput_mbps"],
                "wall_s": t.s()})


if __name__ == "__main__":
    main()
