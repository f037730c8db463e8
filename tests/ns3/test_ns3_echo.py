"""The bridge end to end against the real compiled echo scenario (real ns-3, sockets, processes)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from bridge.ns3 import Ns3GymEnv, Ns3VectorEnv, SimulatorDied, SimulatorTimeout
from bridge.ns3.connection import OpenGymConnection
from tests.ns3.conftest import (
    assert_child_dies_with_parent,
    is_zombie,
    run_echo_episode,
    scenario_pid,
    wait_gone,
)

pytestmark = pytest.mark.ns3


def test_handshake_and_full_episode(echo_binary: Path) -> None:
    env = Ns3GymEnv(echo_binary, ["--steps=20", "--obsSize=6", "--actSize=3"])
    try:
        pid = run_echo_episode(env)
        with pytest.raises(RuntimeError, match="call reset"):
            env.step(np.zeros(3, np.float32))
        # after the stop request the scenario exits by itself with status 0
        assert env.connection is not None and env.connection.process is not None
        assert env.connection.process.wait(5.0) == 0
    finally:
        env.close()
    assert wait_gone(pid)


@pytest.mark.parametrize("obs_type", ["int32", "uint32", "float64"])
def test_box_dtypes_roundtrip(echo_binary: Path, obs_type: str) -> None:
    with Ns3GymEnv(echo_binary, ["--steps=3", f"--obsType={obs_type}"]) as env:
        assert env.observation_space.dtype == np.dtype(obs_type)
        env.reset(seed=1)
        action = np.array([1, 2, 3, 4], dtype=obs_type)
        obs, reward, *_ = env.step(action)
        np.testing.assert_array_equal(obs, action + 1)
        assert obs.dtype == np.dtype(obs_type) and reward == 10.0


def test_nested_tuple_dict_spaces(echo_binary: Path) -> None:
    with Ns3GymEnv(echo_binary, ["--mode=nested", "--steps=4"]) as env:
        assert isinstance(env.observation_space, spaces.Dict)
        assert isinstance(env.action_space, spaces.Tuple)
        obs, _ = env.reset(seed=2)
        assert env.observation_space.contains(obs)
        action = (
            np.int64(3),
            {"gain": np.array([1.5, -2.0, 0.25]), "level": np.array([7], np.uint32)},
        )
        obs, reward, terminated, truncated, info = env.step(action)
        np.testing.assert_array_equal(obs["echo"], [2.5, -1.0, 1.25])
        assert obs["pair"][0] == 3
        np.testing.assert_array_equal(obs["pair"][1], [7, 1])
        assert obs["step"] == 1 and reward == pytest.approx(3 + 7 - 0.25)


def test_simulation_end_is_truncation(echo_binary: Path) -> None:
    with Ns3GymEnv(echo_binary, ["--steps=3", "--endBy=simend"]) as env:
        env.reset(seed=1)
        flags = [env.step(env.action_space.sample())[2:4] for _ in range(3)]
        assert flags == [(False, False), (False, False), (False, True)]


def test_seeds_reach_the_scenario(echo_binary: Path) -> None:
    with Ns3GymEnv(echo_binary, ["--steps=2"]) as env:
        _, first = env.reset(seed=11)
        _, again = env.reset(seed=11)
        _, other = env.reset(seed=12)
        assert first["seed"] == again["seed"] == 11 and other["seed"] == 12
        assert first["rng"] == again["rng"] != other["rng"]
        _, unseeded = env.reset()  # drawn from np_random, different process
        assert unseeded["seed"] not in (11, 12)


def test_env_checker_passes(echo_binary: Path) -> None:
    with Ns3GymEnv(echo_binary, ["--steps=5"]) as env:
        check_env(env, skip_render_check=True)


def test_bad_actions_are_refused_before_anything_is_sent(echo_binary: Path) -> None:
    with Ns3GymEnv(echo_binary, ["--steps=5"]) as env:
        env.reset(seed=1)
        bad = [
            (np.array([0, np.nan, 0, 0], np.float32), "not finite"),
            (np.zeros(5, np.float32), r"shape \(5,\), expected \(4,\)"),
            (np.array([0, 0, 101, 0], np.float32), r"action\[2\]=101.0 out of range"),
        ]
        for action, message in bad:
            with pytest.raises(ValueError, match=message):
                env.step(action)
        # nothing was sent: the scenario still waits for step 1 and echoes this action
        obs, *_ = env.step(np.full(4, 2.0, np.float32))
        np.testing.assert_array_equal(obs, np.full(4, 3.0, np.float32))


def test_killed_simulator_is_reported_and_reaped(echo_binary: Path) -> None:
    env = Ns3GymEnv(echo_binary, ["--steps=1000", "--hangAtStep=3"])
    try:
        env.reset(seed=1)
        env.step(env.action_space.sample())
        pid = scenario_pid(env)
        os.kill(pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(SimulatorDied, match="killed by signal SIGKILL"):
            env.step(env.action_space.sample())
            env.step(env.action_space.sample())
        assert time.monotonic() - start < 3.0
        assert wait_gone(pid) and not is_zombie(pid)
    finally:
        env.close()


def test_crash_exit_code_and_stderr_tail(echo_binary: Path) -> None:
    with Ns3GymEnv(echo_binary, ["--steps=10", "--crashAtStep=2"]) as env:
        env.reset(seed=1)
        env.step(env.action_space.sample())
        pid = scenario_pid(env)
        with pytest.raises(SimulatorDied) as info:
            env.step(env.action_space.sample())
        assert info.value.returncode == 3
        assert "exit code 3" in str(info.value)
        assert "crashing at step 2 as requested" in info.value.stderr_tail
    assert wait_gone(pid)


def test_never_connecting_simulator_times_out(echo_binary: Path) -> None:
    start = time.monotonic()
    with pytest.raises(SimulatorTimeout, match=r"no SimInitMsg .* within 1 s .*still running"):
        Ns3GymEnv(echo_binary, ["--neverConnect=true"], connect_timeout_s=1.0)
    assert time.monotonic() - start < 4.0


def test_hanging_simulator_times_out_and_is_killed(echo_binary: Path) -> None:
    env = Ns3GymEnv(echo_binary, ["--steps=10", "--hangAtStep=2"], step_timeout_s=1.0)
    env.reset(seed=1)
    env.step(env.action_space.sample())
    pid = scenario_pid(env)
    with pytest.raises(SimulatorTimeout, match=r"no EnvStateMsg .* within 1 s \(step_timeout_s\)"):
        env.step(env.action_space.sample())
    assert wait_gone(pid), "the hung scenario must be killed when the step fails"
    env.close()


def test_close_leaves_no_process(echo_binary: Path) -> None:
    env = Ns3GymEnv(echo_binary, ["--steps=100"])
    env.reset(seed=1)
    env.step(env.action_space.sample())
    pid = scenario_pid(env)
    env.close()
    env.close()  # idempotent
    assert wait_gone(pid, 3.0) and not is_zombie(pid)
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def test_ipc_endpoint_episode(echo_binary: Path) -> None:
    with Ns3GymEnv(echo_binary, ["--steps=3"], endpoint="ipc") as env:
        assert env.connection is not None and env.connection.endpoint.startswith("ipc://")
        env.reset(seed=1)
        obs, *_ = env.step(np.ones(4, np.float32))
        np.testing.assert_array_equal(obs, np.full(4, 2.0, np.float32))


def test_connection_level_episode_answers_game_over_with_stop(echo_binary: Path) -> None:
    conn = OpenGymConnection.launch(echo_binary, ["--steps=2"])
    try:
        conn.handshake()
        state = conn.receive_state()
        while not state.game_over:
            conn.send_action(np.zeros(4, np.float32))
            state = conn.receive_state()
        assert state.reason == "GameOver" and conn.expecting is None
        assert conn.process is not None and conn.process.wait(5.0) == 0
    finally:
        conn.close()


def test_sixteen_envs_in_one_vector_env(echo_binary: Path) -> None:
    venv = Ns3VectorEnv(echo_binary, 16, ["--steps=3"])
    try:
        first_pids = venv.pids
        assert len(set(first_pids)) == 16
        ports = {c.port for c in venv._conns if c is not None}
        assert len(ports) == 16
        obs, infos = venv.reset(seed=100)
        assert obs.shape == (16, 4)
        np.testing.assert_array_equal(infos["seed"], np.arange(100, 116))
        actions = np.tile(np.arange(16, dtype=np.float32)[:, None], (1, 4))
        for step in range(1, 4):
            obs, rewards, terminated, truncated, infos = venv.step(actions)
            np.testing.assert_array_equal(obs, actions + step)
            np.testing.assert_allclose(rewards, actions.sum(axis=1))
            assert terminated.all() == (step == 3) and not truncated.any()
        # next-step autoreset: fresh processes, first observations, zero reward
        obs, rewards, terminated, truncated, infos = venv.step(actions)
        np.testing.assert_array_equal(obs, np.zeros((16, 4), np.float32))
        assert not rewards.any() and not terminated.any() and not truncated.any()
        assert set(venv.pids).isdisjoint(first_pids)
        for pid in first_pids:
            assert wait_gone(pid)
        with pytest.raises(ValueError, match="env 0: action"):
            bad = actions.copy()
            bad[0, 0] = np.nan
            venv.step(bad)
        last_pids = venv.pids
    finally:
        venv.close()
    for pid in last_pids:
        assert wait_gone(pid) and not is_zombie(pid)


PARENT_SCRIPT = """
import sys, time
from bridge.ns3 import Ns3GymEnv
env = Ns3GymEnv(sys.argv[1], ["--steps=1000"])
env.reset(seed=1)
print(env.connection.process.pid, flush=True)
if sys.argv[2] == "exit":
    sys.exit(0)  # no close(): the finalizers must stop the scenario
time.sleep(60)
"""


@pytest.mark.parametrize("how", ["exit", "SIGTERM", "SIGINT"])
def test_parent_exit_or_signal_stops_the_scenario(echo_binary: Path, how: str) -> None:
    assert_child_dies_with_parent(PARENT_SCRIPT, [str(echo_binary)], how, "scenario")
