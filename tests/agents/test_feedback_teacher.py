"""The feedback memory (agents.feedback) is the adaptive heuristic's penalty estimate and
what the rollout jobs store; the teacher term (agents.teacher) pulls the policy toward the
teacher's action and replays an adaptive teacher exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from agents.feedback import FeedbackMemory, transform_sequence
from agents.heuristics import GreedyMeasuredSinr, make_heuristic
from agents.networks import ActorCritic
from agents.policy_gradient import MaskedMultiCategorical
from agents.registry import agent_config, make_agent
from agents.rollouts import EnvSlot, LocalRollouts, PolicySnapshot
from agents.teacher import teacher_labels, teacher_loss
from agents.warm_start import collect_teacher
from bridge.config import ConfigError, ScenarioConfig
from bridge.fallback.env import IABVectorEnv
from bridge.layout import SNR_SCALE_DB
from bridge.tasks import Task, TaskDistribution

# a strong external interferer on two channels: the measured penalty is far from 0
STRONG = {"radio__external_block_channels": 2, "radio__external_eirp_dbm": 50.0,
          "radio__external_activity": 0.9}


def _record(config: ScenarioConfig, name: str, frames: int, n: int = 4, seed: int = 1,
            **options: object):
    """``frames`` frames of heuristic ``name`` on n environments: the raw observations
    (T, N, D), masks and its actions, and the heuristic itself."""
    env = IABVectorEnv(n, config)
    obs, info = env.reset(seed=seed)
    policy = make_heuristic(name, env.layout, config=config)
    for key, value in options.items():
        setattr(policy, key, value)
    policy.reset(n)
    obs_buf, mask_buf, act_buf = [], [], []
    for _ in range(frames):
        action = policy.act(obs, info["action_mask"])
        obs_buf.append(obs)
        mask_buf.append(info["action_mask"])
        act_buf.append(action)
        obs, _, _, _, info = env.step(action)
    env.close()
    return np.stack(obs_buf), np.stack(mask_buf), np.stack(act_buf), policy


def test_memory_is_the_heuristics_estimate_on_a_recorded_stream(small_config) -> None:
    config = small_config.replace(**STRONG)
    obs, _, _, heuristic = _record(config, "greedy_measured_sinr", 30)
    assert isinstance(heuristic, GreedyMeasuredSinr)
    assert (heuristic.penalty_db > 3.0).any(), "the test needs a measured interferer"
    memory = FeedbackMemory(heuristic.layout, obs.shape[1])
    seen = [memory(o) for o in obs]
    np.testing.assert_allclose(memory.tracker.penalty_db, heuristic.penalty_db, atol=1e-9)
    np.testing.assert_array_equal(memory.tracker.measured, heuristic.measured)
    lay = heuristic.layout
    raw, eff = lay.split(obs[-1]), lay.split(seen[-1])
    valid = raw["valid"] > 0
    expect = raw["cqi"] - heuristic.penalty_db / SNR_SCALE_DB
    np.testing.assert_allclose(eff["cqi"][valid[..., 0]], expect[valid[..., 0]], atol=1e-5)
    # the first frame has no measurement: the optimistic CQI; every other field is raw
    np.testing.assert_array_equal(seen[0], obs[0].astype(np.float32))
    for name in ("sinr", "backlog_mb", "valid", "parent"):
        np.testing.assert_array_equal(eff[name], raw[name])
    # the whole-sequence form is the online one
    np.testing.assert_array_equal(transform_sequence(obs, lay), np.stack(seen))


@pytest.mark.parametrize("kind", ["penalty", "penalty_ordered"])
def test_greedy_on_the_memory_is_the_adaptive_heuristic(small_config, kind: str) -> None:
    """Greedy max-SINR acting on the memory's view (its mask in the view's channel order, its
    action mapped back) takes the adaptive heuristic's decisions, sensing debounce off: with
    the heuristic's channel reordering off for ``penalty``, on for ``penalty_ordered``, whose
    view puts the channels in that order."""
    config = small_config.replace(**STRONG)
    ordered = kind == "penalty_ordered"
    obs, mask, actions, adaptive = _record(config, "greedy_measured_sinr", 30,
                                           reorder_channels=ordered,
                                           debounce_above=float("inf"))
    greedy = make_heuristic("greedy_max_sinr", adaptive.layout, config=config)
    greedy.reset(obs.shape[1])
    memory = FeedbackMemory(adaptive.layout, obs.shape[1], kind)
    mine, orders = [], []
    for t in range(len(obs)):
        seen = memory(obs[t])
        orders.append(memory.order)
        mine.append(memory.to_env(greedy.act(seen, memory.permute_mask(mask[t]))))
    assert (np.stack(mine) == actions).mean() > 0.99, (np.stack(mine) == actions).mean()
    if ordered:
        assert any((o != np.arange(o.shape[1])).any() for o in orders), "the order never moved"
    else:
        assert all(o is None for o in orders)
        # and not plain greedy on the raw observations
        plain = np.stack([greedy.act(obs[t], mask[t]) for t in range(len(obs))])
        assert (plain != actions).any()


def test_greedy_on_the_debounced_memory_is_the_adaptive_heuristic_with_its_debounce(
        small_config) -> None:
    """With ``penalty_ordered_debounced`` the view's mask also holds busy the channels the
    heuristic's sensing debounce holds busy, so greedy on that view is the adaptive heuristic
    as the study runs it (debounce and channel order on)."""
    config = small_config.replace(**STRONG, dynamics__incumbent_activity=0.5,
                                  dynamics__incumbent_miss_prob=0.25)
    obs, mask, actions, adaptive = _record(config, "greedy_measured_sinr", 60)
    greedy = make_heuristic("greedy_max_sinr", adaptive.layout, config=config)
    greedy.reset(obs.shape[1])
    results = {}
    for kind in ("penalty_ordered_debounced", "penalty_ordered"):
        memory = FeedbackMemory(adaptive.layout, obs.shape[1], kind)
        mine, held = [], 0
        for t in range(len(obs)):
            seen = memory(obs[t])
            view_mask = memory.permute_mask(mask[t])
            if memory.suspect is not None:
                held += int(memory.suspect.sum())
                # a held channel offers no link in the view (its slot), only idle
                lay = adaptive.layout
                grid = view_mask.reshape(len(view_mask), lay.n_bs, lay.n_channels, -1)
                held_slot = np.take_along_axis(memory.suspect, memory.order, axis=1)
                assert not (grid[..., 1:].any(axis=-1) & held_slot[:, None, :]).any()
            mine.append(memory.to_env(greedy.act(seen, view_mask)))
        results[kind] = ((np.stack(mine) == actions).mean(), held)
    agree, held = results["penalty_ordered_debounced"]
    assert held > 0, "the debounce never held a channel: the test needs sensing misses"
    assert agree > 0.99, agree
    assert results["penalty_ordered"][0] < 1.0  # without it, greedy differs somewhere
    # the memory's copy carries the sensing state
    memory = FeedbackMemory(adaptive.layout, obs.shape[1], "penalty_ordered_debounced")
    for t in range(30):
        memory(obs[t])
    twin = memory.copy()
    np.testing.assert_array_equal(twin(obs[30]), memory(obs[30]))
    np.testing.assert_array_equal(twin.suspect, memory.suspect)


def test_ordered_view_maps_masks_and_actions_consistently(small_config) -> None:
    config = small_config.replace(**STRONG)
    obs, mask, actions, _ = _record(config, "greedy_measured_sinr", 12)
    layout = make_agent("ppo", config).layout
    memory = FeedbackMemory(layout, obs.shape[1], "penalty_ordered")
    plain = FeedbackMemory(layout, obs.shape[1], "penalty")
    k = layout.n_channels
    for t in range(len(obs)):
        seen, flat = memory(obs[t]), plain(obs[t])
        order = memory.order
        assert order is not None and plain.order is None
        np.testing.assert_array_equal(np.sort(order, axis=1), np.tile(np.arange(k),
                                                                      (len(order), 1)))
        # slot j of the view is channel order[j] of the plain view, in every field
        f_seen, f_flat = layout.split(seen), layout.split(flat)
        for name in ("cqi", "sinr"):
            np.testing.assert_array_equal(
                f_seen[name], np.take_along_axis(f_flat[name], order[:, None, :], axis=-1))
        np.testing.assert_array_equal(f_seen["incumbent"],
                                      np.take_along_axis(f_flat["incumbent"], order, axis=1))
        view_action = memory.to_view(actions[t])
        np.testing.assert_array_equal(memory.to_env(view_action), actions[t])
        view = memory.permute_mask(mask[t])
        allowed = np.take_along_axis(view, view_action[..., None], axis=-1)
        assert allowed.all()  # the heuristic's allowed action stays allowed in the view
        # head b*K + j of the view is head b*K + order[j] of the environment
        b, j = layout.n_bs - 1, 0
        np.testing.assert_array_equal(view[:, b * k + j], mask[t][np.arange(len(order)),
                                                                  b * k + order[:, j]])


@pytest.mark.parametrize("kind", ["penalty", "penalty_ordered"])
def test_rollout_jobs_store_what_the_policy_saw(small_config, kind: str) -> None:
    """A job of a feedback-memory policy stores the transform of the raw observations it
    caused (replayed on a plain environment with the stored actions, mapped back to the
    environment's channels), from a fresh memory, and runs deterministically."""
    config = small_config.replace(**STRONG)
    tasks = TaskDistribution.for_config(config).sample("train", 3, 2)
    slots = [EnvSlot(t, 11 + i, 0, 5 + i) for i, t in enumerate(tasks)]
    agent = make_agent("ppo", config, 0, {"feedback_memory": kind})
    snap = PolicySnapshot.capture(agent.model)
    with LocalRollouts(lambda n: IABVectorEnv(n, config), config) as rollouts:
        first = rollouts.collect([(slots, snap)])
        again = rollouts.collect([(slots, snap)])
    torch.testing.assert_close(first.obs, again.obs)
    torch.testing.assert_close(first.action, again.action)
    env = IABVectorEnv(len(slots), config)
    obs, info = env.reset(seed=[s.episode_seed for s in slots], options={
        "tasks": [s.task for s in slots], "instance_seeds": [s.instance_seed for s in slots]})
    raw, memory = [], FeedbackMemory(agent.layout, len(slots), kind)
    for t in range(first.steps):
        raw.append(obs)
        memory(obs)
        mask_view = memory.permute_mask(info["action_mask"])
        np.testing.assert_array_equal(first.mask[t].numpy(), mask_view)
        obs, *_, info = env.step(memory.to_env(first.action[t].numpy()))
    env.close()
    expect = transform_sequence(np.stack(raw), agent.layout, kind)
    np.testing.assert_allclose(first.obs.numpy(), expect, atol=1e-6)
    assert not np.allclose(np.stack(raw), expect), "the memory changed nothing"


@pytest.mark.parametrize("teacher", ["greedy_measured_sinr", "greedy_max_sinr"])
def test_teacher_replay_is_the_online_teacher(small_config, teacher) -> None:
    """The labels replayed over a stored sequence are the online teacher's actions: in time
    order for the adaptive teacher, all frames in one batch for the stateless one."""
    config = small_config.replace(**STRONG)
    obs, mask, actions, _ = _record(config, teacher, 25)
    cfg = agent_config("ppo_finetune", {"warm_start": teacher,
                                        "teacher_coef": 0.5, "feedback_memory": "none"})
    cfg = dataclasses.replace(cfg, channel_hz=config.radio.channel_bandwidth_hz,
                              frame_s=config.dynamics.frame_s)
    layout = make_agent("ppo", config).layout
    labels = teacher_labels(cfg, layout, torch.as_tensor(obs), torch.as_tensor(mask))
    np.testing.assert_array_equal(labels.numpy(), actions)


def test_teacher_term_gradient_pulls_toward_the_teachers_action(small_config) -> None:
    torch.manual_seed(0)
    obs, mask, actions, _ = _record(small_config, "greedy_max_sinr", 12)
    layout = make_agent("ppo", small_config).layout
    model = ActorCritic(layout, allocation="sequential",
                        channel_hz=small_config.radio.channel_bandwidth_hz,
                        frame_s=small_config.dynamics.frame_s, idle_bias=2.0)
    flat = torch.as_tensor(obs.reshape(-1, obs.shape[-1]))
    m = torch.as_tensor(mask.reshape(-1, *mask.shape[2:]))
    a = torch.as_tensor(actions.reshape(-1, actions.shape[-1]))
    valid = torch.ones(len(flat))

    def log_p() -> torch.Tensor:
        logits, _, _ = model(flat, prefix=a)
        return MaskedMultiCategorical(logits, m).log_prob(a)

    with torch.no_grad():
        before = log_p()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(10):
        static, _, _ = model(flat)
        loss = teacher_loss(model, flat, static, m, a, a, valid)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = log_p()
    assert after.mean() > before.mean() + 0.1, (before.mean(), after.mean())
    assert (after > before).float().mean() > 0.8


def test_feedback_warm_start_stores_the_students_view(small_config) -> None:
    config = small_config.replace(**STRONG)
    layout = make_agent("ppo", config).layout

    def teacher():
        greedy = make_heuristic("greedy_max_sinr", layout, config=config)
        return lambda env, obs, mask: greedy.act(obs, mask)

    tasks = TaskDistribution.for_config(config)
    kwargs = {"rounds": 1, "n_tasks": 2, "per_task": 2, "seed": 0}
    raw = collect_teacher(lambda n: IABVectorEnv(n, config), tasks, teacher, **kwargs)
    seen = collect_teacher(lambda n: IABVectorEnv(n, config), tasks, teacher, **kwargs,
                           feedback_memory="penalty", teacher_sees="student")
    frames = config.dynamics.episode_frames
    # same first frame (nothing measured yet), then the student's memory
    np.testing.assert_array_equal(raw.obs[:4].numpy(), seen.obs[:4].numpy())
    assert not torch.equal(raw.obs, seen.obs) and len(seen) == 4 * frames


def test_bad_settings_are_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="feedback_memory"):
        agent_config("ppo", {"feedback_memory": "gru"})
    with pytest.raises(ConfigError, match="or agents.ppo_finetune.teacher_coef=0"):
        agent_config("ppo_finetune", {"warm_start": "none"})  # its default teacher term
    with pytest.raises(ConfigError, match="or agents.maml.teacher_coef=0"):
        agent_config("maml", {"warm_start": "none"})
    with pytest.raises(ConfigError, match=r"agents\.ppo\.teacher_coef"):
        agent_config("ppo", {"teacher_coef": 0.1})  # warm_start 'none': no teacher
    with pytest.raises(ConfigError, match="teacher_coef"):
        agent_config("ppo", {"teacher_coef": -1.0})
    with pytest.raises(ConfigError, match="cannot replay"):
        agent_config("rl2", {"teacher_coef": 0.1, "warm_start": "greedy_measured_sinr"})
    assert agent_config("rl2", {"teacher_coef": 0.1}).teacher_coef == 0.1


