"""Experiment c: multi-task PPO on training tasks from a behaviour
clone (or from scratch), with or without the teacher cross-entropy ("KL to the teacher")
term, then held-out evaluation (mode and sample, no adaptation).

Each iteration is one 100-frame episode on ``--envs`` environments (a new draw of training
tasks every 4 iterations, as PPOAgent.meta_train does), so a run costs
iterations * envs * 100 env-steps, bounded by ``--env-steps``. (Factored per-base-station
advantages were not run; experiments/credit_update.py measures their signal.)
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch

from agents.allocation_policy import sample_action
from agents.heuristics import make_heuristic
from agents.policy_gradient import (
    MaskedMultiCategorical,
    PPOLossConfig,
    masked_mean,
    ppo_loss,
)
from agents.rollouts import EnvSlot, LocalRollouts, PolicySnapshot, draw_sample_seeds
from benchmarks.research.bc import CKPT, network
from benchmarks.research.common import (
    Timer,
    baselines,
    evaluate,
    model_act,
    ratios,
    report,
    study_config,
)
from bridge.fallback.env import IABVectorEnv
from bridge.tasks import TaskDistribution


def teacher_labels(model_t, heuristic, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Teacher actions on rollout states: a heuristic's, or a frozen clone's mode."""
    if heuristic is not None:
        heuristic.reset(obs.shape[0])
        return torch.as_tensor(heuristic.act(obs.numpy(), mask.numpy()), dtype=torch.long)
    with torch.no_grad():
        logits, _, _ = model_t(obs)
        return sample_action(model_t, obs, mask, logits, deterministic=True)[0]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--study", default="main")
    p.add_argument("--init", default="bc-greedy_max_sinr", help="bc-<teacher> or scratch")
    p.add_argument("--allocation", default="sequential")
    p.add_argument("--kl-coef", type=float, default=0.0)
    p.add_argument("--ent-coef", type=float, default=0.003)
    p.add_argument("--env-steps", type=int, default=150_000)
    p.add_argument("--envs", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    cfg = study_config(args.study)
    base = baselines(args.study, with_upper_bound=args.study == "small")
    model = network(cfg, args.allocation, args.seed)
    teacher_name = None
    if args.init.startswith("bc-"):
        teacher_name = args.init[3:]
        model.load_state_dict(torch.load(CKPT / f"bc-{args.study}-{teacher_name}-"
                                         f"{args.allocation}.pt", weights_only=True))
    heuristic = make_heuristic("greedy_max_sinr", model.layout, config=cfg) \
        if teacher_name in (None, "greedy_max_sinr") else None
    frozen = copy.deepcopy(model) if heuristic is None else None
    tag = (f"ppo study={args.study} init={args.init} allocation={args.allocation} "
           f"kl={args.kl_coef} ent={args.ent_coef} seed={args.seed}")
    loss_cfg = PPOLossConfig(clip_coef=0.2, clip_vloss=True, ent_coef=args.ent_coef,
                             vf_coef=0.5, norm_adv=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-5)
    tasks = TaskDistribution.for_config(cfg)
    rng = np.random.default_rng(args.seed + 7_771)
    frames = cfg.dynamics.episode_frames
    iterations = max(1, args.env_steps // (args.envs * frames))
    t = Timer()
    for det in (True, False):
        report(f"{tag} iter=0 env_steps=0 {'mode' if det else 'sample'}",
               ratios(evaluate(cfg, model_act(model, det, 1)), base))
    env_steps = 0
    with LocalRollouts(lambda n: IABVectorEnv(n, cfg), cfg, envs_per_job=16) as rollouts:
        for it in range(iterations):
            if it % 4 == 0:
                deployments = list(zip(tasks.sample("train", int(rng.integers(2**31)),
                                                    args.envs),
                                       (int(s) for s in rng.integers(2**31, size=args.envs))))
                first = it
            for g in opt.param_groups:
                g["lr"] = args.lr * (1 - it / iterations)
            slots = [EnvSlot(tk, s, 0, z) for (tk, s), z in
                     zip(deployments, draw_sample_seeds(args.envs))]
            ro = rollouts.collect([(slots, PolicySnapshot.capture(model))],
                                  first_episode=it - first)
            env_steps += args.envs * frames
            adv, ret = ro.episode_advantages(0.99, 0.95, 0.1)
            n = ro.steps * ro.num_envs
            obs = ro.obs.reshape(n, -1)
            mask = ro.mask.reshape(n, *ro.mask.shape[2:])
            action = ro.action.reshape(n, -1)
            labels = teacher_labels(frozen, heuristic, obs, mask) if args.kl_coef > 0 else None
            flat = {"logprob": ro.logprob.reshape(n), "adv": adv.reshape(n),
                    "value": ro.value.reshape(n), "ret": ret.reshape(n),
                    "valid": ro.valid.reshape(n)}
            stats = {}
            for _ in range(4):
                perm = torch.randperm(n)
                for start in range(0, n, n // 4):
                    idx = perm[start:start + n // 4]
                    logits, value, _ = model(obs[idx], prefix=action[idx])
                    dist = MaskedMultiCategorical(logits, mask[idx])
                    loss, stats = ppo_loss(dist.log_prob(action[idx]), flat["logprob"][idx],
                                           flat["adv"][idx], value, flat["value"][idx],
                                           flat["ret"][idx], dist.entropy(),
                                           flat["valid"][idx], loss_cfg)
                    if labels is not None:
                        lt, _, _ = model(obs[idx], prefix=labels[idx])
                        nll = -MaskedMultiCategorical(lt, mask[idx]).log_prob(labels[idx])
                        kl = masked_mean(nll, flat["valid"][idx])
                        loss = loss + args.kl_coef * kl
                        stats["teacher_nll"] = float(kl)
                    opt.zero_grad()
                    loss.backward()
                    stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(
                        model.parameters(), 0.5))
                    opt.step()
            tp = float(np.mean([r["throughput_mbps"] for r in ro.episode_records]))
            report(f"{tag} train iter={it + 1}", {
                "env_steps": env_steps, "train_throughput_mbps": tp,
                **{k: stats[k] for k in ("approx_kl", "clipfrac", "grad_norm", "entropy")},
                "teacher_nll": stats.get("teacher_nll", float("nan")), "wall_s": t.s()})
            if args.eval_every and (it + 1) % args.eval_every == 0 and it + 1 < iterations:
                report(f"{tag} iter={it + 1} env_steps={env_steps} mode",
                       ratios(evaluate(cfg, model_act(model, True, 1)), base))
    for det in (True, False):
        report(f"{tag} iter={iterations} env_steps={env_steps} {'mode' if det else 'sample'}",
               {**ratios(evaluate(cfg, model_act(model, det, 1)), base), "wall_s": t.s()})
    Path(CKPT).mkdir(exist_ok=True)
    torch.save(model.state_dict(), CKPT / f"ppo-{args.study}-{args.init}-kl{args.kl_coef}-"
               f"s{args.seed}.pt")


if __name__ == "__main__":
    main()
