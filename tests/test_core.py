"""The batched simulator's invariants: conservation, rules, masks, determinism, batching."""

from __future__ import annotations

import numpy as np
import pytest

from agents.heuristics import RandomMasked
from bridge.config import ScenarioConfig
from bridge.fallback.core import BatchedIABCore
from bridge.fallback.env import IABEnv, IABVectorEnv
from bridge.instance import ScenarioInstance, generate_instance
from bridge.layout import ObservationLayout
from bridge.tasks import TaskDistribution


def _unmasked_random(rng, n, layout):
    return rng.integers(0, layout.n_choices, size=(n, layout.action_size))


def _core(config, n, seed=0, split=None):
    tasks = TaskDistribution.for_config(config)
    insts = []
    for i in range(n):
        task = tasks.sample(split, seed + i)[0] if split else None
        insts.append(generate_instance(config, seed + i, task))
    core = BatchedIABCore(config, insts)
    core.reset(np.arange(n) + 100 * seed)
    return core


@pytest.mark.parametrize("topology", ["star", "chain"])
def test_bytes_are_conserved_at_every_step(small_config, topology):
    config = small_config.replace(topology__topology=topology, traffic__ue_rate_mbps=400.0)
    core = _core(config, 6)
    rng = np.random.default_rng(0)
    previous = core.delivered_or_dropped.copy()
    for _ in range(60):
        core.step(_unmasked_random(rng, core.N, core.layout))
        queued = core.bytes_in_queues()
        delivered = core.acc_delivered_ue.sum(axis=1)
        assert np.array_equal(core.acc_arrived, delivered + core.acc_dropped + queued)
        # cursors are ordered along each path: nothing leaves a hop before it arrived
        upstream = np.concatenate([core.arrived[..., None], core.cursor[..., :-1]], axis=2)
        assert np.all(upstream - core.cursor >= 0)
        # what left the access hop is exactly what was delivered or dropped; the cursor only
        # moves forward, and no UE receives more than arrived for it
        assert np.array_equal(core.delivered_or_dropped.sum(axis=1),
                              delivered + core.acc_dropped)
        assert np.all(core.delivered_or_dropped >= previous)
        assert np.all(core.acc_delivered_ue <= core.arrived)
        previous = core.delivered_or_dropped.copy()
    assert core.acc_delivered_ue.sum() > 0 and core.acc_dropped.sum() > 0


def test_no_rule_violation_reaches_the_channel(small_config):
    config = small_config.replace(topology__topology="chain",
                                  dynamics__incumbent_activity=0.3)
    core = _core(config, 8)
    rng = np.random.default_rng(1)
    hd_seen = invalid_seen = 0
    for _ in range(40):
        mask_seen = core.incumbent_seen.copy()
        _, info = core.step(_unmasked_random(rng, core.N, core.layout))
        alloc = info["allocation"]  # (N, B, K) link per base station and channel
        for n in range(core.N):
            for b in range(core.B):
                for k in range(core.K):
                    link = alloc[n, b, k]
                    if link < 0:
                        continue
                    assert core.link_valid[n, link] and core.link_parent[n, link] == b
                    assert not mask_seen[n, k]
                    if link < core.I:  # backhaul to IAB node `link`: that node is silent on k
                        assert alloc[n, link + 1, k] < 0
            # every receiver is served by one transmitter per channel
            for k in range(core.K):
                active = alloc[n, :, k][alloc[n, :, k] >= 0]
                assert len(active) == len(set(active.tolist()))
        hd_seen += info["half_duplex_conflicts"].sum()
        invalid_seen += info["invalid_actions"].sum()
    assert hd_seen > 0 and invalid_seen > 0  # the random actions did try to break the rules


def test_mask_matches_the_rules(small_config):
    config = small_config.replace(dynamics__incumbent_activity=0.4)
    core = _core(config, 4)
    core.step(np.zeros((core.N, core.layout.action_size), dtype=np.int64))
    mask = core.action_mask().reshape(core.N, core.B, core.K, 1 + core.L)
    assert mask[..., 0].all()
    for n in range(core.N):
        for b in range(core.B):
            for k in range(core.K):
                for link in range(core.L):
                    expected = (core.link_valid[n, link] and core.link_parent[n, link] == b
                                and not core.incumbent_seen[n, k])
                    assert mask[n, b, k, link + 1] == expected
    assert core.incumbent_seen.any()
    # masked-valid actions are never counted invalid
    for _ in range(10):
        m = core.action_mask()
        act = RandomMasked(core.layout, seed=3).act(core.observation(), m)
        _, info = core.step(act)
        assert info["invalid_actions"].sum() == 0


