"""Batched rollouts over a Gymnasium 1.x vector environment with next-step autoreset.

With next-step autoreset, the step that returns ``truncated=True`` also returns the final
observation of the episode; the *next* step call ignores the action and returns the first
observation of a new episode with reward 0. That reset step is not a real transition: it is
stored with ``valid=0`` and excluded from every loss. The final observation is stored as the
reset step's observation, so its value V(s_final) is already in ``value[t+1]`` and bootstraps
the truncated step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from agents.networks import History, action_to_schedule
from agents.policy_gradient import CreditKind, compute_gae
from bridge.contract import REWARD_BS
from bridge.layout import ObservationLayout

# act_fn(obs (N, D), mask (N, A, C), history or None) -> action (N, A), logprob (N,), value (N,)
ActFn = Callable[[torch.Tensor, torch.Tensor, History | None],
                 tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass
class EnvCursor:
    """Where a vector environment stands between rollouts: the last observation and mask,
    whether the last step ended an episode (so the next one is a reset step), the previous
    action/reward (meta-learners' inputs) and per-environment episode counters."""

    obs: np.ndarray
    mask: np.ndarray
    prev_done: np.ndarray
    prev_action: np.ndarray
    prev_reward: np.ndarray
    episodes: np.ndarray

    @classmethod
    def start(cls, env: Any, **reset_kwargs: Any) -> EnvCursor:
        """Reset ``env`` (``reset_kwargs`` go to ``env.reset``) and start a cursor."""
        obs, info = env.reset(**reset_kwargs)
        n = obs.shape[0]
        return cls(obs=obs, mask=info["action_mask"], prev_done=np.zeros(n, dtype=bool),
                   prev_action=np.zeros((n, info["action_mask"].shape[1]), dtype=np.int64),
                   prev_reward=np.zeros(n), episodes=np.zeros(n, dtype=np.int64))


@dataclass
class Rollout:
    """(T, N) tensors of one batched rollout (see the module docstring for ``valid``)."""

    obs: torch.Tensor
    mask: torch.Tensor
    action: torch.Tensor
    logprob: torch.Tensor
    value: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    valid: torch.Tensor
    next_value: torch.Tensor
    prev_action: torch.Tensor
    prev_reward: torch.Tensor
    prev_done: torch.Tensor
    final_obs: torch.Tensor  # (N, D) after the last step (a critic evaluated afterwards)
    # (T, N, B): the reward's split over base stations (info["reward_bs"]); NaN where the
    # environment does not report it
    reward_bs: torch.Tensor | None = None
    episode_records: list[dict[str, float]] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return int(self.obs.shape[0])

    @property
    def num_envs(self) -> int:
        return int(self.obs.shape[1])

    def next_values(self) -> torch.Tensor:
        """V(s_{t+1}) for every t."""
        return torch.cat([self.value[1:], self.next_value.unsqueeze(0)], dim=0)

    def history(self, layout: ObservationLayout) -> History:
        return History(action_to_schedule(self.prev_action, layout), self.prev_reward,
                       self.prev_done)

    def credited_rewards(self, credit: CreditKind) -> torch.Tensor:
        """The rewards a credit scheme's advantages are of: (T, N) joint, or (T, N, B) per
        base station (which needs the environment's ``info["reward_bs"]`` and a critic with
        one value per base station)."""
        if credit == "joint":
            return self.reward
        if self.reward_bs is None or bool(torch.isnan(self.reward_bs[self.valid > 0]).any()):
            raise ValueError(f"credit={credit!r} needs each step's info[{REWARD_BS!r}] "
                             "(the reward split over base stations), which this environment "
                             "does not report; use credit='joint'")
        if self.value.shape != self.reward_bs.shape:
            raise ValueError(f"credit={credit!r}: the values have shape "
                             f"{tuple(self.value.shape)}, the per-base-station rewards "
                             f"{tuple(self.reward_bs.shape)}; the critic needs one output per "
                             "base station (ActorCritic(credit='base_station'))")
        return self.reward_bs

    def episode_advantages(self, gamma: float, gae_lambda: float, reward_scale: float = 1.0,
                           credit: CreditKind = "joint") -> tuple[torch.Tensor, torch.Tensor]:
        """GAE with episode boundaries: truncation bootstraps V(final obs), termination
        does not; the recursion stops at either. Rewards are multiplied by the fixed
        ``reward_scale`` (the critic predicts scaled returns). (T, N), or (T, N, B) with
        per-base-station credit (:meth:`credited_rewards`)."""
        rewards = self.credited_rewards(credit)
        done = (self.terminated | self.truncated).float()
        flags = _like(rewards, 1.0 - self.terminated.float()), _like(rewards, 1.0 - done)
        return compute_gae(rewards * reward_scale, self.value, self.next_values(), *flags,
                           gamma, gae_lambda)

    def trial_advantages(self, gamma: float, gae_lambda: float, reward_scale: float = 1.0,
                         credit: CreditKind = "joint") -> tuple[torch.Tensor, torch.Tensor]:
        """GAE across a whole trial (RL^2): episode boundaries inside the trial are ordinary
        steps; the trial's last step is terminal. Rewards are scaled and credited as in
        :meth:`episode_advantages`."""
        rewards = self.credited_rewards(credit)
        end = torch.ones_like(self.reward)
        end[-1] = 0.0
        end = _like(rewards, end)
        return compute_gae(rewards * reward_scale, self.value, self.next_values(), end,
                           end, gamma, gae_lambda)


def _like(rewards: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """(T, N) flags broadcastable against ``rewards`` (T, N) or (T, N, B)."""
    return flags.reshape(*flags.shape, *(1,) * (rewards.dim() - flags.dim()))


@torch.no_grad()
def collect(env: Any, cursor: EnvCursor, n_steps: int, act_fn: ActFn,
            layout: ObservationLayout, with_history: bool = False) -> Rollout:
    """Step ``env`` ``n_steps`` times with ``act_fn`` (batched over environments; the only
    Python loop is over time) and advance ``cursor``."""
    n = cursor.obs.shape[0]
    obs_buf, mask_buf, act_buf, logp_buf, val_buf = [], [], [], [], []
    rew_buf, term_buf, trunc_buf, valid_buf, rbs_buf = [], [], [], [], []
    pa_buf, pr_buf, pd_buf = [], [], []
    records: list[dict[str, float]] = []
    for _ in range(n_steps):
        obs_t = torch.as_tensor(cursor.obs, dtype=torch.float32)
        mask_t = torch.as_tensor(cursor.mask, dtype=torch.bool)
        prev_action = torch.as_tensor(cursor.prev_action)
        prev_reward = torch.as_tensor(cursor.prev_reward, dtype=torch.float32)
        prev_done = torch.as_tensor(cursor.prev_done, dtype=torch.float32)
        history = (History(action_to_schedule(prev_action, layout), prev_reward, prev_done)
                   if with_history else None)
        action, logprob, value = act_fn(obs_t, mask_t, history)
        # a reset step ignores the action: store idle so the next step's history is truthful
        resetting = torch.as_tensor(cursor.prev_done)
        action = torch.where(resetting[:, None], torch.zeros_like(action), action)
        obs, reward, terminated, truncated, infos = env.step(action.numpy())
        for buf, x in ((obs_buf, obs_t), (mask_buf, mask_t), (act_buf, action),
                       (logp_buf, logprob), (val_buf, value), (pa_buf, prev_action),
                       (pr_buf, prev_reward), (pd_buf, prev_done)):
            buf.append(x)
        rew_buf.append(torch.as_tensor(reward, dtype=torch.float32))
        split = infos.get(REWARD_BS)
        rbs_buf.append(torch.full((n, layout.n_bs), float("nan")) if split is None
                       else torch.as_tensor(split, dtype=torch.float32))
        term_buf.append(torch.as_tensor(terminated))
        trunc_buf.append(torch.as_tensor(truncated))
        valid_buf.append((~resetting).float())
        if "episode_metrics" in infos:
            ended = np.flatnonzero(infos["_episode_metrics"])
            for i in ended:
                rec = {k: float(v[i]) for k, v in infos["episode_metrics"].items()}
                rec.update(env=int(i), episode=int(cursor.episodes[i]))
                records.append(rec)
            cursor.episodes[ended] += 1
        done = np.asarray(terminated) | np.asarray(truncated)
        cursor.obs, cursor.mask = obs, infos["action_mask"]
        cursor.prev_action = action.numpy()
        cursor.prev_reward = np.asarray(reward, dtype=np.float64)
        cursor.prev_done = done
    if with_history:
        # trial rollouts end with their trial, which is terminal: nothing to bootstrap
        next_value = torch.zeros_like(val_buf[-1])
    else:
        _, _, next_value = act_fn(torch.as_tensor(cursor.obs, dtype=torch.float32),
                                  torch.as_tensor(cursor.mask, dtype=torch.bool), None)
    return Rollout(
        obs=torch.stack(obs_buf), mask=torch.stack(mask_buf), action=torch.stack(act_buf),
        logprob=torch.stack(logp_buf), value=torch.stack(val_buf),
        reward=torch.stack(rew_buf), terminated=torch.stack(term_buf),
        truncated=torch.stack(trunc_buf), valid=torch.stack(valid_buf),
        next_value=next_value, prev_action=torch.stack(pa_buf),
        prev_reward=torch.stack(pr_buf), prev_done=torch.stack(pd_buf),
        final_obs=torch.as_tensor(cursor.obs, dtype=torch.float32),
        reward_bs=torch.stack(rbs_buf), episode_records=records)


def records_by_episode(records: list[dict[str, float]], keys: tuple[str, ...]
                       ) -> list[dict[str, float]]:
    """Mean of each metric over environments, per episode index: [{metric: mean}, ...]."""
    if not records:
        return []
    n_episodes = int(max(r["episode"] for r in records)) + 1
    out = []
    for e in range(n_episodes):
        rows = [r for r in records if int(r["episode"]) == e]
        out.append({k: float(np.mean([r[k] for r in rows])) for k in keys} if rows else {})
    return out
