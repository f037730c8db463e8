"""The environment contract, checked on both backends with the same tests: spaces, info keys,
seeding, next-step autoreset, pinned deployments, bad actions, frame replay, errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest

from bridge.config import ScenarioConfig
from bridge.contract import (
    BACKENDS,
    RESET_INFO_KEYS,
    REWARD_BS,
    STEP_BS_COUNTERS,
    STEP_COUNTERS,
    STEP_INFO_KEYS,
    CapabilityUnavailable,
    EnvironmentFailure,
    IABSingleEnv,
    IABVectorEnvBase,
    action_space,
    make_env,
    make_vector_env,
    observation_space,
    supports_frame_replay,
)
from bridge.fallback.sharded import ShardWorkerError
from bridge.instance import generate_instance
from bridge.metrics import HEADLINE_METRICS
from bridge.ns3.connection import SimulatorDied, SimulatorError, SimulatorTimeout
from bridge.ns3.transport import PeerClosed
from bridge.protocol.errors import ProtocolError
from bridge.tasks import Task

MakeVec = Callable[..., IABVectorEnvBase]


def idle(env: IABVectorEnvBase) -> np.ndarray:
    return np.zeros((env.num_envs, env.layout.action_size), dtype=np.int64)


def masked_actions(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One allowed value per entry, uniformly among the allowed ones."""
    pick = rng.integers(0, mask.sum(axis=-1))
    return (mask.cumsum(axis=-1) > pick[..., None]).argmax(axis=-1)


# ----------------------------------------------------------------------------- spaces
def test_spaces_are_the_contracts(make_vec: MakeVec, contract_config: ScenarioConfig) -> None:
    env = make_vec(3, contract_config)
    assert env.single_observation_space == observation_space(contract_config)
    assert env.single_action_space == action_space(contract_config)
    assert env.observation_space == observation_space(contract_config, 3)
    assert env.action_space == action_space(contract_config, 3)
    # the batch bounds are the single ones (finite on every backend)
    assert np.all(np.isfinite(env.observation_space.low))
    assert env.observation_space.high.max() == env.single_observation_space.high.max()
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    rng = np.random.default_rng(0)
    info = {"action_mask": env.reset(seed=1)[1]["action_mask"]}
    for _ in range(contract_config.dynamics.episode_frames + 1):
        obs, _, _, _, info = env.step(masked_actions(info["action_mask"], rng))
        assert env.observation_space.contains(obs)


@pytest.mark.ns3
def test_spaces_equal_on_both_backends(scenario_build_dir, contract_config: ScenarioConfig
                                       ) -> None:
    from bridge.ns3.build import scenario_binary

    binary = scenario_binary("iab-scenario", scenario_build_dir)
    fallback = make_vector_env("fallback", 2, contract_config)
    ns3 = make_vector_env("ns3", 2, contract_config, binary=binary)
    single = make_env("ns3", contract_config, binary=binary)
    try:
        for name in ("single_observation_space", "single_action_space", "observation_space",
                     "action_space"):
            assert getattr(ns3, name) == getattr(fallback, name), name
        assert single.observation_space == fallback.single_observation_space
        assert single.action_space == fallback.single_action_space
    finally:
        ns3.close()
        single.close()


# ----------------------------------------------------------------------------- infos
def test_info_schema(make_vec: MakeVec, contract_config: ScenarioConfig) -> None:
    env = make_vec(2, contract_config)
    n, lay = env.num_envs, env.layout
    _, info = env.reset(seed=3)
    assert set(RESET_INFO_KEYS) <= set(info)
    assert info["action_mask"].shape == (n, lay.action_size, lay.n_choices)
    assert info["action_mask"].dtype == bool
    frames = contract_config.dynamics.episode_frames
    for t in range(frames):
        _, reward, term, trunc, info = env.step(idle(env))
        assert set(STEP_INFO_KEYS) <= set(info)
        assert info["sinr_db"].shape == (n, lay.n_bs, lay.n_channels)
        assert info["allocation"].shape == (n, lay.n_bs, lay.n_channels)
        for key in STEP_COUNTERS:
            assert info[key].shape == (n,) and np.issubdtype(info[key].dtype, np.integer), key
        for key in STEP_BS_COUNTERS:
            assert info[key].shape == (n, lay.n_bs) and info[key].dtype == np.int64, key
        assert (info["delivered_bytes_bs"].sum(1) == info["delivered_bytes"]).all()
        # the reward's split over base stations adds up to it, nothing on padding ones
        assert info[REWARD_BS].shape == (n, lay.n_bs)
        np.testing.assert_allclose(info[REWARD_BS].sum(1), reward, rtol=1e-9, atol=1e-9)
        assert reward.shape == (n,) and reward.dtype == np.float64
        assert not term.any()
        assert trunc.all() == (t == frames - 1)
        assert ("episode_metrics" in info) == (t == frames - 1)
    assert info["_episode_metrics"].tolist() == [True, True]
    assert set(HEADLINE_METRICS) <= set(info["episode_metrics"])
    assert "episode_return" in info["episode_metrics"]
    for values in info["episode_metrics"].values():
        assert np.shape(values) == (n,)


