"""The study spec: what one study runs, built from an experiment file and ``--set`` overrides.

An experiment file has four sections, each validated (a bad value raises ConfigError naming
the field, the value and what is allowed; unknown fields are refused):

* ``[scenario]``: the system model (:class:`bridge.config.ScenarioConfig`);
* ``[tasks]``: the training and held-out task ranges (:class:`bridge.tasks.TaskDistribution`);
* ``[experiment]``: ``profile``, the budget fields (:class:`agents.budget.Budget`),
  ``agents``, ``heuristics``, ``studies`` and ``torch_threads``;
* ``[agents.<name>]``: hyper-parameters of one agent (:mod:`agents.hyperparams`).

``--set section.field=value`` reaches every section (``scenario.`` may be left out). Nothing
here parses a command line: the CLI does, and passes plain values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.agent import TORCH_THREADS
from agents.budget import PROFILES, Budget, profile_budget
from agents.heuristics import HEURISTICS
from agents.hyperparams import AgentConfig
from agents.oracle import HIDDEN_ORACLE, UPPER_BOUND
from agents.registry import AGENT_NAMES, agent_config
from agents.study.seeds import SeedPlan
from bridge.config import ConfigError, ScenarioConfig, load_config, parse_override, read_table
from bridge.contract import BACKENDS, supports_frame_replay, supports_hidden_conditions
from bridge.tasks import Task, TaskDistribution

SECTIONS = ("scenario", "tasks", "experiment", "agents")
# the second study: 2 base stations x 3 channels, where the exhaustive upper bound runs
SMALL_STUDY = {"topology__n_iab": 1, "topology__max_iab": 1, "topology__max_ues": 4,
               "topology__n_ue": 4, "radio__n_channels": 3}
STUDY_NAMES = ("main", "small")
EXPERIMENT_FIELDS = ("profile", "agents", "heuristics", "studies", "torch_threads")


@dataclass(frozen=True)
class Study:
    """One scenario scale: its config, task distribution and whether the upper bound and
    the per-task oracle (backend capabilities) run."""

    name: str
    config: ScenarioConfig
    tasks: TaskDistribution
    upper_bound: bool
    hidden_oracle: bool = False

    @property
    def baselines(self) -> tuple[str, ...]:
        return ((UPPER_BOUND,) if self.upper_bound else ()) + \
            ((HIDDEN_ORACLE,) if self.hidden_oracle else ())


@dataclass(frozen=True)
class StudySpec:
    """Everything that determines a study's results (and ``torch_threads``, which does not)."""

    backend: str
    seed: int
    agents: tuple[str, ...]
    budget: Budget
    studies: tuple[Study, ...]
    heuristics: tuple[str, ...] = tuple(sorted(HEURISTICS))
    hyperparams: dict[str, AgentConfig] = field(default_factory=dict)
    torch_threads: int = TORCH_THREADS

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.budget.seeds

    @property
    def seed_plan(self) -> SeedPlan:
        return SeedPlan(self.seed)

    def held_out(self, study: Study) -> list[tuple[Task, int]]:
        """The held-out (task, instance seed) pairs of ``study``."""
        return self.seed_plan.held_out(study.tasks, self.budget.n_test_tasks)

    def study(self, name: str) -> Study:
        for s in self.studies:
            if s.name == name:
                return s
        raise ConfigError(f"study {name!r} is not in this experiment; it has "
                          f"{[s.name for s in self.studies]}")

    def agent_hyperparams(self, name: str) -> AgentConfig:
        return self.hyperparams.get(name) or agent_config(name)

    def replace(self, **changes: Any) -> StudySpec:
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        """Hash of everything that determines the results (resuming requires a match)."""
        blob = json.dumps({
            "backend": self.backend, "seed": self.seed, "agents": self.agents,
            "budget": self.budget.to_dict(),
            "studies": [(s.name, s.config.to_dict(), s.tasks.ranges) for s in self.studies],
            "heuristics": self.heuristics,
            "hyperparams": {n: dataclasses.asdict(self.agent_hyperparams(n))
                            for n in self.agents},
        }, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_spec(config: str | Path | None = None, overrides: Sequence[str] = (), *,
               backend: str = "fallback", profile: str | None = None, seed: int = 0,
               agents: Sequence[str] | None = None, n_seeds: int | None = None,
               envs_per_job: int | None = None) -> StudySpec:
    """The study of experiment file ``config`` (TOML or YAML) with ``overrides``
    (``section.field=value``); the keyword arguments are the command line's options and win
    over the file. ``profile`` (default: the file's ``experiment.profile``, else
    ``"default"``) gives the budget the file's fields then change."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend={backend!r}: expected one of {list(BACKENDS)}")
    raw: dict[str, Any] = read_table(config) if config else {}
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown and any(k in raw for k in SECTIONS):
        raise ConfigError(f"unknown section [{unknown[0]}] in {config}; expected "
                          + ", ".join(f"[{s}]" for s in SECTIONS))
    exp_raw = dict(raw.get("experiment", {}))
    agent_tables = {k: dict(v) if isinstance(v, dict) else v
                    for k, v in raw.get("agents", {}).items()}
    scenario_overrides = _split_overrides(overrides, exp_raw, agent_tables)

    budget = _budget(exp_raw, profile, backend, n_seeds, envs_per_job)
    names = tuple(agents) if agents else tuple(exp_raw.pop("agents", AGENT_NAMES))
    _check_names("experiment.agents", names, AGENT_NAMES)
    heuristics = tuple(exp_raw.pop("heuristics", sorted(HEURISTICS)))
    _check_names("experiment.heuristics", heuristics, tuple(sorted(HEURISTICS)))
    studies_wanted = tuple(exp_raw.pop("studies", STUDY_NAMES))
    _check_names("experiment.studies", studies_wanted, STUDY_NAMES)
    threads = exp_raw.pop("torch_threads", TORCH_THREADS)
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 256:
        raise ConfigError(f"experiment.torch_threads={threads!r}: expected an integer in "
                          "[1, 256]")
    if exp_raw:
        raise ConfigError(f"unknown field experiment.{sorted(exp_raw)[0]}; known: "
                          f"{list(EXPERIMENT_FIELDS)} and the budget fields "
                          f"{sorted(Budget.field_names())}")
    unknown_agents = sorted(set(agent_tables) - set(AGENT_NAMES))
    if unknown_agents:
        raise ConfigError(f"unknown section [agents.{unknown_agents[0]}]; agents are "
                          f"{list(AGENT_NAMES)}")
    hyperparams = {n: agent_config(n, t) for n, t in agent_tables.items()}

    base = load_config(config, list(scenario_overrides))
    base = base.replace(dynamics__episode_frames=budget.episode_frames)
    studies = []
    for name in studies_wanted:
        cfg = base if name == "main" else base.replace(**SMALL_STUDY)
        tasks = TaskDistribution.for_config(cfg, raw.get("tasks"))
        # exhaustive search replays a frame (a backend capability) and fits small networks
        fits = (cfg.topology.n_iab + 1) <= 2 and cfg.radio.n_channels <= 3
        # the per-task oracle reads the hidden conditions (a backend capability)
        studies.append(Study(name, cfg, tasks,
                             upper_bound=fits and supports_frame_replay(backend),
                             hidden_oracle=supports_hidden_conditions(backend)))
    return StudySpec(backend=backend, seed=int(seed), agents=names, budget=budget,
                     studies=tuple(studies), heuristics=heuristics, hyperparams=hyperparams,
                     torch_threads=threads)


def _split_overrides(overrides: Sequence[str], exp_raw: dict[str, Any],
                     agent_tables: dict[str, Any]) -> list[str]:
    """Apply ``experiment.*`` and ``agents.<name>.*`` overrides to the file's tables; the
    scenario's are returned for :func:`bridge.config.load_config`."""
    scenario = []
    for text in overrides:
        key, value = parse_override(text)
        section, _, rest = key.partition(".")
        if section == "experiment" and rest:
            exp_raw[rest] = value
        elif section == "agents":
            agent, _, name = rest.partition(".")
            if not agent or not name or "." in name:
                raise ConfigError(f"override {text!r} must look like "
                                  "agents.<agent>.<field>=value")
            table = agent_tables.setdefault(agent, {})
            if not isinstance(table, dict):
                raise ConfigError(f"agents.{agent} must be a table of fields")
            table[name] = value
        elif section == "tasks":
            raise ConfigError(f"override {text!r}: task ranges are set in the experiment "
                              "file's [tasks] section")
        else:
            scenario.append(text)
    return scenario


def _budget(exp_raw: dict[str, Any], profile: str | None, backend: str,
            n_seeds: int | None, envs_per_job: int | None) -> Budget:
    """The profile's budget with the experiment table's budget fields (popped from it) and
    the command line's ``--seeds`` and ``--envs-per-job`` applied, validated."""
    in_file = exp_raw.pop("profile", "default")
    if in_file not in PROFILES:
        raise ConfigError(f"experiment.profile={in_file!r}: expected one of {sorted(PROFILES)}")
    chosen = profile or in_file
    changes = {k: exp_raw.pop(k) for k in sorted(Budget.field_names()) if k in exp_raw}
    if n_seeds is not None:
        if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
            raise ConfigError(f"--seeds={n_seeds!r}: expected an integer >= 1")
        changes["seeds"] = tuple(range(n_seeds))
    if envs_per_job is not None:
        changes["envs_per_job"] = envs_per_job
    return profile_budget(str(chosen), backend).replace(**changes)


def _check_names(where: str, names: Sequence[str], allowed: Sequence[str]) -> None:
    for n in names:
        if n not in allowed:
            raise ConfigError(f"{where} has {n!r}; expected names from {list(allowed)}")
