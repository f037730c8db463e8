"""Learned agents against the adaptive heuristic: warm start from it, a teacher term during
RL, and the feedback memory (agents.feedback), through the study's own phases.

One run = one agent with hyper-parameter overrides, meta-trained on the main (or small)
study's training tasks with the default profile's budget (100k env-steps), then adapted on
the seed plan's held-out tasks exactly as ``make reproduce`` does
(agents.study.phases.adapt_checkpoint); the baselines run the same held-out episodes
(agents.study.phases.evaluate_baseline). Output: one JSON line per run with the throughput
ratio to greedy_measured_sinr (the adaptive best heuristic) and to greedy max-SINR, per
adaptation episode (ratio of the means over the held-out tasks, as the report), sampled and
mode, the SINR violations, env-steps, wall times and the last training iteration's
statistics.

    PYTHONPATH=. python -m benchmarks.research.adaptive_teacher --agent ppo_finetune \\
        --set warm_start=greedy_measured_sinr --set feedback_memory=penalty [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.agent import seed_everything, use_torch_threads
from agents.registry import agent_config, make_agent
from agents.study import build_spec, evaluate_baseline
from agents.study.phases import adapt_checkpoint
from agents.study.rollout_runtime import RolloutRuntime
from benchmarks.research.common import report

BASELINES = ("greedy_measured_sinr", "greedy_max_sinr")
CACHE = Path(tempfile.gettempdir()) / "adaptive_teacher_baselines"


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def baseline_records(spec: Any, study: Any, method: str) -> list[dict[str, Any]]:
    """The baseline's records on the held-out episodes (cached: they are deterministic)."""
    CACHE.mkdir(exist_ok=True)
    b = spec.budget
    path = CACHE / (f"{study.name}-{method}-{spec.seed}-{b.episode_frames}-{b.adapt_episodes}"
                    f"-{b.adapt_envs}-{b.n_test_tasks}.json")
    if path.exists():
        return json.loads(path.read_text())
    recs = evaluate_baseline(spec, study, method)
    path.write_text(json.dumps(recs))
    return recs


def greedy_on_memory(spec: Any, study: Any) -> list[dict[str, Any]]:
    """Greedy max-SINR acting on the feedback memory's view (effective CQI) on the held-out
    episodes: agents.study.phases.evaluate_baseline's loop on wrapped environments."""
    from agents.feedback import wrap
    from agents.heuristics import make_heuristic
    from agents.rollouts import pin_tasks
    from bridge.contract import make_vector_env

    budget, frames = spec.budget, study.config.dynamics.episode_frames
    records = []
    for t_index, (task, inst_seed) in enumerate(spec.held_out(study)):
        raw = make_vector_env("fallback", budget.adapt_envs, config=study.config)
        env = wrap(raw, "penalty")
        try:
            cursor = pin_tasks(env, [task], [inst_seed])  # the memory starts here
            obs, info = cursor.obs, {"action_mask": cursor.mask}
            policy = make_heuristic("greedy_max_sinr", raw.layout,
                                    seed=spec.seed_plan.heuristic_seed, config=study.config)
            policy.reset(raw.num_envs)
            for episode in range(budget.adapt_episodes + 1):
                for _ in range(frames):
                    obs, _, _, _, info = env.step(policy.act(obs, info["action_mask"]))
                records.append({"task": t_index, "episode": episode,
                                **{k: float(np.mean(v))
                                   for k, v in info["episode_metrics"].items()}})
                obs, *_, info = env.step(np.zeros((raw.num_envs, raw.layout.action_size),
                                                  dtype=np.int64))
        finally:
            raw.close()
    return records


def per_episode(records: list[dict[str, Any]], key: str, episodes: int) -> list[float]:
    return [float(np.mean([r[key] for r in records if r["episode"] == e]))
            for e in range(episodes + 1)]


