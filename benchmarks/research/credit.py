"""Experiment d (signal part): how much of a frame's reward one head's choice explains, for
the joint scalar reward vs the head's own base station's reward component.

At S states visited by a policy, the simulator state is cloned R times (core.take: the same
channel, traffic and incumbent draws), R joint actions are sampled from the policy, and each
head's share of the reward variance across those R outcomes is estimated (epsilon-squared of
a one-way split by the head's choice: between-choice minus its chance level, over total).
Reward components per base station b: w_tp * (bytes b's access links delivered) / offered -
w_sinr * (b's SINR violations) / scheduled, which sum over b to the joint reward's
throughput and SINR terms (fairness and latency stay shared).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from agents.allocation_policy import sample_action
from benchmarks.research.bc import CKPT, network
from benchmarks.research.common import report, study_config
from bridge.fallback.env import IABVectorEnv


def epsilon_squared(y: np.ndarray, groups: np.ndarray) -> float:
    """Share of var(y) explained by the groups, corrected for the chance level."""
    total = ((y - y.mean()) ** 2).sum()
    if total <= 0:
        return float("nan")
    labels, inv = np.unique(groups, return_inverse=True)
    g = len(labels)
    if g < 2:
        return 0.0
    means = np.bincount(inv, weights=y) / np.bincount(inv)
    between = (np.bincount(inv) * (means - y.mean()) ** 2).sum()
    within = total - between
    dof = len(y) - g
    if dof <= 0:
        return float("nan")
    return float((between - (g - 1) * within / dof) / total)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--study", default="main")
    p.add_argument("--weights", default="", help="a state dict under /tmp/sched_ckpt, or ''")
    p.add_argument("--states", type=int, default=24)
    p.add_argument("--samples", type=int, default=256)
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = study_config(args.study)
    model = network(cfg, "sequential")
    if args.weights:
        model.load_state_dict(torch.load(Path(CKPT) / args.weights, weights_only=True))
    w = cfg.reward
    env = IABVectorEnv(args.states // 4, cfg)
    obs, info = env.reset(seed=3)
    mask = info["action_mask"]
    gen = torch.Generator().manual_seed(0)
    joint, own, own_bytes = [], [], []
    per_bs = {}
    for frame in range(20):
        with torch.no_grad():
            o, m = torch.as_tensor(obs), torch.as_tensor(mask)
            logits, _, _ = model(o)
            act, _ = sample_action(model, o, m, logits,
                                   torch.rand(m.shape[:2], generator=gen, dtype=torch.float64))
        if frame in (5, 10, 15, 19):
            core = env.core
            for i in range(core.N):
                trial = core.take(np.full(args.samples, i))
                oi = torch.as_tensor(obs[i:i + 1]).expand(args.samples, -1)
                mi = torch.as_tensor(mask[i:i + 1]).expand(args.samples, -1, -1)
                with torch.no_grad():
                    li, _, _ = model(oi)
                    a, _ = sample_action(model, oi, mi, li, torch.rand(
                        mi.shape[:2], generator=gen, dtype=torch.float64))
                a = a.numpy()
                reward, tinfo = trial.step(a)
                offered = core.rate_bps[i] * core.n_ue[i] * core._on_fraction()
                sched = np.maximum(tinfo["scheduled_bs"].sum(1), 1)
                comp = (w.w_throughput * tinfo["delivered_bytes_bs"] * 8 / cfg.dynamics.frame_s
                        / max(offered, 1.0)
                        - w.w_sinr_violation * tinfo["sinr_violations_bs"] / sched[:, None])
                n_bs = int(core.bs_valid[i].sum())
                for h in range(a.shape[1]):
                    b = h // cfg.radio.n_channels
                    if b >= n_bs or len(np.unique(a[:, h])) < 2:
                        continue
                    joint.append(epsilon_squared(reward, a[:, h]))
                    own.append(epsilon_squared(comp[:, b], a[:, h]))
                    own_bytes.append(epsilon_squared(
                        tinfo["delivered_bytes_bs"][:, b].astype(float), a[:, h]))
                    per_bs.setdefault(b, []).append((joint[-1], own[-1]))
        obs, _, _, _, info = env.step(act.numpy())
        mask = info["action_mask"]
    env.close()
    summary = {"heads_measured": len(joint),
               "joint_reward_share_mean": float(np.nanmean(joint)),
               "own_bs_component_share_mean": float(np.nanmean(own)),
               "own_bs_delivered_bytes_share_mean": float(np.nanmean(own_bytes)),
               "joint_reward_share_median": float(np.nanmedian(joint)),
               "own_bs_component_share_median": float(np.nanmedian(own))}
    for b, rows in sorted(per_bs.items()):
        arr = np.array(rows)
        summary[f"bs{b}_joint"] = float(np.nanmean(arr[:, 0]))
        summary[f"bs{b}_own"] = float(np.nanmean(arr[:, 1]))
    report(f"credit study={args.study} weights={args.weights or 'untrained'} "
           f"states={args.states} samples={args.samples}", summary)


if __name__ == "__main__":
    main()