@pytest.mark.parametrize("kind", ["penalty", "penalty_ordered"])
@pytest.mark.parametrize("name", ["ppo", "rl2", "maml"])
def test_act_with_memory_takes_the_rollout_jobs_decisions(name: str, kind: str) -> None:
    """An agent's ``act`` carries the memory in its state (acting twice on a frame sees it
    once) and decides as its deterministic rollout job does on the same deployment."""
    from tests.agents.test_adaptive_baselines import LONE_CELL

    config = ScenarioConfig().replace(**LONE_CELL)
    task = Task.from_config(config)  # its interferer, on every frame
    slots = [EnvSlot(task, 21, j, 3) for j in range(2)]
    agent = make_agent(name, config, 0, {"feedback_memory": kind})
    model = agent.modules()[agent.policy_module]
    torch.manual_seed(5)
    with torch.no_grad():  # weights off their init, so that the CQI changes decisions
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    snap = PolicySnapshot.capture(model, deterministic=True)
    trial = name == "rl2"
    with LocalRollouts(lambda n: IABVectorEnv(n, config), config) as rollouts:
        job = rollouts.collect([(slots, snap)], trial=trial)
    env = IABVectorEnv(len(slots), config)
    obs, info = env.reset(seed=[s.episode_seed for s in slots], options={
        "tasks": [s.task for s in slots], "instance_seeds": [s.instance_seed for s in slots]})
    state, memory = None, FeedbackMemory(agent.layout, len(slots), kind)
    for t in range(config.dynamics.episode_frames):
        agent.act(obs, info["action_mask"], state)  # a sampled decision on the same frame
        action, state = agent.act(obs, info["action_mask"], state, deterministic=True)
        memory(obs)  # the job stored the view's action: map it to the environment's
        np.testing.assert_array_equal(action, memory.to_env(job.action[t].numpy()))
        obs, reward, term, trunc, info = env.step(action)
        if trial:
            state = agent.observe(state, reward, term | trunc)
    env.close()


