"""Rollout-layer benchmarks: ns-3 rollouts on 1 and 2 Ray workers (and in one process), and
fallback rollouts through Ray against the same jobs run locally, with the cost per batch."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from agents.agent import use_torch_threads
from agents.networks import ActorCritic
from agents.rollouts.jobs import PolicySnapshot, RolloutJob, plan_jobs, task_slots
from agents.rollouts.local import LocalRollouts
from bridge.config import ScenarioConfig
from bridge.layout import ObservationLayout
from bridge.tasks import TaskDistribution


def _policy(config: ScenarioConfig) -> PolicySnapshot:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return PolicySnapshot.capture(ActorCritic(ObservationLayout.from_config(config),
                                                  idle_bias=-1.0))


def _jobs(config: ScenarioConfig, deployments: int, envs_per_deployment: int,
          envs_per_job: int, episodes: int, first_episode: int) -> list[RolloutJob]:
    policy = _policy(config)
    tasks = TaskDistribution.for_config(config).sample("train", 17, deployments)
    groups = [(task_slots(t, 100 + i, [1000 * i + j for j in range(envs_per_deployment)]),
               policy) for i, t in enumerate(tasks)]
    return plan_jobs(groups, envs_per_job, episodes, first_episode)


def _timed(run: Callable[[list[RolloutJob]], Any], jobs: list[RolloutJob]) -> tuple[float, int]:
    start = time.perf_counter()
    trajectories = run(jobs)
    wall = time.perf_counter() - start
    return wall, sum(t.steps * t.num_envs for t in trajectories)


def _rounds(run: Callable[[list[RolloutJob]], Any], make: Callable[[int], list[RolloutJob]],
            rounds: int, episodes: int) -> dict[str, Any]:
    """Round 0 starts every deployment (process set-up included); rounds 1.. continue the
    same deployments' next episodes (warm). Rates: env-steps per wall second."""
    cold_s, cold_steps = _timed(run, make(0))
    warm = [_timed(run, make(r * episodes)) for r in range(1, rounds)]
    rates = [steps / wall for wall, steps in warm]
    return {"cold_env_steps_per_s": round(cold_steps / cold_s, 1), "cold_wall_s": round(cold_s, 2),
            "warm_env_steps_per_s": round(statistics.median(rates), 1),
            "warm_rates": [round(r, 1) for r in rates], "env_steps_per_round": warm[0][1]}


def bench_ns3_rollouts(workers: Sequence[int] = (1, 2), deployments: int = 4,
                       episodes: int = 2, rounds: int = 4,
                       config: ScenarioConfig | None = None) -> dict[str, Any]:
    """ns-3 rollouts of the default scenario (statistical 3GPP channel): ``deployments`` jobs
    of one environment and ``episodes`` episodes each, on 1 and 2 Ray workers of a local
    cluster, and in this process (all environments side by side). Warm rounds continue each
    deployment in the process that ran its previous episodes (the workers keep them)."""
    from agents.rollouts.ray_pool import RayPool
    from bridge.contract import make_vector_env

    config = config or ScenarioConfig().replace(dynamics__episode_frames=100)

    def make(first: int) -> list[RolloutJob]:
        return _jobs(config, deployments, 1, 1, episodes, first)

    out: dict[str, Any] = {"benchmark": "ns3_rollouts", "deployments": deployments,
                           "episodes_per_job": episodes,
                           "frames": config.dynamics.episode_frames, "rounds": rounds,
                           "workers": {}}
    for n in workers:
        with RayPool("local", n, local_cpus=2, poll_s=0.05) as pool:
            backend = pool.backend(config, "ns3", envs_per_job=1)
            out["workers"][str(n)] = _rounds(backend.run, make, rounds, episodes)
    local = LocalRollouts(lambda n: make_vector_env("ns3", n, config=config), config,
                          envs_per_job=1)
    try:
        out["in_process"] = _rounds(local.run, make, rounds, episodes)
    finally:
        local.close()
    if "1" in out["workers"] and "2" in out["workers"]:
        one, two = out["workers"]["1"], out["workers"]["2"]
        out["speedup_2_vs_1_warm"] = round(two["warm_env_steps_per_s"]
                                           / one["warm_env_steps_per_s"], 2)
        out["speedup_2_vs_1_cold"] = round(two["cold_env_steps_per_s"]
                                           / one["cold_env_steps_per_s"], 2)
    out["machine"] = platform.machine()
    return out


