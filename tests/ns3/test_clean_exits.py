"""Failures and exits of the IAB environment on ns-3: clear errors, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bridge.config import ScenarioConfig
from bridge.ns3.build import scenario_binary
from bridge.ns3.connection import SimulatorDied, SimulatorError
from bridge.ns3.iab_env import Ns3IABEnv
from bridge.ns3.rundir import RUN_DIR_PREFIX, sweep_stale_run_dirs
from tests.ns3.conftest import wait_gone

pytestmark = pytest.mark.ns3

TINY = {"topology__n_iab": 1, "topology__n_ue": 4, "dynamics__episode_frames": 10,
        "radio__deterministic": True}


def test_step_after_simulator_died_asks_for_reset(scenario_build_dir: Path) -> None:
    binary = scenario_binary("iab-scenario", scenario_build_dir)
    env = Ns3IABEnv(ScenarioConfig().replace(**TINY), binary=binary)
    try:
        env.reset(seed=3)
        idle = np.zeros(env.layout.action_size, dtype=np.int64)
        env.step(idle)
        pid = env._vec.pids[0]
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(SimulatorDied):
            env.step(idle)
        with pytest.raises(SimulatorError, match=r"simulator stopped with SimulatorDied.*"
                                                 r"call reset\(\) before step\(\)"):
            env.step(idle)
        env.reset(seed=4)  # recovers with a new process
        env.step(idle)
    finally:
        env.close()


DRIVER = """
import sys, time
from bridge.config import ScenarioConfig
from bridge.ns3.iab_env import Ns3IABEnv
from bridge.ns3.rundir import run_dir
env = Ns3IABEnv(ScenarioConfig().replace(**{tiny!r}), binary=sys.argv[1])
env.reset(seed=1)
print(env._vec.pids[0], run_dir(), flush=True)
time.sleep(60)
"""


def start_driver(binary: Path, tmp: Path) -> tuple[subprocess.Popen[str], int, Path]:
    root = Path(__file__).resolve().parents[2]
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER.format(tiny=TINY), str(binary)],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(root), "TMPDIR": str(tmp)})
    assert driver.stdout is not None
    pid_text, run = driver.stdout.readline().split()
    run_path = Path(run)
    assert run_path.parent == tmp and any(run_path.glob("iab-instance-*.json"))
    return driver, int(pid_text), run_path


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_killed_driver_leaves_no_instance_file(scenario_build_dir: Path, tmp_path: Path,
                                               how: str) -> None:
    binary = scenario_binary("iab-scenario", scenario_build_dir)
    driver, scenario, run = start_driver(binary, tmp_path)
    try:
        driver.send_signal(getattr(signal, how))
        driver.wait(10)
        assert wait_gone(scenario, 5.0), f"scenario {scenario} survived its driver ({how})"
        if how == "SIGKILL":
            # nothing can run in a SIGKILLed process: the next run removes its directory
            assert run.exists()
            deadline = time.monotonic() + 5
            while sweep_stale_run_dirs(tmp_path) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)  # until the kernel has reaped the driver
        leftovers = sorted(p.name for p in tmp_path.rglob("*"))
        assert leftovers == [], f"{how} left {leftovers}"
    finally:
        driver.kill()
        driver.wait()


def test_a_new_run_directory_sweeps_dead_ones_only(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{RUN_DIR_PREFIX}{dead.pid}-abc"
    stale.mkdir()
    (stale / "iab-instance-x.json").write_text("{}")
    alive = tmp_path / f"{RUN_DIR_PREFIX}{os.getpid()}-def"
    alive.mkdir()
    unrelated = tmp_path / f"{RUN_DIR_PREFIX}notapid"
    unrelated.mkdir()
    assert sweep_stale_run_dirs(tmp_path) == 1
    assert not stale.exists() and alive.exists() and unrelated.exists()
