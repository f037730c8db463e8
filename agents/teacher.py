"""The teacher term of RL (DAgger style): ``teacher_coef`` x the negative log-likelihood of
the teacher heuristic's action at the states RL visits.

The labels are computed after a rollout by replaying the heuristic over the stored
observation sequence in time order (it reads only the observations and masks, so an
adaptive heuristic rebuilds its per-deployment memory on the way), restarted where the
rollout's jobs start. For a deterministic teacher the NLL is KL(teacher || policy) at that
state (agents.warm_start). With a feedback memory (agents.feedback) the stored
observations are the student's transformed ones, so the teacher must be memoryless: it then
acts on the student's effective CQI (greedy max-SINR on it is greedy on the measured SINR).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.policy_gradient import CreditKind, MaskedMultiCategorical, masked_mean
from bridge.config import ConfigError
from bridge.layout import ObservationLayout


def check_teacher(config: Any) -> None:
    """Refuse a teacher term without a teacher, or an adaptive teacher replayed on
    observations its own memory cannot read (``config`` is an agent config)."""
    coef = getattr(config, "teacher_coef", 0.0)
    if coef <= 0:
        return
    where = config._section_name
    if config.warm_start == "none":
        raise ConfigError(f"{where}.teacher_coef={coef} needs a teacher: set "
                          f"{where}.warm_start to a heuristic (it is 'none') or "
                          f"{where}.teacher_coef=0")
    from agents.heuristics import HEURISTICS

    if config.feedback_memory != "none" and HEURISTICS[config.warm_start].adaptive:
        raise ConfigError(
            f"{where}.teacher_coef={coef} with {where}.feedback_memory="
            f"{config.feedback_memory!r}: the stored observations carry the student's "
            f"memory, which the adaptive teacher {config.warm_start!r} cannot replay; use "
            f"a memoryless teacher (greedy_max_sinr acts on the effective CQI)")


def teacher_labels(config: Any, layout: ObservationLayout, obs: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """The teacher's actions (T, N, B*K) on a stored (T, N, D) observation sequence (with
    its (T, N, B*K, C) masks), replayed in time order from a fresh teacher."""
    from agents.heuristics import HEURISTICS, _ChannelByChannel

    cls = HEURISTICS[config.warm_start]
    heuristic = (cls(layout, channel_hz=config.channel_hz, frame_s=config.frame_s)
                 if issubclass(cls, _ChannelByChannel) else cls(layout))
    obs_np, mask_np = obs.numpy(), mask.numpy()
    if heuristic.stateless:  # every frame on its own: all of them in one batch
        steps, n = obs_np.shape[:2]
        heuristic.reset(steps * n)
        flat = heuristic.act(obs_np.reshape(steps * n, -1),
                             mask_np.reshape(steps * n, *mask_np.shape[2:]))
        return torch.from_numpy(flat.reshape(steps, n, -1))
    heuristic.reset(int(obs.shape[1]))
    return torch.from_numpy(np.stack([heuristic.act(obs_np[t], mask_np[t])
                                      for t in range(obs_np.shape[0])]))


def forced(model: torch.nn.Module, obs: torch.Tensor, static: torch.Tensor,
           prefix: Any) -> torch.Tensor:
    """The network's static logits conditioned on ``prefix`` (sequential allocation), or
    as they are (independent heads)."""
    allocation = getattr(model, "allocation", None)
    return static if allocation is None else allocation.teacher_forced(obs, static, prefix)


def credited_log_prob(model: torch.nn.Module, obs: torch.Tensor, static: torch.Tensor,
                      mask: torch.Tensor, prefix: Any, action: torch.Tensor,
                      credit: CreditKind) -> torch.Tensor:
    """The stored ``action``'s log-probability under the network's ``static`` logits
    (teacher-forced on ``prefix``): joint (...), or per base station (..., B). The rollouts
    store only the joint one, so a per-base-station update recomputes the behaviour
    policy's with this before its first step."""
    dist = MaskedMultiCategorical(forced(model, obs, static, prefix), mask)
    return dist.credited_log_prob(action, credit, model.layout.n_bs)


def teacher_loss(model: torch.nn.Module, obs: torch.Tensor, static: torch.Tensor,
                 mask: torch.Tensor, prefix: Any, action: torch.Tensor,
                 valid: torch.Tensor) -> torch.Tensor:
    """Mean NLL of the teacher's ``action`` over the samples with ``valid`` 1."""
    dist = MaskedMultiCategorical(forced(model, obs, static, prefix), mask)
    return masked_mean(-dist.log_prob(action), valid)
