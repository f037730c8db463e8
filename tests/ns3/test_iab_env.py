"""The IAB scenario on ns-3 against the fallback: episodes over sockets, deterministic and
statistical agreement."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.ns3_env import largest_backlog
from bridge.config import ScenarioConfig
from bridge.contract import STEP_BS_COUNTERS, make_env, make_vector_env
from bridge.fallback.env import IABEnv, IABVectorEnv
from bridge.ns3.build import scenario_binary
from bridge.ns3.iab_env import Ns3IABEnv, Ns3IABVectorEnv


def wait_gone(pid: int, timeout_s: float = 5.0) -> bool:
    """Wait until no process (not even a zombie) has this pid."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False

pytestmark = pytest.mark.ns3

SMALL = {"topology__n_iab": 2, "topology__n_ue": 8, "dynamics__episode_frames": 30}


@pytest.fixture(scope="module")
def iab_binary(scenario_build_dir: Path) -> Path:
    return scenario_binary("iab-scenario", scenario_build_dir)


def random_masked_actions(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One allowed value per action entry, uniformly among the allowed ones."""
    counts = mask.sum(axis=-1)
    pick = rng.integers(0, counts)
    return (mask.cumsum(axis=-1) > pick[..., None]).argmax(axis=-1)


def test_full_episode_over_sockets(iab_binary: Path) -> None:
    config = ScenarioConfig().replace(**SMALL)
    env = Ns3IABEnv(config, binary=iab_binary)
    reference = IABEnv(config)
    assert env.observation_space == reference.observation_space
    assert env.action_space == reference.action_space
    try:
        obs, info = env.reset(seed=11)
        startup = env.startup
        assert startup["beam_convention"] in ("plain", "conjugate")
        # the chosen convention must give about N_bs * N_ue = 30.1 dB on the self-test LOS link
        assert abs(startup["self_test_gain_db"] - 30.1) < 4.0
        pid = env._vec.pids[0]
        rng = np.random.default_rng(0)
        frames = 0
        while True:
            assert env.observation_space.contains(obs)
            mask = info["action_mask"]
            assert mask.dtype == bool and mask.shape == (env.layout.action_size,
                                                         env.layout.n_choices)
            assert mask[:, 0].all()
            obs, reward, terminated, truncated, info = env.step(
                random_masked_actions(mask, rng))
            frames += 1
            assert isinstance(reward, float) and np.isfinite(reward)
            assert not terminated
            if truncated:
                break
        assert frames == config.dynamics.episode_frames
        metrics = info["episode_metrics"]
        reference.reset(seed=11)
        _, _, _, _, ref_info = reference.step(np.zeros(reference.layout.action_size, int))
        assert set(info) >= {"action_mask", "sinr_db", "allocation", "delivered_bytes"}
        assert 0.0 <= metrics["sinr_violation_rate"] <= 1.0
        assert metrics["invalid_actions"] == 0.0
        acc = env._vec._sessions[0].last_info["episode"]["accumulators"]
        # bytes are conserved: arrived = delivered + dropped + still queued
        assert acc["arrived"] == sum(acc["delivered_ue"]) + acc["dropped"] + \
            acc["bytes_in_queues"]
        # a new episode of the same deployment continues in the same process
        env.reset()
        assert env._vec.pids[0] == pid
        # a new seed is a new deployment: a new process, the old one is reaped
        env.reset(seed=12)
        assert env._vec.pids[0] != pid
        assert wait_gone(pid)
    finally:
        env.close()
    assert all(p is None for p in env._vec.pids)


def test_deterministic_mode_matches_fallback(iab_binary: Path) -> None:
    config = ScenarioConfig().replace(radio__deterministic=True, dynamics__episode_frames=40)
    envs = {"fallback": make_env("fallback", config),
            "ns3": make_env("ns3", config, binary=iab_binary)}
    runs: dict[str, dict[str, list]] = {}
    try:
        for name, env in envs.items():
            obs, info = env.reset(seed=5)
            rng = np.random.default_rng(1)
            run: dict[str, list] = {"obs": [obs], "mask": [info["action_mask"]], "sinr": [],
                                    "bytes": [], "reward": [], "bs": [],
                                    "reward_bs": []}
            done = False
            while not done:
                obs, reward, term, trunc, info = env.step(
                    random_masked_actions(info["action_mask"], rng))
                done = term or trunc
                run["obs"].append(obs)
                run["mask"].append(info["action_mask"])
                run["sinr"].append(info["sinr_db"])
                run["bytes"].append(info["delivered_bytes"])
                run["reward"].append(reward)
                run["bs"].append([info[k] for k in STEP_BS_COUNTERS])
                run["reward_bs"].append(info["reward_bs"])
                # who did what adds up to the frame's totals on both backends
                for part, total in (("delivered_bytes_bs", "delivered_bytes"),
                                    ("sinr_violations_bs", "sinr_violations")):
                    assert info[part].sum() == info[total], (name, part)
            run["metrics"] = [info["episode_metrics"]]
            runs[name] = run
    finally:
        envs["ns3"].close()
    f, n = runs["fallback"], runs["ns3"]
    np.testing.assert_array_equal(np.array(f["mask"]), np.array(n["mask"]))
    sinr_f, sinr_n = np.array(f["sinr"]), np.array(n["sinr"])
    active = np.isfinite(sinr_f)
    np.testing.assert_array_equal(active, np.isfinite(sinr_n))
    assert active.sum() > 100
    assert np.max(np.abs(sinr_f[active] - sinr_n[active])) < 0.5
    bytes_f, bytes_n = np.sum(f["bytes"]), np.sum(n["bytes"])
    assert bytes_f > 0 and abs(bytes_n - bytes_f) <= 0.02 * bytes_f
    # per base station (credit assignment): the same choices scheduled, and the bytes each
    # base station delivered over the episode within 2% (IAB nodes deliver too)
    bs_f, bs_n = np.array(f["bs"]), np.array(n["bs"])  # (frames, 3, B)
    np.testing.assert_array_equal(bs_f[:, 2], bs_n[:, 2])
    per_bs_f, per_bs_n = bs_f[:, 0].sum(0), bs_n[:, 0].sum(0)
    assert (per_bs_f[1:] > 0).any()
    np.testing.assert_allclose(per_bs_n, per_bs_f, rtol=0.02, atol=0.002 * bytes_f)
    # the reward's split over base stations: the same on both backends, summing to the reward
    rbs_f, rbs_n = np.array(f["reward_bs"]), np.array(n["reward_bs"])
    np.testing.assert_allclose(rbs_n.sum(-1), n["reward"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rbs_n, rbs_f, rtol=0.05, atol=2e-3)
    np.testing.assert_allclose(np.array(n["obs"]), np.array(f["obs"]), atol=1e-3)
    np.testing.assert_allclose(n["reward"], f["reward"], rtol=1e-4, atol=1e-4)
    for key, value in f["metrics"][0].items():
        assert n["metrics"][0][key] == pytest.approx(value, rel=0.02, abs=1e-3), key


def test_statistical_mode_agrees_with_fallback(iab_binary: Path) -> None:
    """Mean throughput and violation rates of the largest-backlog heuristic, 4 deployments.

    Traffic is identical (same counter-based draws), so offered load must match exactly. The
    radio differs by design: ns-3 uses the 3GPP TR 38.901 cluster channel, the fallback an
    analytic beam model whose NLOS paths lose ``radio.nlos_beam_loss_db`` (15 dB) of array
    gain, calibrated so that the two agree: measured on this config, throughput 183 vs 181
    Mb/s, SINR violations 0.278 vs 0.274, latency violations 0.725 vs 0.727. The tolerances
    (throughput within 20%, violation rates within 0.08) leave room for the channel models'
    different per-deployment draws over 4 x 50 frames; without the calibration (0 dB) the
    SINR violation rate is off by 0.135 and the test fails, and a broken beam convention
    (about -50 dB) or broken queues fail it by far.
    """
    config = ScenarioConfig().replace(**{**SMALL, "dynamics__episode_frames": 50})
    assert_statistical_agreement(config, iab_binary,
                                 ("sinr_violation_rate", "latency_violation_rate"))


def test_statistical_mode_agrees_with_fallback_with_fast_ues(iab_binary: Path) -> None:
    """The same agreement at 15 m/s (the top of the training speed range) over 80 frames, where
    ns-3 regenerates every UE's channels on the way and the twin re-draws fading every frame;
    both backends steer beams at geometry updates only (docs/system-model.md). Measured:
    throughput 182.5763 (fallback) vs 164.3114 Mb/s (ns-3), SINR violations 0.2933 vs 0.3554,
    latency violations 0.7224 vs 0.7501 (the build before, which re-steered the serving beams
    every frame: 164.6766, 0.3537, 0.7496)."""
    config = ScenarioConfig().replace(**{**SMALL, "dynamics__episode_frames": 80,
                                         "dynamics__ue_speed_mps": 15.0})
    assert_statistical_agreement(config, iab_binary,
                                 ("sinr_violation_rate", "latency_violation_rate"))


def assert_statistical_agreement(config: ScenarioConfig, iab_binary: Path,
                                 rates: tuple[str, ...]) -> dict[str, dict[str, np.ndarray]]:
    """One 50-frame episode of the largest-backlog heuristic on 4 deployments, on both
    backends: offered load identical, throughput within 20%, each of ``rates`` within 0.08.
    Returns the episode metrics per backend."""
    results = {}
    for backend in ("fallback", "ns3"):
        kwargs = {"binary": iab_binary} if backend == "ns3" else {}
        env = make_vector_env(backend, 4, config, **kwargs)
        try:
            obs, info = env.reset(seed=100)
            done = np.zeros(4, dtype=bool)
            while not done.all():
                obs, _, _, trunc, info = env.step(
                    largest_backlog(obs, info["action_mask"], env.layout))
                done |= trunc
            results[backend] = info["episode_metrics"]
        finally:
            env.close()
    f, n = results["fallback"], results["ns3"]
    np.testing.assert_array_equal(f["offered_mbps"], n["offered_mbps"])
    ratio = n["throughput_mbps"].mean() / f["throughput_mbps"].mean()
    assert 0.8 < ratio < 1.25, (f["throughput_mbps"], n["throughput_mbps"])
    for key in rates:
        assert abs(n[key].mean() - f[key].mean()) < 0.08, (key, f[key], n[key])
    return results


def test_backend_factory(iab_binary: Path) -> None:
    config = ScenarioConfig().replace(**SMALL)
    assert isinstance(make_env("fallback", config), IABEnv)
    assert isinstance(make_vector_env("fallback", 2, config), IABVectorEnv)
    with pytest.raises(ValueError, match="backend"):
        make_env("ns4", config)
    with pytest.raises(ValueError, match="only apply"):
        make_env("fallback", config, endpoint="ipc")
    # one value switches the backend; the spaces stay the fallback's
    ns3_env = make_vector_env("ns3", 2, config, binary=iab_binary)
    try:
        assert isinstance(ns3_env, Ns3IABVectorEnv)
        fallback = make_vector_env("fallback", 2, config)
        assert ns3_env.single_observation_space == fallback.single_observation_space
        assert ns3_env.single_action_space == fallback.single_action_space
    finally:
        ns3_env.close()


def test_many_short_episodes_in_one_process(iab_binary: Path) -> None:
    """Regression: episode k+1 used to start at the instant of episode k's last geometry
    update, so a LOS state that flipped back at the reset met a stale 3GPP channel matrix and
    ns-3 aborted (NS_ASSERT numCluster <= m_alpha.size()) in episode 15 of this deployment."""
    from bridge.tasks import TaskDistribution

    config = ScenarioConfig().replace(
        topology__n_ue=4, topology__max_ues=6, topology__n_iab=1, topology__max_iab=1,
        radio__n_channels=2, dynamics__episode_frames=10)
    task = TaskDistribution.for_config(config).sample("train", 4, 3)[1]
    env = Ns3IABVectorEnv(1, config, binary=iab_binary)
    try:
        obs, info = env.reset(seed=[12 * 1_000_003], options={"tasks": [task],
                                                            "instance_seeds": [12]})
        pid = env.pids[0]
        idle = np.zeros((1, env.layout.action_size), dtype=np.int64)
        for _ in range(20):
            for _ in range(10):
                obs, _, _, truncated, info = env.step(idle)
            assert truncated[0]
            env.step(idle)  # the autoreset step: the next episode, same process
        assert env.pids[0] == pid
    finally:
        env.close()


def test_episode_k_is_the_same_whoever_asks(iab_binary: Path) -> None:
    """Episode k of a reset seed is the (k+1)-th episode of one process: asking for it on a
    fresh environment (which fast-forwards) gives what walking there gives, and re-pinning
    a deployment after other episodes gives its episode 0 again, not a continuation."""
    config = ScenarioConfig().replace(
        topology__n_ue=4, topology__max_ues=6, topology__n_iab=1, topology__max_iab=1,
        radio__n_channels=2, dynamics__episode_frames=10)
    rng = np.random.default_rng(0)

    def episode(env: Ns3IABVectorEnv, obs: np.ndarray, info: dict) -> list[np.ndarray]:
        out = [obs]
        for _ in range(10):
            obs, _, _, _, info = env.step(random_masked_actions(info["action_mask"], rng))
            out.append(obs)
        return out

    walked = Ns3IABVectorEnv(2, config, binary=iab_binary)
    direct = Ns3IABVectorEnv(2, config, binary=iab_binary)
    try:
        obs, info = walked.reset(seed=[5, 6])
        first = episode(walked, obs, info)
        pid = walked.pids[0]
        for _ in range(2):  # episodes 1 and 2, other actions
            obs, info = walked.reset()
            episode(walked, obs, info)
        obs, info = walked.reset()  # episode 3, continued in the same process
        assert walked.pids[0] == pid
        rng = np.random.default_rng(1)
        expected = episode(walked, obs, info)

        obs, info = direct.reset(seed=[5, 6], options={"episode": 3})
        rng = np.random.default_rng(1)
        got = episode(direct, obs, info)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected))

        obs, info = walked.reset(seed=[5, 6])  # episode 0 again: a fresh lineage
        assert walked.pids[0] != pid
        rng = np.random.default_rng(0)
        assert all(np.array_equal(a, b) for a, b in zip(episode(walked, obs, info), first))
    finally:
        walked.close()
        direct.close()


SETUP_PARENT = """
import sys, tempfile, time
from bridge.config import ScenarioConfig
from bridge.instance import generate_instance
from bridge.ns3.connection import OpenGymConnection
path = tempfile.mkstemp(suffix=".json")[1]
generate_instance(ScenarioConfig(), 3).to_json(path)
conn = OpenGymConnection.launch(sys.argv[1], [f"--instance={path}", "--simSeed=1"])
print(conn.process.pid, flush=True)  # killed now: the scenario is still setting up
time.sleep(60)
"""


def test_scenario_outlives_no_parent_killed_during_its_set_up(iab_binary: Path) -> None:
    """Regression: the scenario took its parent's pid only after the seconds of 3GPP set-up,
    so a trainer (or Ray worker) killed during the set-up left it waiting out the 600 s
    timeout as an orphan. It now checks the parent it had when main() started."""
    from tests.ns3.conftest import assert_child_dies_with_parent

    assert_child_dies_with_parent(SETUP_PARENT, [str(iab_binary)], "SIGKILL", "iab-scenario",
                                  timeout_s=30.0)
