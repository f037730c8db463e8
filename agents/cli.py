"""The ``iabmeta`` command line: reproduce the study, train, evaluate, benchmark, build ns-3.

Only this module parses arguments; it turns them into a :class:`agents.study.StudySpec` with
:func:`agents.study.build_spec` and runs the study's phases."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.budget import PROFILES
from agents.heuristics import HEURISTICS
from agents.registry import AGENT_NAMES
from agents.study.spec import HIDDEN_ORACLE, UPPER_BOUND, StudySpec
from bridge.config import ConfigError
from bridge.contract import BACKENDS, DEFAULT_BACKEND
from bridge.metrics import HEADLINE_METRICS


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help="simulator: the batched numpy fallback (default) or real ns-3")
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="TOML or YAML experiment file ([scenario], [tasks], [experiment], "
                        "[agents.<name>])")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one value, e.g. --set radio.n_channels=4, "
                        "--set experiment.num_envs=32, --set agents.ppo.learning_rate=3e-4 "
                        "(repeatable)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--out", type=Path, default=Path("runs/default"), metavar="DIR",
                   help="output directory (default runs/default)")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="budget profile: quick (minutes), default, paper (5 seeds); "
                        "default: the experiment file's, else 'default'")
    p.add_argument("--quick", action="store_true", help="the same as --profile quick")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="run the agents' rollouts on Ray workers: 'local' (a private "
                        "cluster on this machine), 'auto' (the running cluster), "
                        "'host:port' or 'ray://host:port' (needs the ray extra)")
    p.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="Ray rollout workers (default: one per CPU of the cluster)")
    p.add_argument("--envs-per-job", type=int, default=None, metavar="N",
                   help="environments per rollout job, the unit a worker receives "
                        "(default 16; a split is the same on every backend)")


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.targets import TARGETS

    parser = argparse.ArgumentParser(
        prog="iabmeta",
        description="Meta-reinforcement learning for dynamic spectrum allocation in mmWave "
                    "IAB networks: meta-train agents across deployments, adapt to held-out "
                    "ones, compare with heuristics and an upper bound.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    baselines = [*sorted(HEURISTICS), UPPER_BOUND, HIDDEN_ORACLE]

    rep = sub.add_parser("reproduce", help="the whole study: meta-train every agent, adapt on "
                         "held-out tasks, evaluate baselines, write the report")
    _add_common(rep)
    rep.add_argument("--seeds", type=int, default=None,
                     help="independent training seeds 0..N-1 (default: the profile's)")
    rep.add_argument("--agents", default=None,
                     help=f"comma-separated subset of {','.join(AGENT_NAMES)}")
    rep.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    rep.add_argument("--no-resume", action="store_true",
                     help="start from scratch even if --out holds an interrupted run")
    rep.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="phases run at once, each in its own process (default 1; the "
                          "results do not depend on it; local rollouts only)")

    tr = sub.add_parser("train", help="meta-train (or train) one agent and save a checkpoint")
    _add_common(tr)
    tr.add_argument("--agent", required=True, choices=AGENT_NAMES)
    tr.add_argument("--study", default="main", help="main (default) or small")

    ev = sub.add_parser("evaluate", help="adapt a checkpoint (or run a baseline) on the "
                        "held-out tasks; a reproduce checkpoint gives the numbers it recorded")
    _add_common(ev)
    ev.add_argument("--agent", required=True, choices=[*AGENT_NAMES, *baselines],
                    help=f"{'|'.join(AGENT_NAMES)} (needs --checkpoint) or a baseline: "
                         f"{'|'.join(baselines)}")
    ev.add_argument("--checkpoint", type=Path, default=None)
    ev.add_argument("--study", default="main",
                    help="the study the checkpoint was trained in: main (default) or small")
    ev.add_argument("--episodes", type=int, default=None, help="adaptation episodes")

    be = sub.add_parser("bench", help="performance benchmarks (print what they measure)")
    be.add_argument("target", choices=sorted(TARGETS))
    be.add_argument("--json", action="store_true", help="print JSON only")
    be.add_argument("--profile", action="store_true",
                    help="fallback only: where the step's time goes (microseconds per "
                         "env-step of every phase at 1, 64 and 1,024 environments)")

    bn = sub.add_parser("build-ns3", help="compile the ns-3 scenarios (incremental)")
    bn.add_argument("--jobs", type=int, default=2)
    return parser


def _spec(args: argparse.Namespace, agents: Sequence[str] | None = None) -> StudySpec:
    from agents.study import build_spec

    if args.quick and args.profile not in (None, "quick"):
        raise ConfigError(f"--quick and --profile={args.profile} contradict each other")
    return build_spec(args.config, args.overrides, backend=args.backend,
                      profile="quick" if args.quick else args.profile, seed=args.seed,
                      agents=agents, n_seeds=getattr(args, "seeds", None),
                      envs_per_job=args.envs_per_job)


def _ray_line(args: argparse.Namespace, spec: StudySpec, runtime: object) -> None:
    if args.ray_address:
        print(f"rollouts on Ray ({args.ray_address}): {runtime.describe()}, "  # type: ignore[attr-defined]
              f"{spec.budget.envs_per_job} envs per job")


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from agents.study import rollout_runtime, run_study
    from agents.study.console import ConsoleProgress

    agents = [a.strip() for a in args.agents.split(",") if a.strip()] if args.agents else None
    spec = _spec(args, agents)
    progress = ConsoleProgress("reproduce", tensorboard=args.tensorboard)
    try:
        with rollout_runtime(args.ray_address, args.ray_workers) as runtime:
            _ray_line(args, spec, runtime)
            run_study(spec, args.out, runtime=runtime, fresh=args.no_resume, progress=progress,
                      jobs=args.jobs)
    finally:
        progress.close()
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from agents.agent import use_torch_threads
    from agents.study import PhaseId, PhaseStore, rollout_runtime, train_agent

    spec = _spec(args, [args.agent])
    use_torch_threads(spec.torch_threads)
    study = spec.study(args.study)
    store = PhaseStore(args.out, spec.fingerprint() + "-train", fresh=False)
    phase = PhaseId("train", study.name, args.agent, spec.seeds[0])
    with rollout_runtime(args.ray_address, args.ray_workers) as runtime:
        _ray_line(args, spec, runtime)
        result = train_agent(spec, study, phase, store, runtime)
    store.save(phase, result)
    print(f"trained {args.agent}: {result['env_steps']} env-steps in {result['wall_s']:.1f} s; "
          f"checkpoint {args.out / result['checkpoint']}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from agents.agent import use_torch_threads
    from agents.study import adapt_checkpoint, evaluate_baseline, rollout_runtime

    is_agent = args.agent in AGENT_NAMES
    spec = _spec(args, [args.agent] if is_agent else None)
    if args.episodes is not None:
        spec = spec.replace(budget=spec.budget.replace(adapt_episodes=args.episodes))
    use_torch_threads(spec.torch_threads)
    study = spec.study(args.study)
    if not is_agent:
        records = evaluate_baseline(spec, study, args.agent)
    else:
        if args.checkpoint is None or not Path(args.checkpoint).is_file():
            raise ConfigError(f"--checkpoint={args.checkpoint}: a checkpoint file written by "
                              f"`iabmeta train` or `iabmeta reproduce` is required")
        with rollout_runtime(args.ray_address, args.ray_workers) as runtime, \
                runtime.backend(spec.backend, study.config, spec.budget.envs_per_job) as rollouts:
            records = adapt_checkpoint(spec, study, args.agent, args.checkpoint, rollouts)
    print(json.dumps({"agent": args.agent, "records": records,
                      "summary": {k: float(np.mean([r[k] for r in records]))
                                  for k in HEADLINE_METRICS}}, indent=1, default=float))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.targets import TARGETS

    if args.profile:
        if args.target != "fallback":
            raise ConfigError(f"--profile with target {args.target!r}: only the 'fallback' "
                              "benchmark has a per-phase profile")
        from benchmarks.fallback_profile import format_profile, profile_fallback

        result = profile_fallback()
        print(json.dumps(result, default=float) if args.json else format_profile(result))
        return 0
    print(json.dumps(TARGETS[args.target](), indent=None if args.json else 2, default=float))
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from bridge.ns3.build import build_scenarios

    path = build_scenarios(jobs=args.jobs)
    print(f"ns-3 scenarios built in {path}")
    return 0


COMMANDS = {"reproduce": _cmd_reproduce, "train": _cmd_train, "evaluate": _cmd_evaluate,
            "bench": _cmd_bench, "build-ns3": _cmd_build}


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # `kill` (SIGTERM) unwinds like Ctrl-C: finished phases are kept, worker processes
        # and simulators are stopped, nothing is left running
        previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"iabmeta: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iabmeta: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
