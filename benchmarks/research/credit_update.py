"""Experiment d (update part): gradient signal per head with the joint scalar reward vs the
head's own base-station reward component, on one batch of the behaviour-cloned policy's
episodes (training tasks).

Advantages are Monte-Carlo discounted returns minus the mean over environments at the same
frame (no critic, so both credit schemes get the same baseline): joint A from the reward,
per-BS A_b from the component of base station b (bridge/fallback/core.py's
delivered_bytes_bs / sinr_violations_bs step info). For a sample of heads, the gradient of
that head's surrogate log p_h(a_h | a_<h) * A is computed on two disjoint halves of the
batch; the cosine between the halves measures how much of it is signal. Then one PPO epoch
with the joint ratio is taken, and the joint ratio's clip fraction is compared with the
per-head ratios'.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from agents.allocation_policy import sample_action
from agents.policy_gradient import MaskedMultiCategorical
from agents.rollouts import pin_tasks
from benchmarks.research.bc import CKPT, network
from benchmarks.research.common import report, study_config
from bridge.fallback.env import IABVectorEnv
from bridge.tasks import TaskDistribution


def discounted(r: np.ndarray, gamma: float) -> np.ndarray:
    out = np.zeros_like(r)
    acc = np.zeros_like(r[0])
    for t in reversed(range(len(r))):
        acc = r[t] + gamma * acc
        out[t] = acc
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--study", default="main")
    p.add_argument("--envs", type=int, default=16)
    p.add_argument("--weights", default="bc-main-greedy_max_sinr-sequential.pt")
    p.add_argument("--heads", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = study_config(args.study)
    model = network(cfg, "sequential")
    model.load_state_dict(torch.load(Path(CKPT) / args.weights, weights_only=True))
    env = IABVectorEnv(args.envs, cfg)
    tasks = TaskDistribution.for_config(cfg)
    rng = np.random.default_rng(5)
    cursor = pin_tasks(env, tasks.sample("train", 3, args.envs),
                       [int(s) for s in rng.integers(2**31, size=args.envs)])
    obs, mask = cursor.obs, cursor.mask
    w = cfg.reward
    core = env.core
    offered = core.rate_bps * core.n_ue * core._on_fraction()
    buf = {k: [] for k in ("obs", "mask", "action", "logp", "reward", "comp")}
    with torch.no_grad():
        for _ in range(cfg.dynamics.episode_frames):
            o, m = torch.as_tensor(obs), torch.as_tensor(mask)
            logits, _, _ = model(o)
            a, lp = sample_action(model, o, m, logits)
            obs, reward, _, _, info = env.step(a.numpy())
            sched = np.maximum(info["scheduled_bs"].sum(1), 1)
            comp = (w.w_throughput * info["delivered_bytes_bs"] * 8 / cfg.dynamics.frame_s
                    / np.maximum(offered, 1.0)[:, None]
                    - w.w_sinr_violation * info["sinr_violations_bs"] / sched[:, None])
            for k, v in (("obs", o), ("mask", m), ("action", a), ("logp", lp),
                         ("reward", reward), ("comp", comp)):
                buf[k].append(v)
            mask = info["action_mask"]
    env.close()
    n_bs, n_ch = model.layout.n_bs, model.layout.n_channels
    reward = np.stack(buf["reward"])  # (T, N)
    comp = np.stack(buf["comp"])  # (T, N, B)
    g_joint = discounted(reward, 0.9)
    g_bs = discounted(comp, 0.9)
    a_joint = g_joint - g_joint.mean(1, keepdims=True)
    a_bs = g_bs - g_bs.mean(1, keepdims=True)
    a_joint /= a_joint.std() + 1e-8
    a_bs /= a_bs.std(axis=(0, 1), keepdims=True) + 1e-8
    obs_t = torch.cat(buf["obs"])
    mask_t = torch.cat(buf["mask"])
    act_t = torch.cat(buf["action"])
    old_logp = torch.cat(buf["logp"])
    head_bs = torch.arange(n_bs * n_ch) // n_ch
    adv_joint = torch.as_tensor(a_joint.reshape(-1), dtype=torch.float32)
    adv_head = torch.as_tensor(a_bs.reshape(-1, n_bs), dtype=torch.float32)[:, head_bs]
    # heads that are not always idle (an IAB node without children has nothing to choose)
    logits, _, _ = model(obs_t, prefix=act_t)
    dist = MaskedMultiCategorical(logits, mask_t)
    per_head = dist.log_probs.gather(-1, act_t.unsqueeze(-1)).squeeze(-1)  # (M, BK)
    choices = mask_t.sum(-1).float().mean(0)
    heads = [int(h) for h in torch.argsort(-choices)[: args.heads]]
    params = [p for p in model.parameters() if p.requires_grad]
    half = torch.rand(len(obs_t), generator=torch.Generator().manual_seed(1)) < 0.5
    out: dict[str, float] = {"samples": float(len(obs_t))}
    for name, adv in (("joint", adv_joint[:, None].expand_as(adv_head)), ("own_bs", adv_head)):
        cosines, norms = [], []
        for h in heads:
            grads = []
            for part in (half, ~half):
                surrogate = (per_head[part, h] * adv[part, h]).mean()
                g = torch.autograd.grad(surrogate, params, retain_graph=True, allow_unused=True)
                grads.append(torch.cat([x.reshape(-1) for x in g if x is not None]))
            cosines.append(float(torch.nn.functional.cosine_similarity(grads[0], grads[1], 0)))
            norms.append(float((grads[0] + grads[1]).norm() / 2))
        out[f"{name}_split_half_cosine_mean"] = float(np.mean(cosines))
        out[f"{name}_per_head_grad_norm_mean"] = float(np.mean(norms))
    # one joint-ratio PPO epoch (4 minibatches), then the joint vs per-head ratio statistics
    opt = torch.optim.Adam(model.parameters(), lr=3e-4, eps=1e-5)
    perm = torch.randperm(len(obs_t))
    for idx in perm.chunk(4):
        lg, _, _ = model(obs_t[idx], prefix=act_t[idx])
        d = MaskedMultiCategorical(lg, mask_t[idx])
        ratio = (d.log_prob(act_t[idx]) - old_logp[idx]).exp()
        adv = adv_joint[idx]
        loss = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
        opt.zero_grad()
        loss.backward()
        out.setdefault("grad_norm_joint_update", float(torch.nn.utils.clip_grad_norm_(
            model.parameters(), 0.5)))
        opt.step()
    with torch.no_grad():
        lg, _, _ = model(obs_t, prefix=act_t)
        d = MaskedMultiCategorical(lg, mask_t)
        new_head = d.log_probs.gather(-1, act_t.unsqueeze(-1)).squeeze(-1)
        joint_ratio = (d.log_prob(act_t) - old_logp).exp()
        head_ratio = (new_head - per_head.detach()).exp()[:, heads]
    out["joint_ratio_clipfrac"] = float(((joint_ratio - 1).abs() > 0.2).float().mean())
    out["per_head_ratio_clipfrac"] = float(((head_ratio - 1).abs() > 0.2).float().mean())
    out["joint_approx_kl"] = float(((joint_ratio - 1) - joint_ratio.log()).mean())
    out["per_head_approx_kl"] = float(((head_ratio - 1) - head_ratio.log()).mean())
    report(f"credit-update study={args.study} weights={args.weights} heads={heads}", out)


if __name__ == "__main__":
    main()