def summarise(records: list[dict[str, Any]], base: dict[str, list[dict[str, Any]]],
              episodes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prefix, label in (("", "sampled"), ("mode_", "mode")):
        tp = per_episode(records, prefix + "throughput_mbps", episodes)
        out[f"{label}_mbps"] = [round(x, 1) for x in tp]
        for name, recs in base.items():
            ref = per_episode(recs, "throughput_mbps", episodes)
            ratio = [a / b for a, b in zip(tp, ref)]
            short = "adaptive" if name == "greedy_measured_sinr" else "greedy"
            out[f"{label}_vs_{short}"] = [round(x, 4) for x in ratio]
            out[f"{label}_vs_{short}_last"] = round(ratio[-1], 4)
            out[f"{label}_vs_{short}_mean"] = round(float(np.mean(ratio)), 4)
        out[f"{label}_sinr_violation_last"] = round(per_episode(
            records, prefix + "sinr_violation_rate", episodes)[-1], 4)
    for name, recs in base.items():
        out[f"{name}_sinr_violation_last"] = round(per_episode(
            recs, "sinr_violation_rate", episodes)[-1], 4)
        out[f"{name}_mbps"] = [round(x, 1) for x in per_episode(recs, "throughput_mbps",
                                                                episodes)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="ppo_finetune")
    parser.add_argument("--study", default="main", choices=("main", "small"))
    parser.add_argument("--seed", type=int, default=0, help="training run of the seed plan")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="agent hyper-parameter override (repeatable)")
    parser.add_argument("--env-steps", type=int, default=None,
                        help="meta-training budget (default: the default profile's)")
    parser.add_argument("--no-train", action="store_true",
                        help="adapt the freshly built agent (no warm start, no RL)")
    parser.add_argument("--greedy-on-memory", action="store_true",
                        help="only evaluate greedy max-SINR on the feedback memory's view")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    use_torch_threads(1)
    overrides = dict(item.split("=", 1) for item in args.set)
    overrides = {k: parse_value(v) for k, v in overrides.items()}
    spec = build_spec(agents=[args.agent])
    if args.env_steps is not None:
        spec = spec.replace(budget=spec.budget.replace(meta_train_env_steps=args.env_steps))
    hyper = agent_config(args.agent, overrides)
    spec = spec.replace(hyperparams={args.agent: hyper})
    study = spec.study(args.study)
    budget = spec.budget
    base = {m: baseline_records(spec, study, m) for m in BASELINES}
    if args.greedy_on_memory:
        recs = greedy_on_memory(spec, study)
        ref = {k: per_episode(v, "throughput_mbps", budget.adapt_episodes)
               for k, v in base.items()}
        tp = per_episode(recs, "throughput_mbps", budget.adapt_episodes)
        report(f"baseline study={args.study} method=greedy_max_sinr_on_feedback_memory",
               {"mbps": [round(x, 1) for x in tp],
                "vs_adaptive": [round(a / b, 4) for a, b in
                                zip(tp, ref["greedy_measured_sinr"])],
                "vs_greedy": [round(a / b, 4) for a, b in zip(tp, ref["greedy_max_sinr"])],
                "sinr_violation_last": per_episode(recs, "sinr_violation_rate",
                                                   budget.adapt_episodes)[-1]})
        return

    agent_seed = spec.seed_plan.agent_seed(args.seed)
    seed_everything(agent_seed)
    agent = make_agent(args.agent, study.config, agent_seed, hyper)
    curve: list[dict[str, float]] = []
    start = time.perf_counter()
    with RolloutRuntime().backend("fallback", study.config, budget.envs_per_job) as rollouts:
        info = {} if args.no_train else agent.meta_train(
            rollouts, study.tasks, budget, lambda s: curve.append(dict(s)) and None)
        train_s = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp) / "agent.pt"
            agent.save(ckpt)
            start = time.perf_counter()
            records = adapt_checkpoint(spec, study, args.agent, ckpt, rollouts)
            adapt_s = time.perf_counter() - start
    keys = ("entropy", "approx_kl", "clipfrac", "grad_norm", "aux_loss",
            "episode_throughput_mbps")
    stats = [{k: round(float(c[k]), 4) for k in keys if k in c} for c in curve]
    picks = sorted({0, len(stats) // 3, 2 * len(stats) // 3, len(stats) - 1}) if stats else []
    report(f"run agent={args.agent} study={args.study} seed={args.seed} "
           f"set={','.join(args.set) or '-'} {args.tag}".strip(),
           {**summarise(records, base, budget.adapt_episodes),
            "env_steps": int(info.get("env_steps", 0)), "train_s": round(train_s, 1),
            "adapt_s": round(adapt_s, 1), "iterations": len(curve),
            "warm_start": {k: round(float(v), 4) for k, v in info.items()
                           if k.startswith("warm_start")},
            "train_stats": {str(i): stats[i] for i in picks},
            "torch_threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
