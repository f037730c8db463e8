"""The seed plan of a study: every seed a study uses, derived from the base seed in one place.

The held-out (task, instance seed) pairs, each training run's agent seed and each adaptation's
seed are defined here only; the study phases, ``iabmeta evaluate`` and the library API all
ask this plan, so a checkpoint evaluated later replays the adaptation ``reproduce`` ran.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.config import ConfigError
from bridge.tasks import Task, TaskDistribution

# a base seed owns the agent seeds base * RUNS_PER_BASE + run, run in [0, RUNS_PER_BASE)
RUNS_PER_BASE = 10_000


@dataclass(frozen=True)
class SeedPlan:
    """All seeds derived from the study's base seed ``base``."""

    base: int

    def held_out(self, tasks: TaskDistribution, n: int) -> list[tuple[Task, int]]:
        """The held-out (task, instance seed) pairs every method is evaluated on."""
        sampled = tasks.sample("test", seed=self.base + 7_777, n=n)
        return [(t, self.base * 1000 + 500 + i) for i, t in enumerate(sampled)]

    @property
    def heuristic_seed(self) -> int:
        """The seed of the randomised baselines (e.g. the masked random policy)."""
        return self.base

    def agent_seed(self, run: int) -> int:
        """The seed of training run ``run`` (its agent's initialisation and global RNG)."""
        return self.base * RUNS_PER_BASE + run

    def run_of(self, agent_seed: int) -> int:
        """The training run an agent seed belongs to (the inverse of :meth:`agent_seed`)."""
        run = agent_seed - self.base * RUNS_PER_BASE
        if not 0 <= run < RUNS_PER_BASE:
            raise ConfigError(f"agent seed {agent_seed} was not trained with --seed="
                              f"{self.base} (expected {self.base * RUNS_PER_BASE} + run)")
        return run

    def adaptation_seed(self, run: int, task_index: int) -> int:
        """The global RNG seed before run ``run``'s agent adapts on held-out task
        ``task_index``: every (agent, run, task) adaptation starts from its own fixed random
        state, so a resumed run or a later evaluation gives what an uninterrupted run gave."""
        return self.base * RUNS_PER_BASE + run * 100 + task_index + 17
