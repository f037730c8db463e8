"""The study runner behind ``iabmeta reproduce/train/evaluate``: phases, resumable outputs.

A run is a list of phases (evaluate the baselines, meta-train agent A with seed s, adapt it on
the held-out tasks, ...). Each finished phase writes ``<out>/phases/<name>.json`` atomically
(temporary file, then rename), and checkpoints go to ``<out>/checkpoints/``; running the same
command again with the same ``--out`` skips every phase whose result exists. The report
(``results.json``, CSV curves, PNG plots, ``report.md``) is rebuilt from the phase files.

Two studies share the protocol: ``main`` (the experiment's scenario, the default 16-UE network)
and ``small`` (2 base stations x 3 channels, where the exhaustive upper bound runs), so every
agent also gets a fraction of the upper bound.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.heuristics import HEURISTICS, make_heuristic
from bridge.config import ConfigError, ScenarioConfig, load_config, read_table
from bridge.contract import BACKENDS, make_vector_env, supports_frame_replay
from bridge.metrics import HEADLINE_METRICS
from bridge.tasks import Task, TaskDistribution

AGENT_NAMES = ("ppo", "maml", "rl2", "attention")
SMALL_STUDY = {"topology__n_iab": 1, "topology__max_iab": 1, "topology__max_ues": 4,
               "topology__n_ue": 4, "radio__n_channels": 3}


# ---------------------------------------------------------------------------- configuration
@dataclass
class Study:
    """One scenario scale: its config, task distribution and which baselines run."""

    name: str
    config: ScenarioConfig
    tasks: TaskDistribution
    upper_bound: bool


@dataclass
class Experiment:
    backend: str
    seed: int
    quick: bool
    agents: tuple[str, ...]
    seeds: tuple[int, ...]
    budget: Any  # agents.base.Budget
    studies: list[Study]
    heuristics: tuple[str, ...] = tuple(sorted(HEURISTICS))
    raw: dict[str, Any] = field(default_factory=dict)
    # the Ray rollout pool of a distributed run (agents.rollouts.ray_pool.RayPool), or None
    ray_pool: Any = None

    def fingerprint(self) -> str:
        """Hash of everything that determines the results (resuming requires a match)."""
        blob = json.dumps({
            "backend": self.backend, "seed": self.seed, "agents": self.agents,
            "seeds": self.seeds, "budget": self.budget.to_dict(),
            "studies": [(s.name, s.config.to_dict(), s.tasks.ranges) for s in self.studies],
            "heuristics": self.heuristics,
        }, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_experiment(args: argparse.Namespace) -> Experiment:
    """Experiment from the CLI arguments and the optional TOML/YAML file (sections
    ``[scenario]``, ``[tasks]``, ``[experiment]``)."""
    from agents.base import default_budget, quick_budget

    raw: dict[str, Any] = read_table(args.config) if args.config else {}
    unknown = sorted(set(raw) - {"scenario", "tasks", "experiment"})
    if unknown and any(k in raw for k in ("scenario", "tasks", "experiment")):
        raise ConfigError(f"unknown section [{unknown[0]}] in {args.config}; expected "
                          "[scenario], [tasks] and [experiment]")
    exp_raw = dict(raw.get("experiment", {}))
    budget = quick_budget() if args.quick else default_budget()
    budget_fields = set(budget.to_dict())
    for key in list(exp_raw):
        if key in budget_fields:
            value = exp_raw.pop(key)
            if key == "seeds":
                value = tuple(int(v) for v in value)
            budget = budget.replace(**{key: value})
    agents = tuple(exp_raw.pop("agents", AGENT_NAMES))
    if getattr(args, "agents", None):
        agents = tuple(a.strip() for a in args.agents.split(",") if a.strip())
    bad = [a for a in agents if a not in AGENT_NAMES]
    if bad:
        raise ConfigError(f"experiment.agents has {bad[0]!r}; expected names from "
                          f"{list(AGENT_NAMES)}")
    n_seeds = getattr(args, "seeds", None)
    seeds = budget.seeds if n_seeds is None else tuple(range(int(n_seeds)))
    if n_seeds is not None and int(n_seeds) < 1:
        raise ConfigError(f"--seeds={n_seeds}: expected at least 1")
    studies_wanted = exp_raw.pop("studies", ["main", "small"])
    heuristics = tuple(exp_raw.pop("heuristics", sorted(HEURISTICS)))
    for h in heuristics:
        if h not in HEURISTICS:
            raise ConfigError(f"experiment.heuristics has {h!r}; expected names from "
                              f"{sorted(HEURISTICS)}")
    if exp_raw:
        raise ConfigError(f"unknown field experiment.{sorted(exp_raw)[0]}; known: agents, "
                          f"heuristics, studies and the budget fields {sorted(budget_fields)}")
    if getattr(args, "envs_per_job", None) is not None:
        budget = budget.replace(envs_per_job=int(args.envs_per_job))
    if args.backend == "ns3" and args.quick:
        # an ns-3 process steps a few hundred frames per second: shrink the quick profile
        budget = budget.replace(meta_train_env_steps=min(budget.meta_train_env_steps, 1_500),
                                num_envs=min(budget.num_envs, 4), meta_batch_tasks=2,
                                adapt_episodes=min(budget.adapt_episodes, 2), adapt_envs=2,
                                n_test_tasks=1, episode_frames=min(budget.episode_frames, 20),
                                seeds=(0,))
        seeds = seeds[:1]
    base = load_config(args.config, getattr(args, "overrides", []))
    base = base.replace(dynamics__episode_frames=budget.episode_frames)
    studies = []
    for name in studies_wanted:
        if name == "main":
            cfg = base
        elif name == "small":
            cfg = base.replace(**SMALL_STUDY)
        else:
            raise ConfigError(f"experiment.studies has {name!r}; expected 'main' or 'small'")
        tasks = TaskDistribution.for_config(cfg, raw.get("tasks"))
        fits = (cfg.topology.n_iab + 1) <= 2 and cfg.radio.n_channels <= 3
        studies.append(Study(name, cfg, tasks,
                             upper_bound=fits and supports_frame_replay(args.backend)))
    budget = budget.replace(seeds=seeds)
    return Experiment(backend=args.backend, seed=int(args.seed), quick=bool(args.quick),
                      agents=agents, seeds=tuple(seeds), budget=budget, studies=studies,
                      heuristics=heuristics, raw=raw)


# ---------------------------------------------------------------------------- phase store
class PhaseStore:
    """Results of finished phases under ``<out>/phases``, written atomically."""

    def __init__(self, out: Path, fingerprint: str, fresh: bool) -> None:
        self.out = out
        self.dir = out / "phases"
        manifest = out / "run.json"
        if fresh and out.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
        if manifest.exists() and not fresh:
            previous = json.loads(manifest.read_text()).get("fingerprint")
            if previous != fingerprint:
                raise ConfigError(
                    f"--out {out} holds a run with different settings (fingerprint "
                    f"{previous} vs {fingerprint}); use another --out or --no-resume")
        self.dir.mkdir(parents=True, exist_ok=True)
        (out / "checkpoints").mkdir(exist_ok=True)
        write_json_atomic(manifest, {"fingerprint": fingerprint, "started": time.time()})

    def path(self, name: str) -> Path:
        return self.dir / (name.replace(":", "__") + ".json")

    def done(self, name: str) -> bool:
        return self.path(name).exists()

    def load(self, name: str) -> Any:
        return json.loads(self.path(name).read_text())

    def save(self, name: str, value: Any) -> None:
        write_json_atomic(self.path(name), value)

    def save_rollout_stats(self, name: str, stats: Any) -> None:
        """Record what the rollout backend did in phase ``name`` (jobs, retries, ...) in
        ``<out>/rollouts.json``, which the report sums."""
        table = self.rollout_stats()
        table[name] = stats.to_dict()
        write_json_atomic(self.out / "rollouts.json", table)

    def rollout_stats(self) -> dict[str, Any]:
        path = self.out / "rollouts.json"
        return json.loads(path.read_text()) if path.exists() else {}


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON so that a crash leaves either the old file or the new one, never half."""
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(value, fh, indent=1, default=_json_default)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


