"""The baselines of the hidden deployment conditions: the adaptive heuristic (greedy on the
measured SINR penalty) learns each deployment over its episodes and forgets it for the next,
and the per-task oracle reads the true hidden conditions (a capability ns-3 lacks)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from agents.heuristics import GreedyMeasuredSinr, make_heuristic
from agents.oracle import HIDDEN_ORACLE, HiddenConditionsOracle
from agents.rollouts import pin_tasks
from agents.study import build_spec, evaluate_baseline, run_study, study_phases
from bridge.config import ScenarioConfig
from bridge.contract import CapabilityUnavailable, supports_hidden_conditions
from bridge.fallback.env import IABVectorEnv
from bridge.tasks import Task
from tests.agents.study.test_library import TINY

# one donor, no IAB node: no co-channel cell of the own network, so the SINR penalty a link
# meets is the external interferer's alone (always on, no incumbents, UEs at rest)
LONE_CELL = {"topology__n_iab": 0, "topology__max_iab": 0, "topology__n_ue": 6,
             "topology__max_ues": 6, "radio__n_channels": 4, "dynamics__episode_frames": 30,
             "radio__external_block_channels": 2, "radio__external_eirp_dbm": 50.0,
             "radio__external_activity": 1.0, "dynamics__incumbent_activity": 0.0,
             "dynamics__ue_speed_mps": 0.0}
STRONG = {"radio__external_block_channels": 2, "radio__external_eirp_dbm": 50.0,
          "radio__external_activity": 0.9}


def _play(env, policy, episodes: int, obs, mask, after_episode=None,
          metric: str = "throughput_mbps") -> list[float]:
    """``metric`` (mean over envs) of each of ``episodes`` episodes of ``policy``."""
    out = []
    for episode in range(episodes):
        for _ in range(env.config.dynamics.episode_frames):
            obs, _, _, _, info = env.step(policy(obs, mask))
            mask = info["action_mask"]
        out.append(float(np.mean(info["episode_metrics"][metric])))
        if after_episode is not None:
            after_episode(episode)
        obs, *_, info = env.step(np.zeros((env.num_envs, env.layout.action_size), np.int64))
        mask = info["action_mask"]
    return out


def test_penalty_estimate_converges_over_episodes_and_resets() -> None:
    config = ScenarioConfig().replace(**LONE_CELL)
    env = IABVectorEnv(4, config)
    obs, info = env.reset(seed=3)
    heuristic = make_heuristic("greedy_measured_sinr", env.layout, config=config)
    assert isinstance(heuristic, GreedyMeasuredSinr)
    heuristic.reset(env.num_envs)
    truth = env.hidden_conditions().external_loss_db()  # (N, L, K), constant: UEs at rest
    valid = env.core.link_valid[..., None] & np.ones(truth.shape, dtype=bool)
    hit = valid & env.core.ext_channels[:, None, :]
    assert np.median(truth[hit]) > 5.0, "the test needs an interferer the receivers hear"
    measured, errors = [], []

    def check(_: int) -> None:
        seen = heuristic.measured > 0
        measured.append(int((seen & hit).sum()))
        errors.append(float(np.abs(heuristic.penalty_db - truth)[seen & hit].mean()))
        # a clean channel keeps its (optimistic) zero, measured or not
        assert np.abs(heuristic.penalty_db[valid & ~hit]).max() < 1e-4

    _play(env, heuristic.act, 3, obs, info["action_mask"], check)
    # experience is carried over the episodes of the deployment, never reset by them
    assert measured[0] > 0 and measured == sorted(measured)
    assert max(errors) < 0.1, errors  # the penalty is exactly the interferer's loss here
    heuristic.reset(env.num_envs)
    assert not heuristic.penalty_db.any() and not heuristic.measured.any()


def test_adaptive_greedy_beats_greedy_under_strong_interference(small_config) -> None:
    config = small_config.replace(**STRONG)
    results = {}
    for name in ("greedy_max_sinr", "greedy_measured_sinr"):
        env = IABVectorEnv(4, config)
        cursor = pin_tasks(env, [Task.from_config(config)], [41])
        policy = make_heuristic(name, env.layout, seed=0, config=config)
        policy.reset(env.num_envs)
        results[name] = _play(env, policy.act, 3, cursor.obs, cursor.mask)
    greedy, adaptive = results["greedy_max_sinr"], results["greedy_measured_sinr"]
    assert adaptive[-1] > 1.05 * greedy[-1], results


def test_hidden_conditions_are_the_cores_truth(small_config) -> None:
    config = small_config.replace(**STRONG, dynamics__incumbent_activity=0.5,
                                  dynamics__incumbent_miss_prob=0.5)
    env = IABVectorEnv(3, config)
    assert env.supports_hidden_conditions and supports_hidden_conditions("fallback")
    obs, info = env.reset(seed=5)
    differs = False
    for _ in range(12):
        hidden, core = env.hidden_conditions(), env.core
        on_block = core.ext_channels[:, None, :]
        expected = core.ext_activity[:, None, None] * core.ext_rx_mw[:, :, None] * on_block
        np.testing.assert_array_equal(hidden.external_mw, expected)
        assert (hidden.external_mw[np.broadcast_to(~on_block, expected.shape)] == 0).all()
        assert hidden.external_mw[core.link_valid].max() > 0
        np.testing.assert_array_equal(hidden.external_channels, core.ext_channels)
        np.testing.assert_array_equal(hidden.incumbent, core.incumbent)
        # the report (observation and mask) misses some of them; the oracle does not
        assert not (core.incumbent_seen & ~hidden.incumbent).any()
        differs |= bool((hidden.incumbent != core.incumbent_seen).any())
        obs, *_, info = env.step(np.zeros((3, env.layout.action_size), np.int64))
    assert differs


@pytest.mark.parametrize(("hidden", "metric", "factor"), [
    ({}, "throughput_mbps", 1.1),
    # perfect sensing: only the incumbents that turn on in a frame collide
    ({"dynamics__incumbent_activity": 0.3, "dynamics__incumbent_miss_prob": 0.4},
     "incumbent_collision_rate", 0.5)])
def test_oracle_uses_the_truth_and_beats_greedy(small_config, hidden, metric, factor
                                                ) -> None:
    config = small_config.replace(**STRONG, **hidden)
    results = {}
    for name in ("greedy_max_sinr", HIDDEN_ORACLE):
        env = IABVectorEnv(4, config)
        cursor = pin_tasks(env, [Task.from_config(config)], [41])
        if name == HIDDEN_ORACLE:
            oracle = HiddenConditionsOracle.for_config(config)
            oracle.reset(env.num_envs)
            policy = functools.partial(oracle.act_on_env, env)
        else:
            policy = make_heuristic(name, env.layout, config=config).act
        results[name] = _play(env, policy, 3, cursor.obs, cursor.mask, metric=metric)
    oracle_value, greedy_value = (np.mean(results[n]) for n in (HIDDEN_ORACLE,
                                                                "greedy_max_sinr"))
    if factor > 1:
        assert oracle_value > factor * greedy_value, results
    else:
        assert oracle_value < factor * greedy_value, results


@pytest.mark.ns3
def test_hidden_conditions_are_unavailable_on_ns3(scenario_build_dir) -> None:
    from bridge.contract import make_vector_env
    from bridge.ns3.build import scenario_binary

    assert not supports_hidden_conditions("ns3")
    config = ScenarioConfig().replace(topology__n_iab=1, topology__n_ue=4,
                                      dynamics__episode_frames=5, **STRONG)
    env = make_vector_env("ns3", 1, config,
                          binary=scenario_binary("iab-scenario", scenario_build_dir))
    try:
        obs, info = env.reset(seed=0)
        with pytest.raises(CapabilityUnavailable, match="hidden deployment conditions"):
            env.hidden_conditions()
        oracle = HiddenConditionsOracle.for_config(config)
        with pytest.raises(CapabilityUnavailable, match="'ns3'"):
            oracle.act_on_env(env, obs, info["action_mask"])
    finally:
        env.close()
    spec = build_spec(TINY, profile="quick", backend="ns3")
    assert all(HIDDEN_ORACLE not in s.baselines for s in spec.studies)


def test_baseline_phase_carries_experience_within_a_task_and_resets_between(tmp_path) -> None:
    spec = build_spec(TINY, ["experiment.n_test_tasks=2", "experiment.adapt_episodes=2"],
                      profile="quick")
    study = spec.study("main")
    recs = evaluate_baseline(spec, study, "greedy_measured_sinr")
    assert recs == evaluate_baseline(spec, study, "greedy_measured_sinr")  # deterministic
    # task 1 alone, from a fresh heuristic: the phase's task 1 did not inherit task 0's
    task, seed = spec.held_out(study)[1]
    env = IABVectorEnv(spec.budget.adapt_envs, study.config)
    cursor = pin_tasks(env, [task], [seed])
    fresh = make_heuristic("greedy_measured_sinr", env.layout, seed=spec.seed,
                           config=study.config)
    fresh.reset(env.num_envs)
    tp = _play(env, fresh.act, spec.budget.adapt_episodes + 1, cursor.obs, cursor.mask)
    phase_tp = [r["throughput_mbps"] for r in recs if r["task"] == 1]
    np.testing.assert_allclose(phase_tp, tp, rtol=1e-12)
    # and the study runs both baselines and reports the room to adapt
    names = [p.method for p, _ in study_phases(spec)]
    assert {"greedy_measured_sinr", HIDDEN_ORACLE} <= set(names)
    results = run_study(spec.replace(agents=("ppo",)), tmp_path / "study")
    methods = results["studies"]["main"]["methods"]
    assert methods[HIDDEN_ORACLE]["kind"] == "baseline"
    blind = {m: s["throughput_mbps"] for m, s in methods.items()
             if s["kind"] == "baseline" and m not in ("upper_bound", HIDDEN_ORACLE)}
    assert "greedy_measured_sinr" in blind
    best = methods["ppo"]["best_heuristic"]
    assert best == max(blind, key=blind.__getitem__)
    oracle = methods[HIDDEN_ORACLE]
    same = (oracle["adaptation_curve"][-1]["throughput_mbps"]
            if best == "greedy_measured_sinr" else oracle["throughput_mbps"])
    assert oracle["room_to_adapt"] == pytest.approx(same / blind[best])
    # an adaptive heuristic is valued at its last episode, as the agents are
    adaptive = methods["greedy_measured_sinr"]
    assert adaptive["throughput_mbps"] == pytest.approx(
        adaptive["adaptation_curve"][-1]["throughput_mbps"])
    report = (tmp_path / "study" / "report.md").read_text()
    assert "Oracle (knows hidden conditions)" in report and "Room to adapt" in report


@pytest.mark.parametrize("method", ["greedy_measured_sinr", "proportional_fair", "round_robin",
                                    HIDDEN_ORACLE])
def test_a_baseline_gives_each_task_the_same_records_beside_other_tasks(method) -> None:
    """The baseline phase runs the held-out tasks side by side (as many as fit in a training
    iteration's environments); every environment keeps its own experience, so each task's
    records are those of running it alone."""
    from agents.study.phases import baseline_batches

    overrides = ["experiment.n_test_tasks=3", "experiment.adapt_episodes=1"]
    spec = build_spec(TINY, [*overrides, "experiment.num_envs=64"], profile="quick")
    study = spec.study("main")
    assert [len(b) for b in baseline_batches(spec, study)] == [3]
    together = evaluate_baseline(spec, study, method)
    spec = build_spec(TINY, [*overrides, f"experiment.num_envs={spec.budget.adapt_envs}"],
                      profile="quick")
    assert [len(b) for b in baseline_batches(spec, study)] == [1, 1, 1]
    alone = evaluate_baseline(spec, study, method)
    assert [(r["task"], r["episode"]) for r in together] == \
        [(t, e) for t in range(3) for e in range(2)]
    assert together == alone
    assert len({r["throughput_mbps"] for r in together}) > 1
