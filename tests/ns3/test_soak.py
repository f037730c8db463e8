"""Soak: a few ns-3 IAB environments, thousands of steps, many autoresets, random faults.

Faults: a scenario killed (SIGKILL) and a reply delayed past the step timeout (the scenario
SIGSTOPped). Every fault must be reported (SimulatorDied / SimulatorTimeout), a reset must
recover, and at the end no scenario process, run-directory file or socket may be left over.
The counts are printed (``-s``).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from bridge.config import ScenarioConfig
from bridge.ns3.build import scenario_binary
from bridge.ns3.connection import SimulatorDied, SimulatorTimeout
from bridge.ns3.iab_env import Ns3IABVectorEnv
from bridge.ns3.rundir import run_dir
from tests.ns3.conftest import wait_gone

pytestmark = [pytest.mark.ns3, pytest.mark.slow]

STEPS = int(os.environ.get("IABMETA_SOAK_STEPS", "3000"))
FAULT_PROBABILITY = 0.004
STEP_TIMEOUT_S = 1.5


def open_sockets() -> int:
    """Sockets this process holds open."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def test_soak_faults_are_reported_and_recovered(scenario_build_dir: Path) -> None:
    binary = scenario_binary("iab-scenario", scenario_build_dir)
    config = ScenarioConfig().replace(topology__n_iab=1, topology__n_ue=4,
                                      dynamics__episode_frames=8, radio__deterministic=True)
    rng = random.Random(13)
    actions_rng = np.random.default_rng(13)
    sockets_before = open_sockets()
    # the run directory is this process's: earlier tests (ipc sockets) may have used it
    files_before = set(run_dir().rglob("*"))
    env = Ns3IABVectorEnv(3, config, binary=binary, step_timeout_s=STEP_TIMEOUT_S,
                          connect_timeout_s=30.0)
    counts = {"steps": 0, "env_steps": 0, "autoresets": 0, "killed": 0, "delayed": 0,
              "reported_died": 0, "reported_timeout": 0, "resets_after_fault": 0,
              "absorbed_by_autoreset": 0}
    pids_seen: set[int] = set()
    seed = 100
    start = time.monotonic()
    try:
        obs, info = env.reset(seed=seed)
        mask = info["action_mask"]
        ending = np.zeros(env.num_envs, dtype=bool)
        while counts["steps"] < STEPS:
            pids = [p for p in env.pids if p is not None]
            pids_seen.update(pids)
            fault = None
            if rng.random() < FAULT_PROBABILITY * env.num_envs:
                fault = rng.choice(["killed", "delayed"])
                index = rng.choice([i for i, p in enumerate(env.pids) if p is not None])
                os.kill(env.pids[index], signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
                counts[fault] += 1
                if fault == "killed" and ending[index]:
                    # its episode had ended: the autoreset step either finds the process gone
                    # and starts a fresh one for the next episode (nothing lost, no error), or
                    # sends it the continuation first and reports its death
                    fault = "killed_at_episode_end"
            # a random allowed value per action entry
            chosen = actions_rng.integers(0, mask.sum(-1))
            pick = (mask.cumsum(-1) > chosen[..., None]).argmax(-1)
            try:
                obs, reward, terminated, truncated, info = env.step(pick)
            except SimulatorDied:
                assert fault in ("killed", "killed_at_episode_end"), \
                    "a scenario died without a fault"
                counts["reported_died"] += 1
            except SimulatorTimeout:
                assert fault == "delayed", "a step timed out without a fault"
                counts["reported_timeout"] += 1
            else:
                if fault == "killed_at_episode_end":
                    counts["absorbed_by_autoreset"] += 1
                    fault = None
                assert fault is None, f"fault {fault} was not reported"
                counts["steps"] += 1
                counts["env_steps"] += env.num_envs
                counts["autoresets"] += int(np.sum(terminated | truncated))
                ending = terminated | truncated
                mask = info["action_mask"]
                continue
            # the failed step stopped every process (the stopped one too): reset recovers
            for pid in pids:
                assert wait_gone(pid, 5.0), f"scenario {pid} left over after a fault"
            seed += 1
            obs, info = env.reset(seed=seed)
            mask = info["action_mask"]
            ending = np.zeros(env.num_envs, dtype=bool)
            counts["resets_after_fault"] += 1
    finally:
        env.close()
    elapsed = time.monotonic() - start
    leftovers = [p for p in pids_seen if not wait_gone(p, 5.0)]
    files = sorted(str(p) for p in set(run_dir().rglob("*")) - files_before)
    deadline = time.monotonic() + 5.0  # ZeroMQ closes its sockets in its I/O thread
    while open_sockets() > sockets_before and time.monotonic() < deadline:
        time.sleep(0.05)
    sockets_after = open_sockets()
    print(f"soak: {counts}, {len(pids_seen)} scenario processes, {elapsed:.1f} s, "
          f"left over: {len(leftovers)} processes, {len(files)} files, "
          f"{sockets_after - sockets_before} sockets")
    faults = counts["killed"] + counts["delayed"]
    assert counts["reported_died"] == counts["killed"] - counts["absorbed_by_autoreset"]
    assert counts["reported_timeout"] == counts["delayed"]
    assert counts["resets_after_fault"] == faults - counts["absorbed_by_autoreset"]
    assert counts["autoresets"] >= STEPS // 10
    assert leftovers == [] and files == []
    assert sockets_after <= sockets_before
