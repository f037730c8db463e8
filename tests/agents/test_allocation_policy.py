"""The sequential allocation policy: exact joint log-probabilities and entropies (against a
brute-force enumeration), masks and half duplex never violated, reproducible sampling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from agents.allocation_policy import joint_log_prob_table, sample_action
from agents.networks import ActorCritic
from agents.policy_gradient import MaskedMultiCategorical
from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv
from bridge.layout import ObservationLayout, half_duplex_conflicts


def _model(layout: ObservationLayout, coverage: str = "soft", seed: int = 0) -> ActorCritic:
    torch.manual_seed(seed)
    model = ActorCritic(layout, allocation="sequential", coverage=coverage)
    with torch.no_grad():  # sharper than the near-uniform init, so the test has teeth
        for p in model.head.parameters():
            p.mul_(50.0)
    return model


def _tiny_observation(tiny_config: ScenarioConfig) -> tuple[torch.Tensor, torch.Tensor, Any]:
    env = IABVectorEnv(2, tiny_config)
    obs, info = env.reset(seed=3)
    for _ in range(3):  # some backlog and measured SINR
        obs, _, _, _, info = env.step(np.zeros((2, env.layout.action_size), dtype=np.int64))
    env.close()
    # the environment whose IAB node serves UEs (so half duplex matters), first
    order = np.argsort(-info["action_mask"][:, -1].sum(-1), kind="stable")
    assert info["action_mask"][order[0], -1].sum() > 1
    return (torch.as_tensor(obs[order], dtype=torch.float32),
            torch.as_tensor(info["action_mask"][order], dtype=torch.bool), env.layout)



@pytest.mark.parametrize("coverage", ["soft", "hard"])
def test_joint_log_prob_is_exact(tiny_config: ScenarioConfig, coverage: str) -> None:
    obs, mask, layout = _tiny_observation(tiny_config)
    model = _model(layout, coverage)
    with torch.no_grad():
        actions, logp = joint_log_prob_table(model, obs[:1], mask[:1])
        probs = logp.exp()
        # a distribution over joint actions: sums to one over all of them
        assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
        # the sampled log-prob (head by head) is the teacher-forced one
        torch.manual_seed(1)
        static, _, _ = model(obs[:1].expand(64, -1))
        act, lp = sample_action(model, obs[:1].expand(64, -1), mask[:1].expand(64, -1, -1),
                                static)
        table = {tuple(a): float(v) for a, v in zip(actions.tolist(), logp)}
        for a, v in zip(act.tolist(), lp.tolist()):
            assert v == pytest.approx(table[tuple(a)], abs=1e-4)
        # half-duplex-violating actions have probability 0
        hd = half_duplex_conflicts(actions.reshape(len(actions), layout.n_bs,
                                                   layout.n_channels) - 1).any(axis=(1, 2))
        assert hd.any() and probs[torch.from_numpy(hd)].max().item() == 0.0
        # entropy: expectation of the chain-rule sum over heads = the joint entropy
        tf_logits, _, _ = model(obs[:1].expand(len(actions), -1),
                                prefix=torch.from_numpy(actions))
        chain = MaskedMultiCategorical(tf_logits, mask[:1].expand(len(actions), -1, -1)
                                       ).entropy()
        joint = -(probs * logp.clamp_min(-80)).sum()
        assert (probs * chain).sum().item() == pytest.approx(joint.item(), rel=1e-4, abs=1e-5)
        # and the mode is the head-by-head argmax: an allowed action
        mode, _ = sample_action(model, obs[:1], mask[:1], static[:1], deterministic=True)
        assert tuple(mode[0].tolist()) in table


def test_samples_never_violate_masks_or_half_duplex(small_config: ScenarioConfig) -> None:
    env = IABVectorEnv(16, small_config)
    obs, info = env.reset(seed=11)
    layout = env.layout
    model = _model(layout)
    with torch.no_grad():
        for _ in range(8):
            obs_t = torch.as_tensor(obs, dtype=torch.float32)
            mask_t = torch.as_tensor(info["action_mask"], dtype=torch.bool)
            logits, _, _ = model(obs_t)
            action, _ = sample_action(model, obs_t, mask_t, logits)
            chosen = mask_t.gather(-1, action.unsqueeze(-1)).squeeze(-1)
            assert chosen.all()
            a = action.numpy().reshape(16, layout.n_bs, layout.n_channels)
            assert not half_duplex_conflicts(a - 1).any()
            obs, _, _, _, info = env.step(action.numpy())
            assert (info.get("half_duplex_conflicts", np.zeros(1)) == 0).all()
    env.close()


def test_counter_noise_makes_sampling_reproducible(small_config: ScenarioConfig) -> None:
    env = IABVectorEnv(4, small_config)
    obs, info = env.reset(seed=2)
    env.close()
    model = _model(env.layout)
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    mask_t = torch.as_tensor(info["action_mask"], dtype=torch.bool)
    u = torch.rand(4, env.layout.action_size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits, _, _ = model(obs_t)
        a1, l1 = sample_action(model, obs_t, mask_t, logits, u)
        torch.manual_seed(123)  # the global generator plays no part
        a2, l2 = sample_action(model, obs_t, mask_t, logits, u)
        a3, _ = sample_action(model, obs_t, mask_t, logits, 1 - u)
    assert torch.equal(a1, a2) and torch.equal(l1, l2)
    assert not torch.equal(a1, a3)


def test_rollout_jobs_with_sequential_policy_are_deterministic(
        small_config: ScenarioConfig) -> None:
    from agents.rollouts import EnvSlot, LocalRollouts, PolicySnapshot
    from bridge.tasks import TaskDistribution

    model = _model(ObservationLayout.from_config(small_config))
    tasks = TaskDistribution.for_config(small_config)
    slots = [EnvSlot(t, 7, 0, 100 + i) for i, t in enumerate(tasks.sample("train", 1, 4))]

    def run() -> Any:
        with LocalRollouts(lambda n: IABVectorEnv(n, small_config), small_config,
                           envs_per_job=2) as rollouts:
            return rollouts.collect([(slots, PolicySnapshot.capture(model))])

    r1, r2 = run(), run()
    assert torch.equal(r1.action, r2.action)
    torch.testing.assert_close(r1.logprob, r2.logprob)
    # the stored log-probs are what teacher forcing recomputes
    with torch.no_grad():
        obs = r1.obs.reshape(-1, r1.obs.shape[-1])
        action = r1.action.reshape(-1, r1.action.shape[-1])
        logits, _, _ = model(obs, prefix=action)
        lp = MaskedMultiCategorical(logits, r1.mask.reshape(-1, *r1.mask.shape[2:])
                                    ).log_prob(action)
    valid = r1.valid.reshape(-1) > 0
    torch.testing.assert_close(lp[valid], r1.logprob.reshape(-1)[valid], atol=1e-4, rtol=1e-4)


def test_prepared_teacher_forcing_indexes_like_the_action(small_config: ScenarioConfig
                                                          ) -> None:
    """An update replays a batch once and indexes it per minibatch: the logits are those of
    replaying the minibatch itself, on flat and on time-major (T, N) batches."""
    from agents.allocation_policy import teacher_forcing

    env = IABVectorEnv(8, small_config)
    obs, info = env.reset(seed=5)
    model = _model(env.layout)
    frames_obs, frames_act = [], []
    with torch.no_grad():
        for _ in range(3):
            obs_t = torch.as_tensor(obs, dtype=torch.float32)
            logits, _, _ = model(obs_t)
            action, _ = sample_action(model, obs_t, torch.as_tensor(info["action_mask"]),
                                      logits)
            frames_obs.append(obs_t)
            frames_act.append(action)
            obs, _, _, _, info = env.step(action.numpy())
        env.close()
        seq_obs, seq_act = torch.stack(frames_obs), torch.stack(frames_act)  # (T, N, ...)
        flat_obs, flat_act = seq_obs.reshape(24, -1), seq_act.reshape(24, -1)
        idx = torch.tensor([3, 17, 5, 20])
        prepared = teacher_forcing(model, flat_obs, flat_act)
        direct, _, _ = model(flat_obs[idx], prefix=flat_act[idx])
        cached, _, _ = model(flat_obs[idx], prefix=prepared[idx])
        assert torch.equal(direct, cached)
        envs = torch.tensor([6, 1])
        prepared_seq = teacher_forcing(model, seq_obs, seq_act)
        direct, _, _ = model(seq_obs[:, envs], prefix=seq_act[:, envs])
        cached, _, _ = model(seq_obs[:, envs], prefix=prepared_seq[:, envs])
        assert torch.equal(direct, cached)
