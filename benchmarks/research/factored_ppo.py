"""Credit assignment, end to end: multi-task PPO with the joint reward against PPO with
per-base-station reward components, a per-base-station critic and per-base-station ratios.

Both variants train the same structured allocation policy from the same initialisation on
the same training deployments (a new draw of training tasks every 4 iterations, one
100-frame episode on ``--envs`` environments per iteration, as PPOAgent.meta_train does),
with the same separate critic network (1 output for the joint reward, B for the factored
one), the same PPO hyper-parameters and budget. Held-out evaluation (no adaptation) is on the
study's held-out tasks against greedy max-SINR and PF on the same episodes.

Per-base-station reward of base station b in a frame (the step's ``delivered_bytes_bs``,
``sinr_violations_bs``, on both backends): the throughput term of the bytes its access links
delivered (normalised by the deployment's nominal offered load) minus the SINR-violation term
of its own violations (over all scheduled choices, as the joint reward), plus an equal share
of the rest of the joint reward (fairness, latency, collisions, and the difference of the
nominal and actual offered load), so the components add up to the joint reward exactly.

Factored loss: for base station b, ratio_b = exp(sum over b's heads of the change of the
head's conditional log-probability), advantage A_b from GAE on its component with its critic
output, the clipped surrogate per base station, averaged over base stations.

    PYTHONPATH=. python -m benchmarks.research.factored_ppo --credit {joint,factored}
        [--env-steps 48000] [--envs 16] [--seed 0] [--init scratch|bc]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

from agents.allocation_policy import sample_action, teacher_forcing
from agents.policy_gradient import (
    MaskedMultiCategorical,
    compute_gae,
    layer_init,
    scale_observation,
)
from agents.registry import make_agent
from agents.rollouts import pin_tasks
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

GAMMA, LAMBDA, REWARD_SCALE = 0.99, 0.95, 0.1
CLIP, ENT, VF, EPOCHS, MINIBATCHES = 0.2, 0.003, 0.5, 4, 4


def critic(obs_dim: int, outputs: int) -> nn.Module:
    return nn.Sequential(layer_init(nn.Linear(obs_dim, 128)), nn.Tanh(),
                         layer_init(nn.Linear(128, 128)), nn.Tanh(),
                         layer_init(nn.Linear(128, outputs), std=1.0))


def reward_components(cfg, reward: np.ndarray, info: dict, offered_bps: np.ndarray
                      ) -> np.ndarray:
    """(N, B) per-base-station components that add up to ``reward``."""
    w = cfg.reward
    sched = np.maximum(info["scheduled_bs"].sum(1), 1)[:, None]
    own = (w.w_throughput * info["delivered_bytes_bs"] * 8 / cfg.dynamics.frame_s
           / offered_bps[:, None]
           - w.w_sinr_violation * info["sinr_violations_bs"] / sched)
    shared = reward - own.sum(1)
    out = own + shared[:, None] / own.shape[1]
    assert np.allclose(out.sum(1), reward)
    return out


@torch.no_grad()
def rollout(env, model, value_net, cursor_obs, cursor_mask, frames, cfg, offered_bps):
    buf = {k: [] for k in ("obs", "mask", "action", "value", "reward", "reward_bs")}
    obs, mask = cursor_obs, cursor_mask
    for _ in range(frames):
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        mask_t = torch.as_tensor(mask, dtype=torch.bool)
        logits, _, _ = model(obs_t)
        action, _ = sample_action(model, obs_t, mask_t, logits)
        value = value_net(scale_observation(obs_t))
        obs, reward, _, _, info = env.step(action.numpy())
        buf["obs"].append(obs_t)
        buf["mask"].append(mask_t)
        buf["action"].append(action)
        buf["value"].append(value)
        buf["reward"].append(torch.as_tensor(reward, dtype=torch.float32))
        buf["reward_bs"].append(torch.as_tensor(
            reward_components(cfg, reward, info, offered_bps), dtype=torch.float32))
        mask = info["action_mask"]
    records = {k: float(np.mean(v)) for k, v in info["episode_metrics"].items()}
    obs, *_, info = env.step(np.zeros((env.num_envs, env.layout.action_size), dtype=np.int64))
    out = {k: torch.stack(v) for k, v in buf.items()}
    return out, obs, info["action_mask"], records


def head_log_probs(model, obs, mask, action, prefix):
    logits, _, _ = model(obs, prefix=prefix)
    dist = MaskedMultiCategorical(logits, mask)
    per_head = dist.log_probs.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
    return per_head, dist.entropy()


def update(model, value_net, opt, ro, credit: str, B: int, K: int) -> dict[str, float]:
    T, N = ro["reward"].shape
    rewards = ro["reward_bs"] if credit == "factored" else ro["reward"][..., None]
    values = ro["value"]  # (T, N, outputs)
    ends = torch.ones(T, N, 1)
    ends[-1] = 0.0  # the episode ends the rollout: no bootstrap (finite-horizon episode)
    adv, ret = compute_gae(rewards * REWARD_SCALE, values, torch.cat(
        [values[1:], torch.zeros_like(values[:1])]), ends, ends, GAMMA, LAMBDA)
    n = T * N
    obs = ro["obs"].reshape(n, -1)
    mask = ro["mask"].reshape(n, *ro["mask"].shape[2:])
    action = ro["action"].reshape(n, -1)
    adv, ret, old_v = (x.reshape(n, -1) for x in (adv, ret, values))
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    prefix = teacher_forcing(model, obs, action)
    with torch.no_grad():
        old_heads, _ = head_log_probs(model, obs, mask, action, prefix)
    params = list(model.parameters()) + list(value_net.parameters())
    mb = n // MINIBATCHES
    stats: dict[str, float] = {}
    for _ in range(EPOCHS):
        perm = torch.randperm(n)
        for start in range(0, n, mb):
            idx = perm[start:start + mb]
            heads, entropy = head_log_probs(model, obs[idx], mask[idx], action[idx],
                                            prefix[idx])
            delta = heads - old_heads[idx]  # (m, B*K)
            if credit == "factored":
                logratio = delta.reshape(len(idx), B, K).sum(-1)  # (m, B)
            else:
                logratio = delta.sum(-1, keepdim=True)  # (m, 1)
            ratio = logratio.exp()
            a = adv[idx]
            pg = torch.max(-a * ratio, -a * ratio.clamp(1 - CLIP, 1 + CLIP)).mean()
            v = value_net(scale_observation(obs[idx]))
            v_loss = 0.5 * ((v - ret[idx]) ** 2).mean()
            loss = pg - ENT * entropy.mean() + VF * v_loss
            opt.zero_grad()
            loss.backward()
            gn = float(nn.utils.clip_grad_norm_(params, 0.5))
            opt.step()
            with torch.no_grad():
                stats = {"approx_kl": float(((ratio - 1) - logratio).mean()),
                         "clipfrac": float(((ratio - 1).abs() > CLIP).float().mean()),
                         "grad_norm": gn, "entropy": float(entropy.mean()),
                         "value_loss": float(v_loss)}
    return stats


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--credit", choices=("joint", "factored"), required=True)
    p.add_argument("--study", default="main")
    p.add_argument("--env-steps", type=int, default=48_000)
    p.add_argument("--envs", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    cfg = study_config(args.study)
    agent = make_agent("ppo", cfg, args.seed)
    model = agent.model
    B, K = agent.layout.n_bs, agent.layout.n_channels
    value_net = critic(agent.layout.size, B if args.credit == "factored" else 1)
    opt = torch.optim.Adam(list(model.parameters()) + list(value_net.parameters()),
                           lr=args.lr, eps=1e-5)
    base = baselines(args.study)
    tasks = TaskDistribution.for_config(cfg)
    rng = np.random.default_rng(args.seed + 7_771)
    frames = cfg.dynamics.episode_frames
    iterations = max(1, args.env_steps // (args.envs * frames))
    tag = f"factored_ppo study={args.study} credit={args.credit} seed={args.seed}"
    t = Timer()
    for det in (True, False):
        report(f"{tag} iter=0 env_steps=0 {'mode' if det else 'sample'}",
               ratios(evaluate(cfg, model_act(model, det, 1)), base))
    env = IABVectorEnv(args.envs, cfg)
    env_steps = 0
    for it in range(iterations):
        if it % 4 == 0:
            drawn = tasks.sample("train", int(rng.integers(2**31)), args.envs)
            cursor = pin_tasks(env, drawn, [int(s) for s in rng.integers(2**31, size=args.envs)])
            obs, mask = cursor.obs, cursor.mask
            offered = np.array([tk.ue_rate_mbps * 1e6 * tk.n_ue for tk in drawn])
        for g in opt.param_groups:
            g["lr"] = args.lr * (1 - it / iterations)
        ro, obs, mask, rec = rollout(env, model, value_net, obs, mask, frames, cfg, offered)
        env_steps += args.envs * frames
        stats = update(model, value_net, opt, ro, args.credit, B, K)
        report(f"{tag} train iter={it + 1}", {"env_steps": env_steps,
                                              "train_throughput_mbps": rec["throughput_mbps"],
                                              **stats, "wall_s": t.s()})
        if args.eval_every and (it + 1) % args.eval_every == 0 and it + 1 < iterations:
            report(f"{tag} iter={it + 1} env_steps={env_steps} sample",
                   ratios(evaluate(cfg, model_act(model, False, 1)), base))
    env.close()
    for det in (True, False):
        report(f"{tag} iter={iterations} env_steps={env_steps} {'mode' if det else 'sample'}",
               {**ratios(evaluate(cfg, model_act(model, det, 1)), base), "wall_s": t.s()})


if __name__ == "__main__":
    main()
