"""Baselines that know what no policy observes: the exhaustive-search upper bound (every
valid allocation of a frame, replayed on the batched core with full knowledge of that frame's
channel and traffic, best one kept) and the per-task oracle (greedy that knows the
deployment's hidden conditions, :class:`HiddenConditionsOracle`).

It is a per-frame (myopic) upper bound: at any state, no policy's frame objective exceeds the
oracle's. It needs the contract's frame-replay capability (``env.frame_replay()``, offered by
the fallback only: it clones the simulator state) and only runs on small configurations, where
enumeration is affordable.
"""

from __future__ import annotations

import itertools

import numpy as np

from agents.heuristics import GreedyMaxSinr, resolve_half_duplex
from bridge.config import ScenarioConfig
from bridge.contract import IABVectorEnvBase
from bridge.fallback.core import BatchedIABCore
from bridge.layout import ObservationLayout, half_duplex_conflicts

MAX_BASE_STATIONS = 2
MAX_CHANNELS = 3
MAX_CANDIDATES = 200_000
OBJECTIVES = ("reward", "throughput")
UPPER_BOUND = "upper_bound"
HIDDEN_ORACLE = "hidden_oracle"


def check_oracle_size(core: BatchedIABCore) -> None:
    """Refuse configurations too large to enumerate, with the numbers that make them so."""
    n_bs = int(core.bs_valid.sum(axis=1).max())
    if n_bs > MAX_BASE_STATIONS or core.K > MAX_CHANNELS:
        raise ValueError(
            f"the exhaustive upper bound enumerates every allocation and is limited to "
            f"{MAX_BASE_STATIONS} base stations x {MAX_CHANNELS} channels; this configuration "
            f"has {n_bs} base stations (topology.n_iab={n_bs - 1}) x {core.K} channels "
            "(radio.n_channels)"
        )


def candidate_actions(core: BatchedIABCore, env: int) -> np.ndarray:
    """All distinct allocations of environment ``env`` that the rules allow, (C, B*K)."""
    mask = core.action_mask()[env]  # (B*K, 1+L)
    choices = [np.flatnonzero(row) for row in mask]
    count = int(np.prod([len(c) for c in choices], dtype=np.float64))
    if count > MAX_CANDIDATES:
        raise ValueError(f"the exhaustive upper bound would enumerate {count} allocations "
                         f"(limit {MAX_CANDIDATES}); reduce topology.n_ue or radio.n_channels")
    cand = np.array(list(itertools.product(*choices)), dtype=np.int64)
    # drop allocations that break half duplex (they are equivalent to one with that IAB
    # transmission idled, which is enumerated too)
    conflict = half_duplex_conflicts(cand.reshape(len(cand), core.B, core.K) - 1)
    return cand[~conflict.any(axis=(1, 2))]


def frame_objective(reward: np.ndarray, info: dict[str, np.ndarray], objective: str
                    ) -> np.ndarray:
    if objective == "reward":
        return reward
    if objective == "throughput":
        return info["delivered_bytes"].astype(np.float64)
    raise ValueError(f"objective={objective!r}: expected one of {OBJECTIVES}")


def best_action(core: BatchedIABCore, env: int, objective: str = "reward"
                ) -> tuple[np.ndarray, float]:
    """The allocation maximising this frame's objective for environment ``env``, and that
    maximum. The core itself is not advanced."""
    check_oracle_size(core)
    cand = candidate_actions(core, env)
    trial = core.take(np.full(len(cand), env, dtype=np.int64))
    reward, info = trial.step(cand)
    value = frame_objective(reward, info, objective)
    best = int(np.argmax(value))
    return cand[best], float(value[best])


class ExhaustiveUpperBound:
    """Policy that plays :func:`best_action` in every environment of a fallback core."""

    name = UPPER_BOUND

    def __init__(self, objective: str = "reward") -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"objective={objective!r}: expected one of {OBJECTIVES}")
        self.objective = objective

    def reset(self, num_envs: int) -> None:
        return None

    def act_on_env(self, env: IABVectorEnvBase) -> np.ndarray:
        """The best allocation of every environment of ``env`` (a vector env whose backend
        supports frame replay; others raise CapabilityUnavailable naming the backend)."""
        return self.act_on_core(env.frame_replay())

    def act_on_core(self, core: BatchedIABCore) -> np.ndarray:
        check_oracle_size(core)
        return np.stack([best_action(core, i, self.objective)[0] for i in range(core.N)])


class HiddenConditionsOracle(GreedyMaxSinr):
    """Per-task oracle: greedy max-SINR that knows the deployment's hidden conditions
    (:class:`bridge.contract.HiddenConditions`, the contract's ``hidden_conditions``
    capability; the fallback offers it, ns-3 raises CapabilityUnavailable).

    It scores every link and channel by the CQI minus the interferer's activity-weighted
    loss at that receiver, visits the interferer's channels first (so they go to the
    receivers it does not reach and the clean channels stay for those it does), and
    schedules only where the incumbent is truly absent (perfect sensing). It knows no
    realisation (not this frame's on/off draw or fading): only what a few episodes of
    measured SINR and collisions identify, so "room to adapt" = oracle / best task-blind
    heuristic."""

    name = HIDDEN_ORACLE

    @classmethod
    def for_config(cls, config: ScenarioConfig) -> HiddenConditionsOracle:
        """The oracle of scenario ``config`` (its layout, channel bandwidth, frame length)."""
        return cls(ObservationLayout.from_config(config),
                   channel_hz=config.radio.channel_bandwidth_hz,
                   frame_s=config.dynamics.frame_s)

    def act_on_env(self, env: IABVectorEnvBase, obs: np.ndarray, mask: np.ndarray
                   ) -> np.ndarray:
        """The oracle's action (N, B*K) for observations ``obs`` and mask ``mask`` of
        ``env``, whose hidden conditions it reads."""
        hidden = env.hidden_conditions()
        obs, mask = np.asarray(obs), np.asarray(mask, dtype=bool)
        lay = self.layout
        order = np.argsort(~hidden.external_channels, axis=1, kind="stable")
        action = self._plan(obs, lay.idle_only_on(mask, hidden.incumbent),
                            hidden.external_loss_db(), order)
        self.frame += 1
        return resolve_half_duplex(action, lay)