# ----------------------------------------------------------------------------- seeding
def test_same_seed_same_episode(make_vec: MakeVec, contract_config: ScenarioConfig) -> None:
    a, b, c = (make_vec(2, contract_config) for _ in range(3))
    obs_a, _ = a.reset(seed=21)
    obs_b, _ = b.reset(seed=21)
    obs_c, _ = c.reset(seed=22)
    np.testing.assert_array_equal(obs_a, obs_b)
    # reset(seed=s) seeds environment i with s + i: c's first is a's second
    np.testing.assert_array_equal(obs_c[0], obs_a[1])
    assert a.instances[1].to_dict() == c.instances[0].to_dict()
    assert a.instances[0].to_dict() != a.instances[1].to_dict()
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    mask_a = mask_b = a.reset(seed=21)[1]["action_mask"]
    b.reset(seed=21)
    for _ in range(contract_config.dynamics.episode_frames):
        obs_a, rew_a, *_, info_a = a.step(masked_actions(mask_a, rng_a))
        obs_b, rew_b, *_, info_b = b.step(masked_actions(mask_b, rng_b))
        mask_a, mask_b = info_a["action_mask"], info_b["action_mask"]
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(rew_a, rew_b)


@pytest.mark.ns3
def test_same_seed_same_deployment_and_traffic_on_both_backends(
        scenario_build_dir, contract_config: ScenarioConfig) -> None:
    from bridge.ns3.build import scenario_binary

    fallback = make_vector_env("fallback", 2, contract_config)
    ns3 = make_vector_env("ns3", 2, contract_config,
                          binary=scenario_binary("iab-scenario", scenario_build_dir))
    try:
        fallback.reset(seed=8)
        ns3.reset(seed=8)
        assert [i.to_dict() for i in fallback.instances] == [i.to_dict() for i in ns3.instances]
        for _ in range(contract_config.dynamics.episode_frames):
            *_, info_f = fallback.step(idle(fallback))
            *_, info_n = ns3.step(idle(ns3))
        # idle actions: nothing is delivered, the offered traffic is the counter RNG's
        offered_f = info_f["episode_metrics"]["offered_mbps"]
        offered_n = info_n["episode_metrics"]["offered_mbps"]
        np.testing.assert_allclose(offered_f, offered_n, rtol=1e-9)
    finally:
        ns3.close()


# ----------------------------------------------------------------------------- autoreset
def test_next_step_autoreset(make_vec: MakeVec, contract_config: ScenarioConfig) -> None:
    env = make_vec(2, contract_config)
    frames = contract_config.dynamics.episode_frames
    env.reset(seed=4)
    rng = np.random.default_rng(1)
    info = env.reset(seed=4)[1]
    for _ in range(frames):
        obs, reward, _, trunc, info = env.step(masked_actions(info["action_mask"], rng))
    assert trunc.all()
    # the autoreset step: actions ignored, reward 0, an empty frame, no episode end
    obs, reward, term, trunc, info = env.step(masked_actions(info["action_mask"], rng))
    assert not term.any() and not trunc.any()
    assert reward.tolist() == [0.0, 0.0]
    for key in STEP_COUNTERS:
        assert info[key].tolist() == [0, 0], key
    for key in (*STEP_BS_COUNTERS, REWARD_BS):
        assert not info[key].any(), key
    assert (info["allocation"] == -1).all()
    assert "episode_metrics" not in info
    # ... and its observation is episode 1's first, as a fresh environment reaches it
    fresh = make_vec(2, contract_config)
    obs_fresh, info_fresh = fresh.reset(seed=4, options={"episode": 1})
    np.testing.assert_array_equal(obs, obs_fresh)
    np.testing.assert_array_equal(info["action_mask"], info_fresh["action_mask"])
    # the episode after the autoreset is a whole one again
    for t in range(frames):
        _, reward, _, trunc, info = env.step(idle(env))
        assert trunc.all() == (t == frames - 1)


def test_single_env_hides_the_autoreset(make_single: Callable[..., IABSingleEnv],
                                        contract_config: ScenarioConfig) -> None:
    env = make_single(contract_config)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(env.layout.action_size, dtype=np.int64))
    obs, info = env.reset(seed=2)
    assert env.observation_space.contains(obs)
    assert env.action_masks().shape == (env.layout.action_size * env.layout.n_choices,)
    for t in range(contract_config.dynamics.episode_frames):
        obs, reward, term, trunc, info = env.step(np.zeros(env.layout.action_size, np.int64))
        assert isinstance(reward, float) and trunc == (
            t == contract_config.dynamics.episode_frames - 1)
    assert set(HEADLINE_METRICS) <= set(info["episode_metrics"])
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(np.zeros(env.layout.action_size, dtype=np.int64))


