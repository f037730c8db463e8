"""The ``iabmeta`` command line: reproduce the study, train, evaluate, benchmark, build ns-3."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bridge.config import ConfigError
from bridge.contract import BACKENDS, DEFAULT_BACKEND

BENCHMARKS: dict[str, tuple[str, str]] = {
    "fallback": ("bridge.fallback.bench", "bench_fallback"),
    "bridge": ("bridge.ns3.bench", "bench_bridge"),
    "ns3": ("bridge.ns3.iab_bench", "bench_ns3"),
    "ppo": ("agents.bench", "bench_ppo"),
    "rollouts": ("agents.rollouts.bench", "bench_rollouts"),
}


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help="simulator: the batched numpy fallback (default) or real ns-3")
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="TOML or YAML experiment file ([scenario], [tasks], [experiment])")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set radio.n_channels=4 (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--out", type=Path, default=Path("runs/default"), metavar="DIR",
                   help="output directory (default runs/default)")
    p.add_argument("--quick", action="store_true",
                   help="a small but real run (minutes) instead of the full study")
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
    parser = argparse.ArgumentParser(
        prog="iabmeta",
        description="Meta-reinforcement learning for dynamic spectrum allocation in mmWave "
                    "IAB networks: meta-train agents across deployments, adapt to held-out "
                    "ones, compare with heuristics and an upper bound.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rep = sub.add_parser("reproduce", help="the whole study: meta-train every agent, adapt on "
                         "held-out tasks, evaluate baselines, write the report")
    _add_common(rep)
    rep.add_argument("--seeds", type=int, default=None,
                     help="independent training seeds (default: 3, or 2 with --quick)")
    rep.add_argument("--agents", default=None,
                     help="comma-separated subset of ppo,maml,rl2,attention")
    rep.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    rep.add_argument("--no-resume", action="store_true",
                     help="start from scratch even if --out holds an interrupted run")

    tr = sub.add_parser("train", help="meta-train (or train) one agent and save a checkpoint")
    _add_common(tr)
    tr.add_argument("--agent", required=True, choices=("ppo", "maml", "rl2", "attention"))

    ev = sub.add_parser("evaluate", help="evaluate a checkpoint or a baseline on held-out tasks")
    _add_common(ev)
    ev.add_argument("--agent", required=True,
                    help="ppo|maml|rl2|attention (needs --checkpoint) or a heuristic: "
                         "random|round_robin|greedy_max_sinr|proportional_fair|upper_bound")
    ev.add_argument("--checkpoint", type=Path, default=None)
    ev.add_argument("--episodes", type=int, default=None, help="adaptation episodes")

    be = sub.add_parser("bench", help="performance benchmarks (print what they measure)")
    be.add_argument("target", choices=sorted(BENCHMARKS))
    be.add_argument("--json", action="store_true", help="print JSON only")

    bn = sub.add_parser("build-ns3", help="compile the ns-3 scenarios (incremental)")
    bn.add_argument("--jobs", type=int, default=2)
    return parser


def _load_callable(module: str, name: str) -> Callable[..., Any]:
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"iabmeta: {module}.{name} is not available here: {exc}") from None


def _cmd_bench(args: argparse.Namespace) -> int:
    module, name = BENCHMARKS[args.target]
    result = _load_callable(module, name)()
    if args.json:
        print(json.dumps(result, indent=2, default=float))
    else:
        print(json.dumps(result, indent=2, default=float))
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    build = _load_callable("bridge.ns3.build", "build_scenarios")
    path = build(jobs=args.jobs)
    print(f"ns-3 scenarios built in {path}")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from agents import experiment

    return experiment.run_command(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "build-ns3":
            return _cmd_build(args)
        return _cmd_experiment(args)
    except ConfigError as exc:
        print(f"iabmeta: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iabmeta: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