def bench_fallback_rollouts(envs: int = 64, envs_per_job: int = 16, repeats: int = 7,
                            config: ScenarioConfig | None = None) -> dict[str, Any]:
    """One batch of ``envs`` fallback environments (default scenario, one 100-frame episode,
    jobs of ``envs_per_job``) run in this process (side by side in one vector env, as the
    local backend does, and one job after the other, as a worker does)
    and through Ray with 1 and 2 workers: median wall time per batch over ``repeats``. The
    overhead per batch is Ray with one worker minus the serial in-process run (the same work
    in the same order); a batch of one 1-frame job on a tiny network gives the fixed cost of
    a round trip."""
    from agents.rollouts.ray_pool import RayPool
    from bridge.fallback.env import IABVectorEnv

    config = config or ScenarioConfig().replace(dynamics__episode_frames=100)
    tiny = ScenarioConfig().replace(topology__n_ue=4, topology__max_ues=6, topology__n_iab=1,
                                    topology__max_iab=1, radio__n_channels=2,
                                    dynamics__episode_frames=1)
    batches = {"batch": lambda r: _jobs(config, envs // 8, 8, envs_per_job, 1, r),
               "tiny_job": lambda r: _jobs(tiny, 1, 1, 1, 1, r)}
    configs = {"batch": config, "tiny_job": tiny}
    out: dict[str, Any] = {"benchmark": "fallback_rollouts", "envs": envs,
                           "envs_per_job": envs_per_job, "repeats": repeats}

    trajectory_bytes: dict[str, int] = {}

    def measure(run: Callable[[list[RolloutJob]], Any], name: str) -> dict[str, float]:
        warm_up = run(batches[name](0))  # environments, networks, workers
        trajectory_bytes[name] = sum(a.nbytes for t in warm_up for a in t.arrays.values())
        times = [_timed(run, batches[name](r))[0] for r in range(1, repeats + 1)]
        return {"median_s": statistics.median(times), "min_s": min(times)}

    for name, cfg in configs.items():
        local = LocalRollouts(lambda n, cfg=cfg: IABVectorEnv(n, cfg), cfg,
                              envs_per_job=envs_per_job)
        out[f"{name}_in_process"] = measure(local.run, name)

        def one_by_one(jobs: list[RolloutJob], local: LocalRollouts = local) -> list[Any]:
            return [t for job in jobs for t in local.run([job])]

        # what one worker does: the jobs one after the other (rollouts always run with one
        # torch thread, here as in a worker)
        out[f"{name}_in_process_serial"] = measure(one_by_one, name)
        local.close()
    for n in (1, 2):
        with RayPool("local", n, local_cpus=2, poll_s=0.01) as pool:
            for name, cfg in configs.items():
                out[f"{name}_ray_{n}"] = measure(pool.backend(cfg, envs_per_job=envs_per_job).run,
                                                 name)
    steps = envs * 100
    for key in ("batch_in_process", "batch_in_process_serial", "batch_ray_1", "batch_ray_2"):
        out[key]["env_steps_per_s"] = round(steps / out[key]["median_s"], 1)
    policy = batches["batch"](0)[0].policy
    out["bytes_per_batch"] = {"policy": policy.nbytes if policy is not None else 0,
                              "trajectories": trajectory_bytes["batch"]}
    out["overhead_per_batch_s"] = round(out["batch_ray_1"]["median_s"]
                                        - out["batch_in_process_serial"]["median_s"], 4)
    out["overhead_per_job_round_trip_s"] = round(
        out["tiny_job_ray_1"]["median_s"] - out["tiny_job_in_process_serial"]["median_s"], 4)
    out["ray_2_vs_in_process"] = round(out["batch_in_process"]["median_s"]
                                       / out["batch_ray_2"]["median_s"], 2)
    return out


def bench_rollouts() -> dict[str, Any]:
    """Both rollout benchmarks (``iabmeta bench rollouts``); needs the ray extra and the
    built ns-3 scenarios. This process uses two torch threads, as the study runner does."""
    use_torch_threads()
    return {"fallback": bench_fallback_rollouts(), "ns3": bench_ns3_rollouts(),
            "torch": torch.__version__, "timestamp": time.time()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=("fallback", "ns3"), default=None)
    parser.add_argument("--deployments", type=int, default=4, help="ns-3 jobs per round")
    parser.add_argument("--rounds", type=int, default=4, help="ns-3 rounds (the first cold)")
    parser.add_argument("--repeats", type=int, default=7, help="fallback batches timed")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    use_torch_threads()
    result = {}
    if args.only in (None, "fallback"):
        result["fallback"] = bench_fallback_rollouts(repeats=args.repeats)
    if args.only in (None, "ns3"):
        result["ns3"] = bench_ns3_rollouts(deployments=args.deployments, rounds=args.rounds)
    if args.json:
        print(json.dumps(result))
        return
    if "ns3" in result:
        r = result["ns3"]
        print(f"ns-3 rollouts ({r['deployments']} jobs x {r['episodes_per_job']} episodes of "
              f"{r['frames']} frames per round), env-steps/s warm (cold):")
        for n, w in r["workers"].items():
            print(f"  {n} Ray worker(s)   {w['warm_env_steps_per_s']:7.1f} "
                  f"({w['cold_env_steps_per_s']:.1f})")
        p = r["in_process"]
        print(f"  in one process   {p['warm_env_steps_per_s']:7.1f} "
              f"({p['cold_env_steps_per_s']:.1f})")
        print(f"  2 vs 1 workers: {r.get('speedup_2_vs_1_warm')}x warm, "
              f"{r.get('speedup_2_vs_1_cold')}x cold")
    if "fallback" in result:
        r = result["fallback"]
        print(f"fallback rollouts, a batch of {r['envs']} envs in jobs of {r['envs_per_job']} "
              "(median s per batch):")
        for key in ("batch_in_process", "batch_in_process_serial", "batch_ray_1",
                    "batch_ray_2"):
            print(f"  {key:24s} {r[key]['median_s']:.3f} s "
                  f"({r[key]['env_steps_per_s']:.0f} env-steps/s)")
        print(f"  overhead per batch (Ray, 1 worker, vs the same jobs in process): "
              f"{r['overhead_per_batch_s']:.3f} s; per job round trip "
              f"{r['overhead_per_job_round_trip_s'] * 1e3:.1f} ms; "
              f"{r['bytes_per_batch']['trajectories'] / 1e6:.1f} MB of trajectories")


if __name__ == "__main__":
    main()