def test_maml_outer_teacher_term_pulls_the_adapted_policy_toward_the_teacher(
        small_config) -> None:
    """MAML's outer loss carries the teacher term on phi (the policy after the inner step):
    one outer update lowers phi's NLL of the teacher's actions on the states it visited."""
    from torch.func import functional_call

    from agents.allocation_policy import teacher_forcing
    from agents.maml import MAMLAgent, MAMLConfig

    config = small_config
    layout = make_agent("ppo", config).layout
    cfg = MAMLConfig(teacher_coef=50.0, outer_epochs=2, outer_lr=3e-3,
                     channel_hz=config.radio.channel_bandwidth_hz)
    agent = MAMLAgent(layout, cfg, seed=0)
    tasks = TaskDistribution.for_config(config).sample("train", 4, 2)
    with LocalRollouts(lambda n: IABVectorEnv(n, config), config) as rollouts:
        inner, outer, _, _ = agent._meta_batch(rollouts, tasks, [1, 2], 2)

    def nll() -> float:
        total = 0.0
        for i, batch in enumerate(outer):
            phi = agent.adapted(agent.theta(), [step[i] for step in inner], create_graph=False)
            labels = teacher_labels(cfg, layout, batch.obs, batch.mask)
            with torch.no_grad():
                logits, _, _ = functional_call(agent.actor, phi, (batch.obs,), {
                    "prefix": teacher_forcing(agent.actor, batch.obs, labels)})
                total += float(-MaskedMultiCategorical(logits, batch.mask).log_prob(
                    labels)[batch.valid > 0].mean())
        return total

    before = nll()
    stats = agent._outer_update(inner, outer)
    assert "aux_loss" in stats
    assert nll() < before - 0.5, (before, nll())
