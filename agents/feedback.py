"""Feedback memory: what the SINR measurements of earlier frames taught about a deployment,
as an agent-side feature.

The observation carries, per link and channel, the interference-free CQI and the SINR
measured last frame where the link was scheduled (a sentinel elsewhere), so a memoryless
policy forgets a measurement one frame later. The adaptive heuristic
(:class:`agents.heuristics.GreedyMeasuredSinr`) keeps a running estimate of the interference
penalty CQI - SINR per (environment, link, channel); :class:`PenaltyTracker` is that
estimate, shared by the heuristic and the agents.

With ``feedback_memory="penalty"`` an agent's network sees the observation with the CQI
field replaced by the *effective* CQI, CQI - penalty (optimistic: the CQI itself until the
pair has been measured). Every consumer of the CQI then uses it: the scheduling head, and
the allocation bookkeeping, whose capacities (and so the scorer's bytes features) become the
adaptive heuristic's. The measured SINR field is left as it is.

The memory starts empty at the start of a rollout job and is kept over the job's episodes:
a recurrent agent's trial (the K + 1 episodes of a held-out deployment) shares one, a
memoryless agent's one-episode job starts its own (the heuristic learns a hidden interferer
within ~10 frames of a 100-frame episode, so the loss is small: RESULTS.md). It is a
deterministic function of the observation sequence, so the stored (transformed)
observations are exactly what the policy saw, and an update or teacher forcing needs
nothing else.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from bridge.layout import LAST_SINR_SENTINEL, SNR_SCALE_DB, ObservationLayout

FeedbackKind = Literal["none", "penalty"]
FEEDBACK_KINDS: tuple[str, ...] = ("none", "penalty")


class PenaltyTracker:
    """Per-(environment, link, channel) interference penalty in dB: a running mean over the
    first ``window`` measurements, then an exponential mean of time constant ``window``
    measurements; 0 until measured. A measurement is a scheduled link's SINR (the
    observation's ``sinr`` field above the sentinel) against the same row's CQI."""

    def __init__(self, layout: ObservationLayout, num_envs: int, window: float = 8.0) -> None:
        self.layout = layout
        self.window = window
        shape = (num_envs, layout.n_links, layout.n_channels)
        self.penalty_db = np.zeros(shape)
        self.measured = np.zeros(shape, dtype=np.int64)

    def update(self, fields: dict[str, np.ndarray]) -> np.ndarray:
        """Learn from one frame's split observation (``layout.split``); returns the
        penalty (N, L, K) dB after it."""
        sinr = fields["sinr"].astype(np.float64)
        hit = (sinr > LAST_SINR_SENTINEL) & (fields["valid"] > 0)
        penalty = np.maximum((fields["cqi"] - sinr) * SNR_SCALE_DB, 0.0)
        self.measured += hit
        step = np.maximum(1.0 / np.maximum(self.measured, 1), 1.0 / self.window)
        self.penalty_db = np.where(hit, self.penalty_db + step * (penalty - self.penalty_db),
                                   self.penalty_db)
        return self.penalty_db


class FeedbackMemory:
    """The online transform of one batch of N environments: :meth:`__call__` takes the raw
    observation (N, D) of the next frame and returns what the network sees."""

    def __init__(self, layout: ObservationLayout, num_envs: int, kind: str = "penalty") -> None:
        if kind not in FEEDBACK_KINDS or kind == "none":
            raise ValueError(f"feedback_memory={kind!r}: expected 'penalty' here "
                             f"(one of {list(FEEDBACK_KINDS)} in a config)")
        self.layout = layout
        self.tracker = PenaltyTracker(layout, num_envs)
        self._cqi = layout.slices()["cqi"]

    def copy(self) -> FeedbackMemory:
        out = FeedbackMemory(self.layout, self.tracker.penalty_db.shape[0])
        out.tracker.penalty_db = self.tracker.penalty_db.copy()
        out.tracker.measured = self.tracker.measured.copy()
        return out

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        raw = np.asarray(obs)
        penalty = self.tracker.update(self.layout.split(raw))
        out = np.array(raw, dtype=np.float32, copy=True)
        lay = self.layout
        rows = out[..., : lay.n_links * lay.link_features].reshape(
            *out.shape[:-1], lay.n_links, lay.link_features)
        valid = rows[..., :1] > 0
        eff = rows[..., self._cqi] - (penalty / SNR_SCALE_DB).astype(np.float32)
        rows[..., self._cqi] = np.where(valid, eff, rows[..., self._cqi])
        return out


def step_view(kind: str, layout: ObservationLayout, obs: np.ndarray,
              memory: FeedbackMemory | None) -> tuple[np.ndarray, FeedbackMemory | None]:
    """One decision of an agent's ``act``: the observation its network reads and the memory
    to pass with the next frame (``memory`` None at a deployment's start). The given
    memory is not changed, so acting twice on one frame (sampled, then the mode) sees it
    once."""
    if kind == "none":
        return obs, None
    mem = FeedbackMemory(layout, len(obs), kind) if memory is None else memory.copy()
    return mem(obs), mem


def transform_sequence(obs: np.ndarray, layout: ObservationLayout, kind: str = "penalty"
                       ) -> np.ndarray:
    """The transform of a whole (T, N, D) observation sequence that starts where the memory
    starts (a rollout job, a teacher's round), in time order."""
    memory = FeedbackMemory(layout, obs.shape[1], kind)
    return np.stack([memory(obs[t]) for t in range(obs.shape[0])])


class FeedbackEnv:
    """A vector environment whose observations (from ``reset``, ``step`` and the final
    observation of an autoreset) pass through a :class:`FeedbackMemory` started at every
    ``reset``. Everything else is the wrapped environment's."""

    def __init__(self, env: Any, kind: str = "penalty") -> None:
        self.env = env
        self.kind = kind
        self.memory: FeedbackMemory | None = None

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.memory = FeedbackMemory(self.env.layout, obs.shape[0], self.kind)
        return self.memory(obs), info

    def step(self, action: np.ndarray) -> tuple[Any, ...]:
        assert self.memory is not None, "reset the environment first"
        obs, *rest = self.env.step(action)
        return (self.memory(obs), *rest)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)


def wrap(env: Any, kind: str) -> Any:
    """``env`` with the feedback memory ``kind`` applied ("none": ``env`` itself)."""
    if kind not in FEEDBACK_KINDS:
        raise ValueError(f"feedback_memory={kind!r}: expected one of {list(FEEDBACK_KINDS)}")
    return env if kind == "none" else FeedbackEnv(env, kind)
