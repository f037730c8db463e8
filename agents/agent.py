"""What every learning agent is: the interface the study drives, and the scaffolding the
agents share (construction, the training loop with learning-rate annealing, checkpoints,
seeding, the torch thread setting)."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from agents.allocation_policy import allocation_arch
from agents.budget import Budget
from agents.hyperparams import AgentConfig
from agents.networks import ActorCritic
from agents.policy_gradient import linear_schedule
from agents.rollouts.trajectory import Rollout, records_by_episode
from bridge.config import ConfigError
from bridge.layout import ObservationLayout
from bridge.metrics import HEADLINE_METRICS
from bridge.tasks import Task, TaskDistribution

# called after every training iteration with its statistics; returning False stops training
Callback = Callable[[dict[str, float]], bool | None]

# Metrics recorded on every adaptation-curve point (headline metrics plus the return).
CURVE_METRICS: tuple[str, ...] = (*HEADLINE_METRICS, "episode_return")
# Every curve point also holds the same metrics of the policy's mode (each head's most
# likely choice given the earlier ones) on the same episodes, under this prefix: the
# sampled policy is what adapts (it explores), the mode is what an operator would deploy.
MODE_PREFIX = "mode_"


def curve_points(rollout: Rollout, mode: Rollout | None = None, episode: int | None = None
                 ) -> list[dict[str, float]]:
    """Adaptation-curve points of a sampled rollout: the mean :data:`CURVE_METRICS` per
    episode and, from ``mode`` (the deterministic policy on the same slots), the same
    metrics prefixed with :data:`MODE_PREFIX`. ``episode`` relabels a one-episode rollout
    (its records count episodes from its own start)."""
    def per_episode(r: Rollout) -> list[dict[str, float]]:
        recs = r.episode_records if episode is None else [
            dict(x, episode=0) for x in r.episode_records]
        return records_by_episode(recs, CURVE_METRICS)

    points = per_episode(rollout)
    if mode is not None:
        for point, m in zip(points, per_episode(mode)):
            point.update({MODE_PREFIX + k: v for k, v in m.items()})
    return points

# torch threads of a learner process: the networks are small, so a second thread gains
# little, and a study runs two phases at once on a 2-core machine (``--jobs 2``), where more
# threads than cores make the recurrent updates many times slower (rollout workers run one
# thread each, see agents.rollouts.runner)
TORCH_THREADS = 1

CHECKPOINT_FORMAT = "iabmeta-agent-v1"


def use_torch_threads(n: int = TORCH_THREADS) -> None:
    torch.set_num_threads(n)


def fit_warm_start(config: Any, max_env_steps: int, frames: int) -> Any:
    """``config`` with the warm start's rounds, then tasks, then replicas lowered (to 1 at
    least) until its demonstrations (rounds x tasks x replicas x ``frames`` env-steps) fit
    in ``max_env_steps``."""
    r, t, p = config.warm_start_rounds, config.warm_start_tasks, config.warm_start_replicas
    per = max(1, frames)
    if r * t * p * per > max_env_steps:
        r = max(1, max_env_steps // (t * p * per))
    if r * t * p * per > max_env_steps:
        t = max(1, max_env_steps // (p * per))
    if r * t * p * per > max_env_steps:
        p = max(1, max_env_steps // per)
    return dataclasses.replace(config, warm_start_rounds=r, warm_start_tasks=t,
                               warm_start_replicas=p)


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's global generators. The agents draw all action noise from
    torch's generator and their task draws from explicit ``numpy.random.Generator`` objects,
    so a seed fixes a run."""
    random.seed(seed)
    torch.manual_seed(seed)


def _plain(obj: Any) -> Any:
    """JSON round trip: checkpoints hold only tensors and plain data, never pickled objects."""
    return json.loads(json.dumps(obj))


def save_checkpoint(path: str | Path, modules: dict[str, nn.Module], meta: dict[str, Any]
                    ) -> None:
    """Write the state dicts of ``modules`` and JSON-able ``meta`` (configs, counters)."""
    payload = {"format": CHECKPOINT_FORMAT, "meta": _plain(meta),
               "modules": {name: m.state_dict() for name, m in modules.items()}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (tensors and plain containers only)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not an iabmeta agent checkpoint "
                         f"(expected format {CHECKPOINT_FORMAT!r})")
    return payload