def _rollout(env, seed, steps):
    obs, info = env.reset(seed=seed)
    policy = RandomMasked(env.layout, seed=seed)
    out = [obs]
    rewards = []
    for _ in range(steps):
        a = policy.act(obs[None], info["action_mask"][None])[0]
        obs, r, term, trunc, info = env.step(a)
        out.append(obs)
        rewards.append(r)
        if term or trunc:
            obs, info = env.reset()
    return np.array(out), np.array(rewards)


def test_same_seed_gives_bit_identical_episodes(small_config):
    a_obs, a_rew = _rollout(IABEnv(small_config, task_split="train"), 7, 45)
    b_obs, b_rew = _rollout(IABEnv(small_config, task_split="train"), 7, 45)
    c_obs, _ = _rollout(IABEnv(small_config, task_split="train"), 8, 45)
    assert np.array_equal(a_obs, b_obs) and np.array_equal(a_rew, b_rew)
    assert not np.array_equal(a_obs, c_obs)


def test_vector_of_n_equals_n_single_environments(small_config):
    n, steps = 4, 70  # crosses an episode end (30 frames) twice: autoreset included
    vec = IABVectorEnv(n, small_config, task_split="train")
    singles = [IABEnv(small_config, task_split="train") for _ in range(n)]
    vobs, vinfo = vec.reset(seed=11)
    sobs = [s.reset(seed=11 + i) for i, s in enumerate(singles)]
    assert np.array_equal(vobs, np.stack([o for o, _ in sobs]))
    rng = np.random.default_rng(0)
    s_done = [False] * n
    s_info = [i for _, i in sobs]
    for _ in range(steps):
        policy_noise = rng.random(vinfo["action_mask"].shape)
        act = np.where(vinfo["action_mask"], policy_noise, -1).argmax(-1)
        vobs, vrew, vterm, vtrunc, vinfo = vec.step(act)
        for i, s in enumerate(singles):
            if s_done[i]:
                o, s_info[i] = s.reset()
                r, tr = 0.0, False
            else:
                o, r, _, tr, s_info[i] = s.step(act[i])
            s_done[i] = tr
            assert np.array_equal(vobs[i], o)
            assert vrew[i] == pytest.approx(r, abs=0, rel=0)
            assert vtrunc[i] == tr
            assert np.array_equal(vinfo["action_mask"][i], s_info[i]["action_mask"])


@pytest.mark.parametrize(("action", "message"), [
    (np.full(12, np.nan), "NaN"),
    (np.zeros(11), "shape"),
    (np.full(12, 99), "out of range"),
    (np.full(12, -1), "out of range"),
    (np.full(12, 1.5), "whole number"),
    (np.array(["a"] * 12), "dtype"),
])
def test_bad_actions_are_refused_with_a_clear_message(small_config, action, message):
    env = IABEnv(small_config)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_step_before_reset_and_after_end(small_config):
    env = IABEnv(small_config.replace(dynamics__episode_frames=2))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(12, dtype=np.int64))
    env.reset(seed=1)
    env.step(np.zeros(12, dtype=np.int64))
    *_, trunc, info = env.step(np.zeros(12, dtype=np.int64))
    assert trunc and "episode_metrics" in info
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(np.zeros(12, dtype=np.int64))


def test_instance_json_round_trip(small_config, tmp_path):
    inst = generate_instance(small_config.replace(topology__topology="chain"), seed=3)
    path = tmp_path / "inst.json"
    inst.to_json(path)
    back = ScenarioInstance.from_json(path)
    assert back.to_dict() == inst.to_dict()
    assert back.ue_hops(0)[-1] == small_config.topology.max_iab + 0
    d = inst.to_dict()
    d["version"] = 99
    with pytest.raises(Exception, match="instance.version"):
        ScenarioInstance.from_dict(d)


def test_observation_layout_is_documented_and_consistent(small_config):
    env = IABEnv(small_config)
    obs, _ = env.reset(seed=2)
    lay = ObservationLayout.from_config(small_config)
    assert obs.shape == (lay.size,) and obs.dtype == np.float32
    fields = lay.split(obs)
    core = env.core
    assert np.array_equal(fields["valid"][:, 0], core.link_valid[0].astype(np.float32))
    # invalid (padding) rows are all zero
    assert np.all(fields["links"][~core.link_valid[0]] == 0)
    described = lay.describe()
    assert sum(w for _, _, w in described) == lay.size


