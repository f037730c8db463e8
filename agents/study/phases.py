"""The phases of a study, shared by ``reproduce``, ``train``, ``evaluate`` and the library
API: evaluate a baseline, meta-train an agent, adapt a trained agent on the held-out tasks.

Every phase takes its seeds from the spec's seed plan (:mod:`agents.study.seeds`), so the
same phase gives the same numbers whichever command runs it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agents.agent import seed_everything
from agents.heuristics import make_heuristic
from agents.oracle import ExhaustiveUpperBound, HiddenConditionsOracle
from agents.registry import load_agent, make_agent
from agents.rollouts import RolloutBackend, pin_tasks
from agents.study.rollout_runtime import RolloutRuntime, env_factory
from agents.study.spec import HIDDEN_ORACLE, UPPER_BOUND, Study, StudySpec
from agents.study.store import PhaseId, PhaseStore

# called with the statistics of every training iteration (progress display)
OnIteration = Callable[[PhaseId, dict[str, float]], None]


def study_phases(spec: StudySpec) -> list[tuple[PhaseId, Study]]:
    """Every phase of ``spec`` in execution order (an adapt phase after its train phase)."""
    out = []
    for study in spec.studies:
        for method in (*spec.heuristics, *study.baselines):
            out.append((PhaseId("baseline", study.name, method), study))
        for agent in spec.agents:
            for seed in spec.seeds:
                out.append((PhaseId("train", study.name, agent, seed), study))
                out.append((PhaseId("adapt", study.name, agent, seed), study))
    return out


def run_phase(spec: StudySpec, phase: PhaseId, study: Study, store: PhaseStore,
              runtime: RolloutRuntime, on_iteration: OnIteration | None = None) -> Any:
    """Run one phase and return its result (what the store saves for it)."""
    if phase.kind == "baseline":
        return evaluate_baseline(spec, study, phase.method)
    if phase.kind == "train":
        return train_agent(spec, study, phase, store, runtime, on_iteration)
    trained = store.load(phase.trained)
    with _backend(spec, study, runtime) as rollouts:
        records = adapt_checkpoint(spec, study, phase.method, store.out / trained["checkpoint"],
                                   rollouts)
    store.save_rollout_stats(phase, rollouts.stats)
    return records


def _backend(spec: StudySpec, study: Study, runtime: RolloutRuntime) -> RolloutBackend:
    return runtime.backend(spec.backend, study.config, spec.budget.envs_per_job)


# act(obs (N, D), mask (N, B*K, 1+L)) -> action (N, B*K): one baseline on one vector env
BaselineAct = Callable[[np.ndarray, np.ndarray], np.ndarray]


def baseline_policy(spec: StudySpec, study: Study, method: str, env: Any) -> BaselineAct:
    """A fresh baseline ``method`` acting on ``env``, which simulates one deployment: a
    heuristic, the upper bound or the per-task oracle (these two read the simulator through
    the env's capabilities). It is reset here once, and keeps what it learns over every
    episode it then plays on ``env`` (the same deployment): an adaptive heuristic's
    experience, as an agent's adaptation."""
    if method == UPPER_BOUND:
        bound = ExhaustiveUpperBound()
        return lambda obs, mask: bound.act_on_env(env)
    if method == HIDDEN_ORACLE:
        oracle = HiddenConditionsOracle.for_config(study.config)
        oracle.reset(env.num_envs)
        return lambda obs, mask: oracle.act_on_env(env, obs, mask)
    policy = make_heuristic(method, env.layout, seed=spec.seed_plan.heuristic_seed,
                            config=study.config)
    policy.reset(env.num_envs)
    return policy.act


def baseline_batches(spec: StudySpec, study: Study) -> list[list[tuple[int, Any, int]]]:
    """The held-out (index, task, instance seed) triples of ``study`` in the batches a
    baseline runs side by side: as many tasks' ``adapt_envs`` as fit in the ``num_envs``
    environments a training iteration steps at once (at least one task). At a few
    environments a frame's work is mostly fixed cost, so batching tasks saves most of it."""
    held_out = [(i, task, seed) for i, (task, seed) in enumerate(spec.held_out(study))]
    per_batch = max(1, spec.budget.num_envs // spec.budget.adapt_envs)
    return [held_out[i:i + per_batch] for i in range(0, len(held_out), per_batch)]


def evaluate_baseline(spec: StudySpec, study: Study, method: str) -> list[dict[str, Any]]:
    """Run a non-learning policy for ``adapt_episodes + 1`` episodes on each held-out task;
    returns one record per (task, episode) with the episode metrics (mean over the task's
    envs). One policy per batch of tasks plays all their episodes (:func:`baseline_policy`);
    every environment keeps its own experience, so a task's records do not depend on which
    tasks run beside it (a test checks it), except the random policy's draws."""
    budget = spec.budget
    frames = study.config.dynamics.episode_frames
    make_env = env_factory(spec.backend, study.config)
    per_task = budget.adapt_envs
    records = []
    for batch in baseline_batches(spec, study):
        env = make_env(per_task * len(batch))
        try:
            # the same deployment and episode seeds the agents adapt on, so every method
            # sees identical episodes
            cursor = pin_tasks(env, [task for _, task, _ in batch],
                               [seed for _, _, seed in batch])
            obs, info = cursor.obs, {"action_mask": cursor.mask}
            act = baseline_policy(spec, study, method, env)
            for episode in range(budget.adapt_episodes + 1):
                for _ in range(frames):
                    obs, _, _, _, info = env.step(act(obs, info["action_mask"]))
                for j, (t_index, _, _) in enumerate(batch):
                    rows = slice(j * per_task, (j + 1) * per_task)
                    records.append({"task": t_index, "episode": episode,
                                    **{k: float(np.mean(np.asarray(v)[rows]))
                                       for k, v in info["episode_metrics"].items()}})
                # the next-step autoreset step: its action is ignored
                obs, *_, info = env.step(np.zeros((env.num_envs, env.layout.action_size),
                                                  dtype=np.int64))
        finally:
            env.close()
    records.sort(key=lambda r: (r["task"], r["episode"]))
    return records


def train_agent(spec: StudySpec, study: Study, phase: PhaseId, store: PhaseStore,
                runtime: RolloutRuntime, on_iteration: OnIteration | None = None
                ) -> dict[str, Any]:
    """Meta-train agent ``phase.method`` with run seed ``phase.seed``; the checkpoint goes to
    ``store.out / phase.checkpoint``."""
    assert phase.seed is not None
    agent_seed = spec.seed_plan.agent_seed(phase.seed)
    seed_everything(agent_seed)
    agent = make_agent(phase.method, study.config, agent_seed,
                       spec.agent_hyperparams(phase.method))
    curve: list[dict[str, float]] = []

    def callback(stats: dict[str, float]) -> bool:
        curve.append({k: float(v) for k, v in stats.items() if _is_number(v)})
        if on_iteration is not None:
            on_iteration(phase, stats)
        return True

    start = time.perf_counter()
    with _backend(spec, study, runtime) as rollouts:
        info = agent.meta_train(rollouts, study.tasks, spec.budget, callback)
    wall = time.perf_counter() - start
    store.save_rollout_stats(phase, rollouts.stats)
    ckpt = store.out / phase.checkpoint
    tmp = ckpt.with_suffix(".pt.tmp")
    agent.save(tmp)
    os.replace(tmp, ckpt)
    return {"agent": phase.method, "seed": phase.seed, "study": study.name,
            "env_steps": int(info.get("env_steps", 0)), "wall_s": wall,
            "checkpoint": phase.checkpoint, "curve": curve,
            "info": {k: v for k, v in info.items() if _is_number(v)}}


def adapt_checkpoint(spec: StudySpec, study: Study, agent_name: str, checkpoint: Path,
                     rollouts: RolloutBackend) -> list[dict[str, Any]]:
    """Adapt the agent saved in ``checkpoint`` on each held-out task of ``study``, from the
    checkpoint every time and from the seed plan's adaptation seed of its training run: the
    adapt phase of ``reproduce`` and ``iabmeta evaluate`` both run this."""
    records = []
    for t_index, (task, inst_seed) in enumerate(spec.held_out(study)):
        agent = load_agent(agent_name, checkpoint)  # fresh per task
        run = spec.seed_plan.run_of(agent.seed)
        seed_everything(spec.seed_plan.adaptation_seed(run, t_index))
        curve = agent.adapt(rollouts, task, spec.budget.adapt_episodes,
                            instance_seed=inst_seed, num_envs=spec.budget.adapt_envs)
        for episode, point in enumerate(curve):
            records.append({"task": t_index, "episode": episode,
                            **{k: float(v) for k, v in point.items() if _is_number(v)}})
    return records


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