def episode_return_stats(rollout: Rollout) -> dict[str, float]:
    """Mean metrics of the episodes a rollout finished, as ``episode_<metric>``."""
    recs = rollout.episode_records
    if not recs:
        return {}
    out = {f"episode_{k}": float(np.mean([r[k] for r in recs])) for k in CURVE_METRICS}
    out["episodes"] = float(len(recs))
    return out


class TrainingRun:
    """The bookkeeping every training loop shares: per-iteration statistics stamped with the
    iteration, env-steps and wall time (reported, never a stopping rule), the callback
    (returning False stops), and the summary ``meta_train`` returns."""

    def __init__(self, callback: Callback | None) -> None:
        self.callback = callback
        self.start = time.perf_counter()
        self.iterations = 0
        self.last: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def record(self, stats: dict[str, float], env_steps: int) -> bool:
        """Log one finished iteration; True when the callback asks to stop."""
        stats.update(iteration=float(self.iterations), env_steps=float(env_steps),
                     wall_s=self.elapsed())
        self.iterations += 1
        self.last = stats
        return self.callback is not None and self.callback(stats) is False

    def summary(self, env_steps: int) -> dict[str, Any]:
        return {"env_steps": env_steps, "wall_s": self.elapsed(),
                "iterations": self.iterations, "last": self.last}


