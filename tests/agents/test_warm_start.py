"""Warm start: cloning greedy with the sequential policy lowers the teacher's NLL and makes
the mode agree with it; MAML's functional_call path gives the module's log-probabilities."""

from __future__ import annotations

import torch
from torch.func import functional_call

from agents.heuristics import make_heuristic
from agents.networks import ActorCritic
from agents.policy_gradient import MaskedMultiCategorical
from agents.warm_start import behaviour_clone, collect_teacher, teacher_nll
from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv
from bridge.layout import ObservationLayout
from bridge.tasks import TaskDistribution


def test_cloning_greedy_lowers_nll_and_matches_it(tiny_config: ScenarioConfig) -> None:
    torch.manual_seed(0)
    layout = ObservationLayout.from_config(tiny_config)

    def teacher():
        greedy = make_heuristic("greedy_max_sinr", layout, config=tiny_config)
        return lambda env, obs, mask: greedy.act(obs, mask)

    data = collect_teacher(lambda n: IABVectorEnv(n, tiny_config),
                           TaskDistribution.for_config(tiny_config), teacher, rounds=1,
                           n_tasks=4, per_task=2, seed=0)
    assert len(data) == 4 * 2 * tiny_config.dynamics.episode_frames
    model = ActorCritic(layout, idle_bias=-1.0, allocation="sequential",
                        channel_hz=tiny_config.radio.channel_bandwidth_hz,
                        frame_s=tiny_config.dynamics.frame_s)
    with torch.no_grad():
        before, _ = teacher_nll(model, data.obs, data.mask, data.action)
    stats = behaviour_clone(model, data, epochs=15, batch_size=64)
    with torch.no_grad():
        after, agree = teacher_nll(model, data.obs, data.mask, data.action)
    assert after.mean() < 0.5 * before.mean(), (before.mean(), after.mean())
    assert agree.mean() > 0.9 and stats["head_agreement"] > 0.9


def test_functional_call_with_prefix_matches_module(tiny_config: ScenarioConfig) -> None:
    torch.manual_seed(1)
    layout = ObservationLayout.from_config(tiny_config)
    model = ActorCritic(layout, allocation="sequential")
    env = IABVectorEnv(4, tiny_config)
    obs, info = env.reset(seed=0)
    env.close()
    obs_t = torch.as_tensor(obs)
    mask_t = torch.as_tensor(info["action_mask"])
    action = torch.zeros(4, layout.action_size, dtype=torch.long)
    action[:, 0] = mask_t[:, 0, 1:].long().argmax(-1) + 1  # the donor schedules a link
    params = dict(model.named_parameters())
    via_call, _, _ = functional_call(model, params, (obs_t,), {"prefix": action})
    direct, _, _ = model(obs_t, prefix=action)
    lp_call = MaskedMultiCategorical(via_call, mask_t).log_prob(action)
    lp_direct = MaskedMultiCategorical(direct, mask_t).log_prob(action)
    torch.testing.assert_close(lp_call, lp_direct)
    # the scorer's parameters are reached through functional_call (MAML's inner step)
    grads = torch.autograd.grad(lp_call.sum(), [params["allocation.scorer.linear.weight"]])
    assert grads[0].abs().sum() > 0


def test_recurrent_agents_clone_whole_teacher_episodes(tiny_config: ScenarioConfig) -> None:
    """RL^2's warm start clones the teacher on whole episodes (memory and the teacher's
    previous action and reward as inputs): the teacher's NLL falls and the env-steps of the
    demonstrations are the budget's."""
    from agents.registry import make_agent
    from agents.warm_start import TeacherEpisodes, warm_start_from_teacher

    tasks = TaskDistribution.for_config(tiny_config)
    agent = make_agent("rl2", tiny_config, 0, {"allocation": "sequential"})
    hyper = agent.config
    import dataclasses
    hyper = dataclasses.replace(hyper, warm_start="greedy_max_sinr", warm_start_rounds=1,
                                warm_start_tasks=2, warm_start_replicas=2, warm_start_epochs=1)
    first = warm_start_from_teacher(agent.model, tiny_config, tasks, hyper, 0, recurrent=True)
    hyper = dataclasses.replace(hyper, warm_start_epochs=4)
    again = warm_start_from_teacher(agent.model, tiny_config, tasks, hyper, 0, recurrent=True)
    assert first["env_steps"] == 4 * tiny_config.dynamics.episode_frames
    assert again["nll"] < first["nll"]
    # episodes regroup the time-major transitions: env j's step t is row t, column j
    data = collect_teacher(lambda n: IABVectorEnv(n, tiny_config), tasks,
                           lambda: (lambda env, obs, mask: obs[:, :0].sum(-1, dtype=int)[:, None]
                                    .repeat(mask.shape[1], 1)), rounds=2, n_tasks=1,
                           per_task=3, seed=1)
    frames = tiny_config.dynamics.episode_frames
    episodes = TeacherEpisodes.from_data(data, frames, 3)
    assert episodes.obs.shape[:2] == (frames, 6)
    assert torch.equal(episodes.obs[1, 4], data.obs[(1 * frames + 1) * 3 + 1])
    assert torch.equal(episodes.prev_reward[1:, 0], episodes_reward(data, frames, 3)[:-1, 0])


def episodes_reward(data, frames: int, n_envs: int) -> torch.Tensor:
    rounds = len(data) // (frames * n_envs)
    return data.reward.reshape(rounds, frames, n_envs).transpose(0, 1).reshape(frames, -1)


def test_warm_start_fits_in_half_the_budget() -> None:
    """A small budget records fewer rounds, then tasks, then replicas; a default one keeps
    the configured demonstrations."""
    from agents.agent import fit_warm_start
    from agents.maml import MAMLConfig

    cfg = MAMLConfig()  # 2 rounds x 16 tasks x 4 replicas
    kept = fit_warm_start(cfg, 50_000, 100)
    assert (kept.warm_start_rounds, kept.warm_start_tasks, kept.warm_start_replicas) == (2, 16, 4)
    for budget, frames in ((750, 20), (6_400, 100), (300, 100), (5, 100)):
        fit = fit_warm_start(cfg, budget, frames)
        steps = fit.warm_start_rounds * fit.warm_start_tasks * fit.warm_start_replicas * frames
        assert steps <= max(budget, frames)  # one episode of one replica at least
    fit = fit_warm_start(cfg, 750, 20)  # the ns-3 quick profile: 1 round, 9 tasks, 4 replicas
    assert (fit.warm_start_rounds, fit.warm_start_tasks, fit.warm_start_replicas) == (1, 9, 4)
