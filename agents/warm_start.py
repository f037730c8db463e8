"""Warm start from a teacher: a dataset of a heuristic's (or the upper bound's) decisions on
training tasks, behaviour cloning on it, and the teacher cross-entropy term RL keeps so that
exploration does not drift away from what the teacher knows.

With the sequential allocation the cloning loss is the exact negative joint log-likelihood
of the teacher's action, -sum_h log p_h(a_h | a_<h) (teacher forcing). For a deterministic
teacher, KL(teacher || policy) at a state is exactly that cross-entropy, so the "KL to the
teacher" term of RL is the same loss evaluated on the states RL visits (teacher labels
computed there, DAgger style).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.allocation_policy import teacher_forcing
from agents.policy_gradient import MaskedMultiCategorical
from agents.rollouts import pin_tasks
from bridge.contract import IABVectorEnvBase as IABVectorEnv
from bridge.tasks import TaskDistribution

# teacher(env, obs, mask) -> action (N, B*K); it may read env.core (the upper bound does)
Teacher = Callable[[IABVectorEnv, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class TeacherData:
    """(M, ...) observations, action masks, the teacher's actions and the rewards they got
    (time-major: step t of every environment, then step t + 1)."""

    obs: torch.Tensor
    mask: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor

    def __len__(self) -> int:
        return int(self.obs.shape[0])


def collect_teacher(make_env: Callable[[int], IABVectorEnv], tasks: TaskDistribution,
                    teacher_factory: Callable[[], Teacher], rounds: int, n_tasks: int,
                    per_task: int, seed: int = 0, split: str = "train",
                    feedback_memory: str = "none", teacher_sees: str = "raw") -> TeacherData:
    """``rounds`` episodes of the teacher on ``n_tasks`` fresh ``split`` tasks x ``per_task``
    replicas each (env-steps: rounds * n_tasks * per_task * episode frames).

    The stored observations are what the student's network reads: with a
    ``feedback_memory`` (agents.feedback) its transform, started afresh every round (a round
    is one episode of new deployments, as a rollout job is). ``teacher_sees`` "raw" gives
    the teacher the environment's observations (a teacher with its own memory), "student"
    the transformed ones (a memoryless teacher then acts on the student's memory)."""
    from agents.feedback import FeedbackMemory, env_action, view_mask

    if teacher_sees not in ("raw", "student"):
        raise ValueError(f"teacher_sees={teacher_sees!r}: expected 'raw' or 'student'")
    rng = np.random.default_rng(seed)
    obs_buf, mask_buf, act_buf, rew_buf = [], [], [], []
    env = make_env(n_tasks * per_task)
    try:
        frames = env.config.dynamics.episode_frames
        for _ in range(rounds):
            drawn = tasks.sample(split, int(rng.integers(2**31)), n_tasks)
            cursor = pin_tasks(env, drawn, [int(s) for s in rng.integers(2**31, size=n_tasks)])
            teacher = teacher_factory()
            view = (FeedbackMemory(env.layout, env.num_envs, feedback_memory)
                    if feedback_memory != "none" else (lambda o: o))
            obs, mask = cursor.obs, cursor.mask
            for _ in range(frames):
                seen = view(obs)
                # an ordered memory's view puts the channels in its own order: the student
                # learns the action and mask of that view; the environment gets its own
                memory = view if isinstance(view, FeedbackMemory) else None
                seen_mask = view_mask(memory, mask)
                if teacher_sees == "student":
                    action = teacher(env, seen, seen_mask)
                    env_act = env_action(memory, action)
                else:
                    env_act = teacher(env, obs, mask)
                    action = env_act if memory is None else memory.to_view(env_act)
                obs_buf.append(seen)
                mask_buf.append(seen_mask)
                act_buf.append(action)
                obs, reward, _, _, info = env.step(env_act)
                rew_buf.append(np.asarray(reward, dtype=np.float32))
                mask = info["action_mask"]
    finally:
        env.close()
    return TeacherData(torch.as_tensor(np.concatenate(obs_buf), dtype=torch.float32),
                       torch.as_tensor(np.concatenate(mask_buf), dtype=torch.bool),
                       torch.as_tensor(np.concatenate(act_buf), dtype=torch.long),
                       torch.as_tensor(np.concatenate(rew_buf)))


def teacher_nll(model: torch.nn.Module, obs: torch.Tensor, mask: torch.Tensor,
                action: torch.Tensor, forward: Callable[..., Any] | None = None,
                prefix: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample negative log-likelihood (M,) of the teacher's ``action`` (teacher-forced
    when the allocation is sequential) and the per-head agreement (M, B*K) of each head's
    best choice given the teacher's prefix. ``forward`` replaces ``model`` (MAML's
    functional_call); ``prefix`` is the action's prepared teacher forcing, if any."""
    forward = forward or model
    logits, _, _ = forward(obs, prefix=action if prefix is None else prefix)
    dist = MaskedMultiCategorical(logits, mask)
    return -dist.log_prob(action), (dist.mode() == action).float()