# ---------------------------------------------------------------------------- environments
def env_factory(backend: str, config: ScenarioConfig) -> Callable[[int], Any]:
    """num_envs -> a vector environment of ``config`` on ``backend``."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend={backend!r}: expected one of {list(BACKENDS)}")
    return lambda n: make_vector_env(backend, n, config=config)


def rollout_backend(exp: Experiment, study: Study) -> Any:
    """Where the agents' rollout jobs of ``study`` run: the experiment's Ray pool when it has
    one (``--ray-address``), else in this process."""
    if exp.ray_pool is not None:
        return exp.ray_pool.backend(study.config, exp.backend,
                                    envs_per_job=exp.budget.envs_per_job)
    from agents.rollouts import LocalRollouts

    return LocalRollouts(env_factory(exp.backend, study.config), study.config,
                         envs_per_job=exp.budget.envs_per_job)


def test_tasks(study: Study, exp: Experiment) -> list[tuple[Task, int]]:
    """The held-out (task, instance seed) pairs every method is evaluated on."""
    tasks = study.tasks.sample("test", seed=exp.seed + 7_777, n=exp.budget.n_test_tasks)
    return [(t, exp.seed * 1000 + 500 + i) for i, t in enumerate(tasks)]


# ---------------------------------------------------------------------------- baselines
def evaluate_policy(make_env: Callable[[int], Any], study: Study, exp: Experiment,
                    policy_name: str) -> list[dict[str, Any]]:
    """Run a non-learning policy for ``adapt_episodes + 1`` episodes on each held-out task;
    returns one record per (task, episode) with the episode metrics (mean over envs)."""
    from agents.base import pin_tasks
    from agents.oracle import ExhaustiveUpperBound

    budget = exp.budget
    records = []
    for t_index, (task, inst_seed) in enumerate(test_tasks(study, exp)):
        env = make_env(budget.adapt_envs)
        try:
            # the same deployment and episode seeds the agents adapt on (agents.base), so
            # every method sees identical episodes
            cursor = pin_tasks(env, [task], [inst_seed])
            obs, info = cursor.obs, {"action_mask": cursor.mask}
            if policy_name == "upper_bound":
                policy: Any = ExhaustiveUpperBound()
            else:
                policy = make_heuristic(policy_name, env.layout, seed=exp.seed,
                                        config=study.config)
            policy.reset(env.num_envs)
            for episode in range(budget.adapt_episodes + 1):
                for _ in range(study.config.dynamics.episode_frames):
                    if policy_name == "upper_bound":
                        action = policy.act_on_env(env)
                    else:
                        action = policy.act(obs, info["action_mask"])
                    obs, _, _, trunc, info = env.step(action)
                metrics = info["episode_metrics"]
                records.append({"task": t_index, "episode": episode,
                                **{k: float(np.mean(v)) for k, v in metrics.items()}})
                # the next-step autoreset step: its action is ignored
                obs, *_, info = env.step(np.zeros((env.num_envs, env.layout.action_size),
                                                  dtype=np.int64))
        finally:
            env.close()
    return records


# ---------------------------------------------------------------------------- agents
def make_agent(name: str, config: ScenarioConfig, seed: int) -> Any:
    from agents.registry import make_agent as _make

    return _make(name, config, seed)


def load_agent(name: str, path: Path) -> Any:
    from agents.registry import load_agent as _load

    return _load(name, path)


def train_phase(exp: Experiment, study: Study, agent_name: str, seed: int, store: PhaseStore,
                progress: Any) -> dict[str, Any]:
    from agents.core import seed_everything

    seed_everything(exp.seed * 10_000 + seed)
    agent = make_agent(agent_name, study.config, exp.seed * 10_000 + seed)
    curve: list[dict[str, float]] = []
    budget = exp.budget.replace(seeds=(seed,))

    def callback(stats: dict[str, float]) -> bool:
        curve.append({k: float(v) for k, v in stats.items() if _is_number(v)})
        progress.set_postfix_str(
            f"{agent_name} s{seed} steps={int(stats.get('env_steps', 0))}", refresh=False)
        progress.refresh()
        return True

    start = time.perf_counter()
    with rollout_backend(exp, study) as rollouts:
        info = agent.meta_train(rollouts, study.tasks, budget, callback)
    wall = time.perf_counter() - start
    store.save_rollout_stats(f"train:{study.name}:{agent_name}:{seed}", rollouts.stats)
    ckpt = store.out / "checkpoints" / f"{study.name}-{agent_name}-s{seed}.pt"
    tmp = ckpt.with_suffix(".pt.tmp")
    agent.save(tmp)
    os.replace(tmp, ckpt)
    return {"agent": agent_name, "seed": seed, "study": study.name,
            "env_steps": int(info.get("env_steps", 0)), "wall_s": wall,
            "checkpoint": str(ckpt.relative_to(store.out)), "curve": curve,
            "info": {k: v for k, v in info.items() if _is_number(v)}}


def adapt_phase(exp: Experiment, study: Study, agent_name: str, seed: int, store: PhaseStore
                ) -> list[dict[str, Any]]:
    from agents.core import seed_everything

    trained = store.load(f"train:{study.name}:{agent_name}:{seed}")
    agent = load_agent(agent_name, store.out / trained["checkpoint"])
    records = []
    with rollout_backend(exp, study) as rollouts:
        for t_index, (task, inst_seed) in enumerate(test_tasks(study, exp)):
            # every (agent, seed, task) adaptation starts from the same random state, so a
            # resumed run gives what an uninterrupted one gives
            seed_everything(exp.seed * 10_000 + seed * 100 + t_index + 17)
            curve = agent.adapt(rollouts, task, exp.budget.adapt_episodes,
                                instance_seed=inst_seed, num_envs=exp.budget.adapt_envs)
            for episode, point in enumerate(curve):
                records.append({"task": t_index, "episode": episode,
                                **{k: float(v) for k, v in point.items() if _is_number(v)}})
            agent = load_agent(agent_name, store.out / trained["checkpoint"])  # fresh per task
    store.save_rollout_stats(f"adapt:{study.name}:{agent_name}:{seed}", rollouts.stats)
    return records


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


# ---------------------------------------------------------------------------- the run
def phases(exp: Experiment) -> Iterator[tuple[str, Study, str, int | None]]:
    """(phase name, study, method, seed) in execution order."""
    for study in exp.studies:
        for h in exp.heuristics:
            yield f"baseline:{study.name}:{h}", study, h, None
        if study.upper_bound:
            yield f"baseline:{study.name}:upper_bound", study, "upper_bound", None
        for agent in exp.agents:
            for seed in exp.seeds:
                yield f"train:{study.name}:{agent}:{seed}", study, agent, seed
                yield f"adapt:{study.name}:{agent}:{seed}", study, agent, seed


@contextmanager
def distributed(args: argparse.Namespace, exp: Experiment) -> Iterator[None]:
    """With ``--ray-address``, a Ray rollout pool for the run (``exp.ray_pool``), closed at
    the end; without it nothing here imports Ray."""
    address = getattr(args, "ray_address", None)
    if not address:
        yield
        return
    from agents.rollouts.ray_pool import RayPool

    pool = RayPool(address, getattr(args, "ray_workers", None))
    exp.ray_pool = pool
    hosts = sorted({i["host"] for i in pool.infos})
    print(f"rollouts on Ray ({address}): {len(pool.workers)} workers on {', '.join(hosts)}, "
          f"{exp.budget.envs_per_job} envs per job")
    try:
        yield
    finally:
        exp.ray_pool = None
        pool.close()


def run_reproduce(args: argparse.Namespace) -> int:
    from agents.base import torch_threads

    torch_threads(2)
    exp = build_experiment(args)
    with distributed(args, exp):
        return _reproduce(args, exp)


def _reproduce(args: argparse.Namespace, exp: Experiment) -> int:
    from tqdm import tqdm

    out = Path(args.out)
    store = PhaseStore(out, exp.fingerprint(), fresh=bool(getattr(args, "no_resume", False)))
    todo = list(phases(exp))
    already = sum(store.done(name) for name, *_ in todo)
    if already:
        print(f"resuming {out}: {already} of {len(todo)} phases already done, skipping them")
    print(f"iabmeta reproduce: backend={exp.backend} profile={exp.budget.name} "
          f"agents={','.join(exp.agents)} seeds={list(exp.seeds)} "
          f"studies={[s.name for s in exp.studies]} -> {out}")
    writer = _tensorboard(out) if getattr(args, "tensorboard", False) else None
    t_run = time.perf_counter()
    with tqdm(total=len(todo), initial=already, desc="phases", unit="phase",
              disable=None, file=sys.stderr) as bar:
        for name, study, method, seed in todo:
            if store.done(name):
                continue
            t0 = time.perf_counter()
            bar.set_postfix_str(name, refresh=True)
            kind = name.split(":", 1)[0]
            if kind == "baseline":
                result: Any = evaluate_policy(env_factory(exp.backend, study.config), study,
                                              exp, method)
                summary = _summary_line(result)
            elif kind == "train":
                assert seed is not None
                result = train_phase(exp, study, method, seed, store, bar)
                summary = f"{result['env_steps']} env-steps"
                if writer is not None:
                    for point in result["curve"]:
                        for k, v in point.items():
                            writer.add_scalar(f"{study.name}/{method}/s{seed}/{k}", v,
                                              int(point.get("env_steps", 0)))
            else:
                assert seed is not None
                result = adapt_phase(exp, study, method, seed, store)
                summary = _summary_line([r for r in result
                                         if r["episode"] == exp.budget.adapt_episodes])
            store.save(name, result)
            bar.update(1)
            tqdm.write(f"[{time.perf_counter() - t0:6.1f}s] {name}: {summary}", file=sys.stderr)
    if writer is not None:
        writer.close()
    from agents.report import write_report

    paths = write_report(exp, store, versions=_versions(), run_wall_s=time.perf_counter() - t_run)
    print(f"wrote {', '.join(str(p.relative_to(out)) for p in paths)} in {out}")
    return 0


def _summary_line(records: list[dict[str, Any]]) -> str:
    if not records:
        return "no episodes"
    parts = []
    for k, unit in (("throughput_mbps", "Mb/s"), ("sinr_violation_rate", "SINR viol"),
                    ("latency_violation_rate", "lat viol"), ("jain_fairness", "Jain")):
        v = float(np.mean([r[k] for r in records if k in r]))
        parts.append(f"{v:.1f} {unit}" if unit == "Mb/s" else f"{unit} {v:.3f}")
    return ", ".join(parts)


def _tensorboard(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ConfigError(f"--tensorboard needs the tensorboard package: {exc}") from None
    return SummaryWriter(str(out / "tensorboard"))


def _versions() -> dict[str, str]:
    import gymnasium
    import torch

    from agents import __version__

    return {"iabmeta": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__,
            "gymnasium": gymnasium.__version__, "platform": platform.platform()}


def run_train(args: argparse.Namespace) -> int:
    from agents.base import torch_threads

    torch_threads(2)
    args.agents = args.agent
    exp = build_experiment(args)
    study = exp.studies[0]
    out = Path(args.out)
    store = PhaseStore(out, exp.fingerprint() + "-train", fresh=False)
    from tqdm import tqdm

    with tqdm(total=1, desc=f"train {args.agent}", disable=None, file=sys.stderr) as bar, \
            distributed(args, exp):
        result = train_phase(exp, study, args.agent, exp.seeds[0], store, bar)
        bar.update(1)
    store.save(f"train:{study.name}:{args.agent}:{exp.seeds[0]}", result)
    print(f"trained {args.agent}: {result['env_steps']} env-steps in {result['wall_s']:.1f} s; "
          f"checkpoint {out / result['checkpoint']}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    exp = build_experiment(args)
    study = exp.studies[0]
    if args.episodes is not None:
        exp.budget = exp.budget.replace(adapt_episodes=int(args.episodes))
    if args.agent in HEURISTICS or args.agent == "upper_bound":
        records = evaluate_policy(env_factory(exp.backend, study.config), study, exp,
                                  args.agent)
    elif args.agent in AGENT_NAMES:
        if args.checkpoint is None or not Path(args.checkpoint).is_file():
            raise ConfigError(f"--checkpoint={args.checkpoint}: a checkpoint file written by "
                              f"`iabmeta train --agent {args.agent}` is required")
        agent = load_agent(args.agent, Path(args.checkpoint))
        records = []
        with distributed(args, exp), rollout_backend(exp, study) as rollouts:
            for t_index, (task, inst_seed) in enumerate(test_tasks(study, exp)):
                curve = agent.adapt(rollouts, task, exp.budget.adapt_episodes, inst_seed,
                                    num_envs=exp.budget.adapt_envs)
                records += [{"task": t_index, "episode": e, **p} for e, p in enumerate(curve)]
    else:
        raise ConfigError(f"--agent={args.agent!r}: expected one of {list(AGENT_NAMES)}, "
                          f"{sorted(HEURISTICS)} or 'upper_bound'")
    print(json.dumps({"agent": args.agent, "records": records,
                      "summary": {k: float(np.mean([r[k] for r in records]))
                                  for k in HEADLINE_METRICS}}, indent=1, default=float))
    return 0


def run_command(args: argparse.Namespace) -> int:
    if args.command == "reproduce":
        return run_reproduce(args)
    if args.command == "train":
        return run_train(args)
    if args.command == "evaluate":
        return run_evaluate(args)
    raise ConfigError(f"unknown command {args.command!r}")
