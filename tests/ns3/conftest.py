"""Fixtures of the ns-3 bridge tests: the echo scenario built once per session, process checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from bridge.ns3 import Ns3GymEnv
from bridge.ns3.build import scenario_binary


@pytest.fixture(scope="session")
def echo_binary(scenario_build_dir: Path) -> Path:
    """Path of the compiled echo-scenario."""
    return scenario_binary("echo-scenario", scenario_build_dir)


def process_gone(pid: int) -> bool:
    """True if no process (not even a zombie) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def is_zombie(pid: int) -> bool:
    """True if ``pid`` is an unreaped (zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pid: int, timeout_s: float = 5.0) -> bool:
    """Wait until ``pid`` no longer exists; False if it is still there (or a zombie)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.02)
    return False


def scenario_pid(env: Ns3GymEnv) -> int:
    """Process id of an environment's running scenario."""
    assert env.connection is not None and env.connection.process is not None
    return env.connection.process.pid


def run_echo_episode(env: Ns3GymEnv, steps: int = 20) -> int:
    """Reset an echo scenario started with ``--steps={steps} --obsSize=6 --actSize=3`` and
    play its episode, checking every echoed observation; returns the scenario's pid."""
    assert env.observation_space == spaces.Box(-1e9, 1e9, (6,), np.float32)
    assert env.action_space == spaces.Box(-100.0, 100.0, (3,), np.float32)
    obs, info = env.reset(seed=7)
    np.testing.assert_array_equal(obs, np.zeros(6, np.float32))
    assert info["step"] == 0 and info["seed"] == 7
    rng = np.random.default_rng(0)
    for step in range(1, steps + 1):
        action = rng.uniform(-100, 100, 3).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        # the scenario echoes obs[i] = action[i % 3] + step, reward = sum(action)
        expected = (np.tile(action, 2).astype(np.float64) + step).astype(np.float32)
        np.testing.assert_array_equal(obs, expected)
        assert reward == pytest.approx(float(action.astype(np.float64).sum()), rel=1e-5)
        assert info["step"] == step
        assert terminated == (step == steps) and not truncated
    return scenario_pid(env)


def assert_child_dies_with_parent(script: str, args: list[str], how: str, what: str,
                                  timeout_s: float = 5.0) -> None:
    """Run ``script`` in a Python parent that prints its child's pid, end the parent by exit
    or by the signal named ``how``, and check the child is gone (not even a zombie) within
    ``timeout_s``."""
    root = Path(__file__).resolve().parents[2]
    # the parent is an application with default signal dispositions, whatever the test
    # runner inherited (under `nohup` or as a shell's background job SIGHUP / SIGINT arrive
    # ignored, and an ignored signal, rightly, does not end the parent)
    defaults = ("import signal\n"
                "for _s in (signal.SIGHUP, signal.SIGTERM):\n"
                "    signal.signal(_s, signal.SIG_DFL)\n"
                "signal.signal(signal.SIGINT, signal.default_int_handler)\n")
    parent = subprocess.Popen(
        [sys.executable, "-c", defaults + script, *args, how],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
        text=True,
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        if how != "exit":
            parent.send_signal(getattr(signal, how))
        parent.wait(10)
        assert wait_gone(pid, timeout_s), f"{what} {pid} survived its parent ({how})"
    finally:
        parent.kill()
        parent.wait()