def behaviour_clone(model: torch.nn.Module, data: TeacherData, epochs: int = 5,
                    lr: float = 1e-3, batch_size: int = 512, seed: int = 0,
                    log: Callable[[dict[str, float]], None] | None = None) -> dict[str, float]:
    """Minimise the teacher's negative joint log-likelihood (Adam, shuffled minibatches);
    returns the last epoch's mean NLL and per-head agreement."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-5)
    gen = torch.Generator().manual_seed(seed)
    prefix = teacher_forcing(model, data.obs, data.action)  # replayed once for all epochs
    stats: dict[str, float] = {}
    for epoch in range(epochs):
        perm = torch.randperm(len(data), generator=gen)
        nll_sum, agree_sum, count = 0.0, 0.0, 0
        for start in range(0, len(data), batch_size):
            idx = perm[start:start + batch_size]
            nll, agree = teacher_nll(model, data.obs[idx], data.mask[idx], data.action[idx],
                                     prefix=prefix[idx])
            loss = nll.mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            nll_sum += float(nll.detach().sum())
            agree_sum += float(agree.mean(1).sum())
            count += len(idx)
        stats = {"epoch": float(epoch), "nll": nll_sum / count, "head_agreement":
                 agree_sum / count}
        if log is not None:
            log(stats)
    return stats


@dataclass
class TeacherEpisodes:
    """The teacher's episodes as (T, E, ...) sequences (E = rounds x environments), with the
    previous step a recurrent policy sees: the teacher's previous action and reward."""

    obs: torch.Tensor
    mask: torch.Tensor
    action: torch.Tensor
    prev_action: torch.Tensor
    prev_reward: torch.Tensor

    @classmethod
    def from_data(cls, data: TeacherData, frames: int, n_envs: int) -> TeacherEpisodes:
        """Regroup :func:`collect_teacher`'s time-major transitions into episodes."""
        def seq(x: torch.Tensor) -> torch.Tensor:
            rounds = x.shape[0] // (frames * n_envs)
            x = x.reshape(rounds, frames, n_envs, *x.shape[1:])
            return x.transpose(0, 1).reshape(frames, rounds * n_envs, *x.shape[3:])

        action = seq(data.action)
        prev_action = torch.cat([torch.zeros_like(action[:1]), action[:-1]])
        r = seq(data.reward)
        prev_reward = torch.cat([torch.zeros_like(r[:1]), r[:-1]])
        return cls(seq(data.obs), seq(data.mask), action, prev_action, prev_reward)


def clone_recurrent(model: torch.nn.Module, episodes: TeacherEpisodes, layout: Any,
                    epochs: int = 5, lr: float = 1e-3, batch_envs: int = 8, seed: int = 0
                    ) -> dict[str, float]:
    """Behaviour cloning of a recurrent actor-critic on whole teacher episodes (memory from
    the episode start, the teacher's previous action and reward as its history input)."""
    from agents.networks import History, action_to_schedule

    opt = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-5)
    gen = torch.Generator().manual_seed(seed)
    n = int(episodes.obs.shape[1])
    prefix = teacher_forcing(model, episodes.obs, episodes.action)
    schedule = action_to_schedule(episodes.prev_action, layout)
    done = torch.zeros(episodes.prev_reward.shape)
    stats: dict[str, float] = {}
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        nll_sum, agree_sum, count = 0.0, 0.0, 0
        for start in range(0, n, batch_envs):
            idx = perm[start:start + batch_envs]
            history = History(schedule[:, idx], episodes.prev_reward[:, idx], done[:, idx])
            logits, _, _ = model(episodes.obs[:, idx], history, None,
                                 prefix=prefix[:, idx])
            dist = MaskedMultiCategorical(logits, episodes.mask[:, idx])
            nll = -dist.log_prob(episodes.action[:, idx])
            opt.zero_grad()
            nll.mean().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            agree = (dist.mode() == episodes.action[:, idx]).float().mean(-1)
            nll_sum += float(nll.detach().sum())
            agree_sum += float(agree.sum())
            count += int(nll.numel())
        stats = {"epoch": float(epoch), "nll": nll_sum / count,
                 "head_agreement": agree_sum / count}
    return stats


def teacher_view(name: str) -> str:
    """What a teacher heuristic reads when the student has a feedback memory: an adaptive
    heuristic keeps its own memory of the measurements ("raw" observations); a memoryless
    one acts on the student's transformed observations ("student"), so that greedy max-SINR
    becomes greedy on the effective CQI the student sees."""
    from agents.heuristics import HEURISTICS

    return "raw" if HEURISTICS[name].adaptive else "student"


def warm_start_from_teacher(model: torch.nn.Module, config: Any, tasks: TaskDistribution,
                            hyper: Any, seed: int, recurrent: bool) -> dict[str, float]:
    """Clone ``hyper.warm_start`` (a heuristic) into ``model`` on training tasks of
    ``config`` (the scenario). The demonstrations are simulated by the numpy twin (the same
    system model as ns-3), so a warm start costs no simulator processes. Returns the cloning
    statistics with the teacher's env-steps."""
    from agents.heuristics import make_heuristic
    from bridge.contract import make_vector_env
    from bridge.layout import ObservationLayout

    layout = ObservationLayout.from_config(config)
    n_envs = hyper.warm_start_tasks * hyper.warm_start_replicas
    frames = config.dynamics.episode_frames

    def factory() -> Teacher:
        heuristic = make_heuristic(hyper.warm_start, layout, seed=seed, config=config)
        heuristic.reset(n_envs)
        return lambda env, obs, mask: heuristic.act(obs, mask)

    data = collect_teacher(lambda n: make_vector_env("fallback", n, config=config), tasks,
                           factory, hyper.warm_start_rounds, hyper.warm_start_tasks,
                           hyper.warm_start_replicas, seed=seed,
                           feedback_memory=hyper.feedback_memory,
                           teacher_sees=teacher_view(hyper.warm_start))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if recurrent:
            episodes = TeacherEpisodes.from_data(data, frames, n_envs)
            stats = clone_recurrent(model, episodes, layout, hyper.warm_start_epochs,
                                    seed=seed)
        else:
            stats = behaviour_clone(model, data, hyper.warm_start_epochs, seed=seed)
    stats["env_steps"] = float(hyper.warm_start_rounds * n_envs * frames)
    return stats
