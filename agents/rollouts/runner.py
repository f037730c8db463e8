"""Runs rollout jobs on a vector environment: the code every backend executes, in this
process or in a remote worker, so a job gives the same trajectory wherever it runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from agents import feedback
from agents.allocation_policy import sample_action
from agents.networks import ActorCritic, History, recurrent_step
from agents.rollouts.jobs import PolicySnapshot, RolloutJob, Trajectory
from agents.rollouts.trajectory import EnvCursor, collect
from bridge.layout import ObservationLayout
from bridge.model.rng import STREAM_POLICY, hash_keys, seed_key, to_uniform


class PolicyCache:
    """Networks built from snapshots, kept per architecture and reused by later jobs (only
    the weights are loaded again)."""

    def __init__(self) -> None:
        self._pool: dict[Any, list[ActorCritic]] = defaultdict(list)

    @staticmethod
    def _key(layout: ObservationLayout, arch: dict[str, Any]) -> Any:
        return (layout, tuple(sorted(arch.items())))

    def modules(self, snapshots: Sequence[PolicySnapshot]) -> list[ActorCritic]:
        """A network for every snapshot; jobs sharing a snapshot object share it."""
        used: dict[Any, int] = defaultdict(int)
        built: dict[int, ActorCritic] = {}
        out = []
        for snap in snapshots:
            if id(snap) not in built:
                built[id(snap)] = self._take(snap, used)
            out.append(built[id(snap)])
        return out

    def _take(self, snap: PolicySnapshot, used: dict[Any, int]) -> ActorCritic:
        key = self._key(snap.layout, snap.arch)
        pool = self._pool[key]
        if len(pool) <= used[key]:
            # building initialises weights from torch's global generator: keep the caller's
            # random stream untouched, so running jobs in this process or elsewhere leaves
            # the learner's draws the same
            with torch.random.fork_rng(devices=[]):
                pool.append(ActorCritic(snap.layout, **snap.arch))
        module = pool[used[key]]
        used[key] += 1
        try:
            # copies: arrays that arrived from another process may be read-only
            module.load_state_dict({k: torch.tensor(v) for k, v in snap.weights.items()})
        except RuntimeError as exc:
            raise ValueError(f"policy snapshot does not fit its architecture {snap.arch}: "
                             f"{exc}") from None
        return module


class JobActor:
    """The act function of one job on its own slice of the environments: its policy, its
    memory (trial jobs) and its action noise, which for slot i at step t is
    ``hash(sample_seed_i, STREAM_POLICY, t, head)`` and so does not depend on what else runs
    beside it."""

    def __init__(self, job: RolloutJob, actor: ActorCritic, action_size: int) -> None:
        assert job.policy is not None
        self.job = job
        self.actor = actor
        self.deterministic = job.policy.deterministic
        self.keys = seed_key(np.array([s.sample_seed for s in job.slots], dtype=np.int64))
        self.heads = np.arange(action_size, dtype=np.uint64)[None, :]
        self.step = 0
        self.state = actor.initial_state(job.num_envs) if job.trial else None

    def noise(self) -> torch.Tensor:
        """(E, heads) uniforms in [0, 1) of the current step."""
        words = hash_keys(self.keys[:, None], STREAM_POLICY, self.step, self.heads)
        return torch.from_numpy(to_uniform(words))

    def __call__(self, obs: torch.Tensor, mask: torch.Tensor, history: History | None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.job.trial:
            assert history is not None, "a trial job's policy needs the previous step"
            logits, value, self.state = recurrent_step(self.actor, obs, history, self.state)
        else:
            logits, value, _ = self.actor(obs)
        action, logprob = sample_action(self.actor, obs, mask, logits, self.noise(),
                                        self.deterministic)
        self.step += 1
        return action, logprob, value


class SideBySide:
    """Several jobs' act functions over consecutive slices of one batch."""

    def __init__(self, actors: Sequence[JobActor], slices: Sequence[slice]) -> None:
        self.actors = list(actors)
        self.slices = list(slices)

    def __call__(self, obs: torch.Tensor, mask: torch.Tensor, history: History | None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outs = []
        for actor, s in zip(self.actors, self.slices):
            sub = None if history is None else History(
                history.prev_schedule[s], history.prev_reward[s], history.prev_done[s])
            outs.append(actor(obs[s], mask[s], sub))
        return tuple(torch.cat(parts) for parts in zip(*outs))  # type: ignore[return-value]


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Policy steps on small batches gain nothing from a second thread, and with the
    simulators (ns-3 processes, other workers) busy on the other cores OpenMP's waits for a
    descheduled thread slowed them down many times over. Rollouts run with one thread, as
    Ray workers do."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def job_slices(jobs: Sequence[RolloutJob]) -> list[slice]:
    out, start = [], 0
    for job in jobs:
        out.append(slice(start, start + job.num_envs))
        start += job.num_envs
    return out


def _feedback_kind(jobs: Sequence[RolloutJob]) -> str:
    """The feedback memory the jobs' policies read (agents.feedback); jobs run side by side
    share one environment, so they must agree."""
    kinds = {job.policy.arch.get("feedback_memory", "none") for job in jobs
             if job.policy is not None}
    if len(kinds) > 1:
        raise ValueError(f"jobs with feedback memories {sorted(kinds)} cannot run side by "
                         "side")
    return kinds.pop() if kinds else "none"


def run_jobs(env: Any, jobs: Sequence[RolloutJob], cache: PolicyCache | None = None
             ) -> list[Trajectory]:
    """Run ``jobs`` side by side on ``env`` (a vector environment of exactly their total
    number of environments); one trajectory per job, in order. The jobs must agree on
    ``episodes`` and ``trial`` (they step in lock step)."""
    if not jobs:
        return []
    first = jobs[0]
    for job in jobs:
        if job.policy is None:
            raise ValueError(f"job {job.job_id} has no policy snapshot")
        if (job.episodes, job.trial) != (first.episodes, first.trial):
            raise ValueError(f"job {job.job_id} (episodes={job.episodes}, trial={job.trial}) "
                             f"cannot run beside job {first.job_id} (episodes="
                             f"{first.episodes}, trial={first.trial})")
    slots = [s for job in jobs for s in job.slots]
    if env.num_envs != len(slots):
        raise ValueError(f"the environment has {env.num_envs} envs; the jobs need {len(slots)}")
    cache = cache or PolicyCache()
    layout = env.layout
    env = feedback.wrap(env, _feedback_kind(jobs))
    cursor = EnvCursor.start(env, seed=[s.episode_seed for s in slots], options={
        "tasks": [s.task for s in slots], "instance_seeds": [s.instance_seed for s in slots],
        "episode": [job.first_episode for job in jobs for _ in job.slots]})
    modules = cache.modules([job.policy for job in jobs])  # type: ignore[misc]
    actors = [JobActor(job, actor, layout.action_size) for job, actor in zip(jobs, modules)]
    slices = job_slices(jobs)
    steps = first.steps(env.config.dynamics.episode_frames)
    with one_torch_thread():
        rollout = collect(env, cursor, steps, SideBySide(actors, slices), layout,
                          with_history=first.trial)
    return [Trajectory.from_rollout(rollout, s, job.job_id) for job, s in zip(jobs, slices)]