# ----------------------------------------------------------------------------- deployments
def test_pinned_deployments(make_vec: MakeVec, contract_config: ScenarioConfig) -> None:
    task = dataclasses.replace(Task.from_config(contract_config), n_ue=2, ue_rate_mbps=30.0)
    env = make_vec(2, contract_config)
    env.set_tasks([task, None], [101, 102])
    obs, _ = env.reset(seed=0)
    expected = [generate_instance(contract_config, 101, task),
                generate_instance(contract_config, 102, None)]
    assert [i.to_dict() for i in env.instances] == [i.to_dict() for i in expected]
    # the same pin through reset options, and episode k of it directly
    other = make_vec(2, contract_config)
    obs_other, _ = other.reset(seed=0, options={"tasks": [task, None],
                                                "instance_seeds": [101, 102]})
    np.testing.assert_array_equal(obs, obs_other)
    for _ in range(contract_config.dynamics.episode_frames + 1):
        obs, *_ = env.step(idle(env))  # through the autoreset into episode 1
    direct = make_vec(2, contract_config)
    direct.set_tasks([task, None], [101, 102])
    obs_direct, _ = direct.reset(seed=0, options={"episode": [1, 1]})
    np.testing.assert_array_equal(obs, obs_direct)
    assert [i.to_dict() for i in direct.instances] == [i.to_dict() for i in expected]
    with pytest.raises(ValueError, match="set_tasks needs 2 tasks and seeds, got 1 and 1"):
        env.set_tasks([task], [1])
    with pytest.raises(ValueError, match=r"reset options \['bogus'\] are unknown"):
        env.reset(options={"bogus": 1})
    with pytest.raises(ValueError, match="episode=-1: expected an integer >= 0"):
        env.reset(options={"episode": -1})


# ----------------------------------------------------------------------------- bad actions
def test_bad_actions_name_index_and_value(make_vec: MakeVec,
                                          contract_config: ScenarioConfig) -> None:
    env = make_vec(2, contract_config)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(idle(env))
    env.reset(seed=0)
    n_choices = env.layout.n_choices
    bad = idle(env)
    bad[1, 2] = n_choices
    with pytest.raises(ValueError, match=rf"action\[\[1, 2\]\]={n_choices} is out of range"):
        env.step(bad)
    bad = idle(env).astype(np.float64)
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf at index \[0, 1\]"):
        env.step(bad)
    with pytest.raises(ValueError, match=r"action has shape \(2, 1\)"):
        env.step(np.zeros((2, 1), dtype=np.int64))
    negative = idle(env)
    negative[0, 0] = -1
    with pytest.raises(ValueError, match=r"action\[\[0, 0\]\]=-1 is out of range"):
        env.step(negative)
    # a refused action did not advance anything: a valid one still works
    obs, reward, *_ = env.step(idle(env))
    assert env.observation_space.contains(obs)


def test_bad_constructor_arguments(backend: str, contract_config: ScenarioConfig) -> None:
    with pytest.raises(ValueError, match="num_envs=0: expected an integer >= 1"):
        make_vector_env(backend, 0, contract_config)
    with pytest.raises(ValueError, match="task_split='nope'"):
        make_vector_env(backend, 1, contract_config, task_split="nope")


# ----------------------------------------------------------------------------- capabilities
def test_frame_replay_capability(make_vec: MakeVec, backend: str,
                                 contract_config: ScenarioConfig) -> None:
    env = make_vec(1, contract_config)
    env.reset(seed=0)
    assert env.supports_frame_replay == supports_frame_replay(backend)
    if env.supports_frame_replay:
        core = env.frame_replay()
        # a replay does not advance the environment
        trial = core.take(np.zeros(3, dtype=np.int64))
        trial.step(np.zeros((3, env.layout.action_size), dtype=np.int64))
        assert core.frame.tolist() == [0]
    else:
        with pytest.raises(CapabilityUnavailable, match=f"backend {backend!r}"):
            env.frame_replay()


# ----------------------------------------------------------------------------- selector, errors
def test_backend_selector() -> None:
    assert BACKENDS == ("fallback", "ns3")
    with pytest.raises(ValueError, match=r"backend='bogus': expected one of \['fallback', 'ns3'\]"):
        make_vector_env("bogus", 1)
    with pytest.raises(ValueError, match=r"options \['endpoint'\] only apply to backend='ns3'"):
        make_env("fallback", None, endpoint="ipc")
    # the Gymnasium registrations go through the same selector
    for env_id, backend in (("IABMeta/Fallback-v0", "fallback"), ("IABMeta/Ns3-v0", "ns3")):
        spec = gym.spec(env_id)
        assert spec.entry_point == "bridge.contract.backends:make_env"
        assert spec.vector_entry_point == "bridge.contract.backends:make_vector_env"
        assert spec.kwargs == {"backend": backend}


def test_one_error_hierarchy() -> None:
    for cls in (SimulatorError, SimulatorDied, SimulatorTimeout, ProtocolError, PeerClosed,
                ShardWorkerError):
        assert issubclass(cls, EnvironmentFailure), cls
    # retrying on a fresh environment cannot give a backend a capability it lacks
    assert not issubclass(CapabilityUnavailable, EnvironmentFailure)
    assert issubclass(PeerClosed, ConnectionError)  # still what transports raise
    from agents.rollouts import ENV_FAILURES

    assert ENV_FAILURES is EnvironmentFailure