class Agent(ABC):
    """A spectrum-allocation learner: meta-train on training tasks, adapt on a held-out task.

    A subclass names its ``config_type``, builds its networks and optimizer in :meth:`build`
    and lists them in :meth:`modules` (what a checkpoint holds). ``act`` is batched: obs
    (N, D) float, mask (N, B*K, 1+L) bool -> action (N, B*K) int64, plus the memory state to
    pass back next step (None for memoryless agents)."""

    name: str = "agent"
    config_type: ClassVar[type[AgentConfig]]
    # the module a warm start clones the teacher into (a key of :meth:`modules`)
    policy_module: ClassVar[str] = "model"
    optimizer: torch.optim.Optimizer

    def __init__(self, layout: ObservationLayout, config: AgentConfig | None = None,
                 seed: int = 0) -> None:
        self.layout = layout
        self.config: Any = config or self.config_type()
        self.seed = seed
        self.env_steps = 0
        self.warm_start_stats: dict[str, float] = {}
        seed_everything(seed)
        self.build()

    @abstractmethod
    def build(self) -> None:
        """Create the networks and ``self.optimizer`` (after the seed is set)."""

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """The networks a checkpoint saves, by name."""

    @abstractmethod
    def meta_train(self, envs: Any, tasks: TaskDistribution, budget: Budget,
                   callback: Callback | None = None) -> dict[str, Any]:
        """Train on ``tasks``' training split; returns at least ``env_steps`` and ``wall_s``.
        ``envs`` is a rollout backend (:mod:`agents.rollouts`: local or Ray) or a factory
        num_envs -> vector environment (run in this process)."""

    @abstractmethod
    def adapt(self, envs: Any, task: Task, episodes: int, instance_seed: int = 0,
              num_envs: int | None = None) -> list[dict[str, float]]:
        """Run ``episodes + 1`` episodes of ``task``'s deployment ``instance_seed`` on
        ``num_envs`` environments of ``envs`` (a rollout backend, a factory, or a vector
        environment, whose size is then the default), adapting between them; point k holds
        the mean metrics of episode k."""

    @abstractmethod
    def act(self, obs: np.ndarray, mask: np.ndarray, state: Any = None,
            deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """One batched decision."""

    def network(self, **options: Any) -> ActorCritic:
        """An actor-critic of the config's shared sizes and idle bias (``options`` go to
        :class:`ActorCritic`: memory, attention, a different idle bias...)."""
        cfg = self.config
        options.setdefault("idle_bias", cfg.idle_bias)
        for key, value in allocation_arch(cfg).items():
            options.setdefault(key, value)
        options.setdefault("credit", cfg.credit)
        return ActorCritic(self.layout, cfg.hidden, cfg.link_hidden, cfg.rank, **options)

    def adam(self, parameters: Any, lr: float | None = None) -> torch.optim.Adam:
        """Adam with the config's epsilon, at ``lr`` (default: the base learning rate)."""
        return torch.optim.Adam(parameters, lr=self.config.base_learning_rate if lr is None
                                else lr, eps=self.config.adam_eps)

    # ------------------------------------------------------------------ training loop
    def anneal(self, progress: float) -> None:
        """Learning rate for ``progress`` in [0, 1) of the run (linear to 0 when annealing)."""
        if self.config.anneal_lr:
            self.optimizer.param_groups[0]["lr"] = linear_schedule(
                self.config.base_learning_rate, progress)

    def warm_start(self, config: Any, tasks: TaskDistribution, budget: Budget) -> None:
        """Behaviour cloning of the config's teacher heuristic into the policy before RL
        (:mod:`agents.warm_start`); its env-steps count as meta-training env-steps. The
        demonstrations take at most half of ``budget``'s meta-training env-steps: with a
        smaller budget fewer rounds, then fewer tasks, then fewer replicas are recorded
        (``warm_start_rounds``/``_tasks``/``_replicas`` in the statistics)."""
        if self.config.warm_start == "none":
            return
        from agents.warm_start import warm_start_from_teacher

        module = self.modules()[self.policy_module]
        hyper = fit_warm_start(self.config, budget.meta_train_env_steps // 2,
                               config.dynamics.episode_frames)
        stats = warm_start_from_teacher(module, config, tasks, hyper, self.seed,
                                        recurrent=module.memory is not None)
        stats.update(rounds=hyper.warm_start_rounds, tasks=hyper.warm_start_tasks,
                     replicas=hyper.warm_start_replicas)
        self.env_steps += int(stats["env_steps"])
        self.warm_start_stats = {f"warm_start_{k}": v for k, v in stats.items()}

    def rl_iterations(self, budget: Budget, steps_per_iteration: int) -> int:
        """RL iterations that fit in what the budget leaves after the warm start (a warm
        start that spends the whole budget is refused: it would train no RL at all)."""
        if self.env_steps and self.env_steps >= budget.meta_train_env_steps:
            where = self.config._section_name
            raise ConfigError(
                f"{where}.warm_start={self.config.warm_start!r} spends "
                f"{self.env_steps} env-steps, all of experiment.meta_train_env_steps="
                f"{budget.meta_train_env_steps}: raise the budget or set "
                f"{where}.warm_start='none'")
        return max(0, budget.meta_train_env_steps - self.env_steps) // steps_per_iteration

    def training_loop(self, iterations: int, steps_per_iteration: int,
                      iteration: Callable[[int], dict[str, float]],
                      callback: Callback | None) -> dict[str, Any]:
        """Run ``iteration(it)`` (one rollout and update, returning its statistics) for
        ``iterations`` iterations with the learning rate annealed over them, counting
        ``steps_per_iteration`` env-steps each; stops early only when ``callback`` asks."""
        run = TrainingRun(callback)
        for it in range(iterations):
            self.anneal(it / iterations)
            stats = iteration(it)
            self.env_steps += steps_per_iteration
            if run.record(stats, self.env_steps):
                break
        return {**run.summary(self.env_steps), **self.warm_start_stats}

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path) -> None:
        """Write a checkpoint (tensors and plain data only)."""
        save_checkpoint(path, self.modules(),
                        {"agent": self.name, "config": asdict(self.config), "seed": self.seed,
                         "layout": asdict(self.layout), "env_steps": self.env_steps})

    @classmethod
    def load(cls, path: str | Path) -> Agent:
        """Rebuild an agent from :meth:`save`'s checkpoint."""
        payload = load_checkpoint(path)
        meta = payload["meta"]
        agent = cls(ObservationLayout(**meta["layout"]), cls.config_type(**meta["config"]),
                    seed=meta["seed"])
        for name, module in agent.modules().items():
            module.load_state_dict(payload["modules"][name])
        agent.env_steps = meta["env_steps"]
        return agent
