"""Build the C++ ns-3 scenarios with CMake against the ns3 wheel; locate the wheel and binaries.

Run ``python -m bridge.ns3.build [--build-dir DIR] [--jobs N]``. Re-running only rebuilds what
changed (CMake/make dependency tracking); concurrent builds of one directory are serialised
with a lock file.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = [
    "BuildError",
    "DEFAULT_BUILD_DIR",
    "SCENARIO_SOURCE_DIR",
    "build_scenarios",
    "check_build_requirements",
    "find_ns3_wheel",
    "scenario_binary",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCENARIO_SOURCE_DIR = PROJECT_ROOT / "ns3_scenarios"
DEFAULT_BUILD_DIR = SCENARIO_SOURCE_DIR / "build"
_INCLUDE_DIRS = (Path("/usr/include"), Path("/usr/local/include"))

# (what is looked for, how, Debian package that provides it)
_TOOLS = (
    ("cmake", "cmake"),
    ("g++", "g++"),
    ("protoc", "protobuf-compiler"),
    ("pkg-config", "pkg-config"),
    ("make", "make"),
)
_HEADERS = (
    ("zmq.h", "libzmq3-dev"),
    ("zmq.hpp", "cppzmq-dev"),
    ("google/protobuf/message.h", "libprotobuf-dev"),
    ("google/protobuf/any.proto", "libprotobuf-dev"),
)


class BuildError(RuntimeError):
    """The scenarios cannot be built (missing package, configure or compile error)."""


def find_ns3_wheel() -> Path:
    """Directory of the installed ``ns3`` wheel (it holds ``include/ns3`` and ``lib64``)."""
    spec = importlib.util.find_spec("ns3")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if spec is not None and spec.origin and not locations:
        locations = [str(Path(spec.origin).parent)]
    for location in locations:
        root = Path(location)
        if (root / "include" / "ns3" / "core-module.h").is_file() and (root / "lib64").is_dir():
            return root
    raise BuildError(
        f"ns-3 wheel not found by {sys.executable} (searched {locations or 'no ns3 package'}): "
        "expected site-packages/ns3 with include/ns3/core-module.h and lib64/; "
        "install it with: pip install ns3==3.44.post0"
    )


def check_build_requirements() -> None:
    """Raise BuildError naming the Debian packages to install if a tool or header is missing."""
    missing: dict[str, list[str]] = {}
    for tool, package in _TOOLS:
        if shutil.which(tool) is None:
            missing.setdefault(package, []).append(f"program {tool}")
    for header, package in _HEADERS:
        if not any((d / header).is_file() for d in _INCLUDE_DIRS):
            missing.setdefault(package, []).append(f"header {header}")
    if missing:
        details = "; ".join(f"{pkg} ({', '.join(what)})" for pkg, what in missing.items())
        raise BuildError(
            f"cannot build the ns-3 scenarios, missing: {details}. "
            f"Install with: apt-get install {' '.join(sorted(missing))}"
        )


def _run(cmd: list[str], what: str, verbose: bool) -> None:
    if verbose:
        print("+", " ".join(cmd), flush=True)
        result = subprocess.run(cmd, check=False)
        output = ""
    else:
        result = subprocess.run(
            cmd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        output = result.stdout
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-40:])
        raise BuildError(
            f"{what} failed with exit code {result.returncode}: {' '.join(cmd)}\n{tail}"
        )


def build_scenarios(
    build_dir: str | os.PathLike[str] | None = None,
    jobs: int = 2,
    *,
    build_type: str = "Release",
    verbose: bool = False,
) -> Path:
    """Configure (first time, when the wheel moved or a CMakeLists.txt is newer than the cache)
    and build all scenarios; return build_dir.

    Incremental: CMake re-runs itself when a CMakeLists.txt or the .proto changes and make
    recompiles only what changed.
    """
    check_build_requirements()
    wheel = find_ns3_wheel()
    build = Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR
    build.mkdir(parents=True, exist_ok=True)
    with open(build / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache = build / "CMakeCache.txt"
        configured = cache.is_file() and f"NS3_ROOT:PATH={wheel}\n" in cache.read_text()
        # a scenario directory added since the last configure (the top CMakeLists includes
        # subdirectories only if they exist) is only seen by a new configure
        lists = SCENARIO_SOURCE_DIR.rglob("CMakeLists.txt")
        stale = configured and any(p.stat().st_mtime > cache.stat().st_mtime for p in lists
                                   if build not in p.parents)
        if not configured or stale:
            _run(
                [
                    "cmake",
                    "-S",
                    str(SCENARIO_SOURCE_DIR),
                    "-B",
                    str(build),
                    f"-DNS3_ROOT={wheel}",
                    f"-DCMAKE_BUILD_TYPE={build_type}",
                ],
                "CMake configure",
                verbose,
            )
        _run(["cmake", "--build", str(build), "-j", str(max(1, jobs))], "CMake build", verbose)
    return build


def scenario_binary(name: str, build_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of the built scenario executable ``name`` (e.g. ``echo-scenario``)."""
    build = Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR
    path = build / "bin" / name
    if path.is_file() and os.access(path, os.X_OK):
        return path
    available = (
        sorted(p.name for p in (build / "bin").glob("*")) if (build / "bin").is_dir() else []
    )
    raise FileNotFoundError(
        f"scenario binary {name!r} not found in {build / 'bin'} (available: {available}); "
        "build it with: python -m bridge.ns3.build"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: build and list the scenario binaries."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR)
    parser.add_argument("--jobs", "-j", type=int, default=2)
    parser.add_argument("--build-type", default="Release")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    try:
        build = build_scenarios(
            args.build_dir, args.jobs, build_type=args.build_type, verbose=args.verbose
        )
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for binary in sorted((build / "bin").glob("*")):
        print(binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