def test_batch_refuses_mixed_radio_configs(small_config):
    a = generate_instance(small_config, 0)
    b = generate_instance(small_config.replace(radio__carrier_ghz=39.0), 1)
    with pytest.raises(Exception, match="outside the task dimensions"):
        BatchedIABCore(small_config, [a, b])


def test_default_scenario_physics_is_plausible():
    """Mean SNRs and rates of the default 16-UE, 400 MHz, 28 GHz network are in the ranges
    a link budget predicts (see docs/system-model.md)."""
    config = ScenarioConfig()
    core = _core(config, 8)
    snr_db = core.cqi * 10
    access = snr_db[:, core.I:][core.link_valid[:, core.I:]]
    backhaul = snr_db[:, : core.I][core.link_valid[:, : core.I]]
    # backhaul: 150 m LOS-likely, 8x8 on both ends -> ~40 dB; access: 4x4 UEs at 10-250 m
    assert 20 < np.median(backhaul) < 55
    assert -5 < np.median(access) < 50


def test_mixed_ue_counts_conserve_bytes_and_padding_stays_empty(small_config):
    # a batch of different deployments (task split): the queues run only over the UE columns
    # some environment uses, and the padding UEs behind them never hold a byte
    config = small_config.replace(traffic__ue_rate_mbps=400.0)
    core = _core(config, 6, split="train")
    assert len(set(core.n_ue.tolist())) > 1
    rng = np.random.default_rng(4)
    for _ in range(40):
        _, info = core.step(_unmasked_random(rng, core.N, core.layout))
        delivered = core.acc_delivered_ue.sum(axis=1)
        assert np.array_equal(core.acc_arrived,
                              delivered + core.acc_dropped + core.bytes_in_queues())
        assert not core.qcur[:, ~core.ue_valid].any()
        assert not core.acc_delivered_ue[~core.ue_valid].any()
        assert np.array_equal(info["delivered_bytes_bs"].sum(axis=1), info["delivered_bytes"])
    assert core.acc_delivered_ue.sum() > 0 and core.acc_dropped.sum() > 0


def test_a_taken_subset_steps_like_the_whole_batch(small_config):
    # take() gives the replayed environments their own (narrower) queue state
    core = _core(small_config, 5, split="train")
    rng = np.random.default_rng(2)
    for _ in range(12):
        core.step(_unmasked_random(rng, core.N, core.layout))
    few = int(np.argmin(core.n_ue))
    sub = core.take([few, few])
    assert sub.n_ue_max <= core.n_ue_max
    action = _unmasked_random(rng, core.N, core.layout)
    for _ in range(3):
        reward, info = core.step(action)
        sub_reward, sub_info = sub.step(action[[few, few]])
        assert np.array_equal(sub_reward, reward[[few, few]])
        for key, value in info.items():
            assert np.array_equal(sub_info[key], value[[few, few]]), key
        assert np.array_equal(sub.observation(), core.observation()[[few, few]])


def test_the_vector_env_validates_an_action_once(small_config, monkeypatch):
    import bridge.contract.vector_env as vector_env
    import bridge.fallback.core as core_module

    calls = []
    real = vector_env.validate_action

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(vector_env, "validate_action", counting)
    monkeypatch.setattr(core_module, "validate_action", counting)
    env = IABVectorEnv(3, small_config)
    env.reset(seed=0)
    env.step(np.zeros((3, env.layout.action_size), dtype=np.int64))
    assert len(calls) == 1
    # the core on its own (as the upper bound uses it) still refuses a bad action
    with pytest.raises(ValueError, match="out of range"):
        env.frame_replay().step(np.full((3, env.layout.action_size), 99))


def test_half_duplex_rule_matches_its_definition():
    from bridge.layout import half_duplex_conflicts

    rng = np.random.default_rng(0)
    for n_bs, n_links in ((1, 3), (2, 2), (5, 28), (9, 12)):
        link = rng.integers(-1, n_links, size=(20, n_bs, 6))
        got = half_duplex_conflicts(link)
        for n, b, k in np.ndindex(link.shape):
            # IAB node b - 1 transmits on k while someone schedules its backhaul on k
            expected = b >= 1 and link[n, b, k] >= 0 and (link[n, :, k] == b - 1).any()
            assert got[n, b, k] == expected
