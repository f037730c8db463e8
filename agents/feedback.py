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

With ``feedback_memory="penalty_ordered"`` the view also puts the channels in the adaptive
heuristic's order, the most interfered (largest mean penalty over the deployment's links)
first: the sequential policy decides channel slot 0 first, so the most interfered channels
go to the links they hurt least, as the heuristic does (without that order its SINR
violations rise 0.311 -> 0.333 and its throughput falls 1.9%: RESULTS.md). Every
channel-indexed field is permuted (each link's CQI and SINR, the incumbent flags), and the
action mask with it; the policy's action, decided per channel slot, is mapped back to the
channels before it reaches the environment. The order is recomputed every frame, so a
recurrent agent's previous action (its history input) is in the previous frame's order.

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

FeedbackKind = Literal["none", "penalty", "penalty_ordered", "penalty_ordered_debounced"]
FEEDBACK_KINDS: tuple[str, ...] = ("none", "penalty", "penalty_ordered",
                                   "penalty_ordered_debounced")


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


class SensingDebounce:
    """What the adaptive heuristic learns about a deployment's incumbent sensing. An
    incumbent is persistent, so a channel reported busy, free and busy again in consecutive
    reports was most likely missed in between. Once such gaps make up more than
    ``debounce_above`` of an environment's busy reports, a channel reported busy in the
    previous report is treated as busy for one more frame (:meth:`update` returns those
    channels). The report history breaks where an episode starts."""

    def __init__(self, num_envs: int, debounce_above: float = 0.05) -> None:
        self.debounce_above = debounce_above
        self.reports: list[np.ndarray] = []  # the last two incumbent reports, (N, K) each
        self.gaps = np.zeros(num_envs)
        self.busy_reports = np.zeros(num_envs)

    def copy(self) -> SensingDebounce:
        out = SensingDebounce(len(self.gaps), self.debounce_above)
        out.reports = [r.copy() for r in self.reports]
        out.gaps, out.busy_reports = self.gaps.copy(), self.busy_reports.copy()
        return out

    def update(self, fields: dict[str, np.ndarray]) -> np.ndarray:
        """Learn from one frame's split observation (``layout.split``); returns the (N, K)
        channels to treat as busy beyond this frame's report."""
        report = fields["incumbent"] > 0.5
        first = fields["time_frac"] <= 0.0  # an episode starts: the report history breaks
        self.reports = [r & ~first[:, None] for r in self.reports]
        if len(self.reports) == 2:
            before, last = self.reports
            self.gaps += (before & ~last & report).sum(axis=1)
            self.busy_reports += report.sum(axis=1)
        prev = self.reports[-1] if self.reports else np.zeros_like(report)
        self.reports = [*self.reports[-1:], report]
        debounce = self.gaps > self.debounce_above * np.maximum(self.busy_reports, 1.0)
        return prev & ~report & debounce[:, None]


def interference_order(penalty_db: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(N, K) channels by decreasing mean penalty over each deployment's links (ties in
    channel order): the adaptive heuristic's visiting order. ``penalty_db`` (N, L, K),
    ``valid`` (N, L) bool."""
    mean_penalty = (penalty_db * valid[..., None]).sum(axis=1)
    return np.argsort(-mean_penalty, axis=1, kind="stable")


class FeedbackMemory:
    """The online transform of one batch of N environments: :meth:`__call__` takes the raw
    observation (N, D) of the next frame and returns what the network sees. With the
    ``penalty_ordered`` kind, :attr:`order` (N, K) is the channel in each slot of that view
    (:meth:`permute_mask`, :meth:`to_env` and :meth:`to_view` map masks and actions);
    otherwise it is None and they return their input."""

    def __init__(self, layout: ObservationLayout, num_envs: int, kind: str = "penalty") -> None:
        if kind not in FEEDBACK_KINDS or kind == "none":
            raise ValueError(f"feedback_memory={kind!r}: expected one of "
                             f"{[k for k in FEEDBACK_KINDS if k != 'none']} here (or 'none' "
                             "in a config)")
        self.layout = layout
        self.kind = kind
        self.tracker = PenaltyTracker(layout, num_envs)
        self._cqi = layout.slices()["cqi"]
        self._sinr = layout.slices()["sinr"]
        self.order: np.ndarray | None = None
        # "penalty_ordered_debounced": the adaptive heuristic's sensing debounce too; the
        # channels it holds busy this frame, (N, K) in the environment's order
        self.sensing = SensingDebounce(num_envs) if kind.endswith("_debounced") else None
        self.suspect: np.ndarray | None = None

    def copy(self) -> FeedbackMemory:
        out = FeedbackMemory(self.layout, self.tracker.penalty_db.shape[0], self.kind)
        out.tracker.penalty_db = self.tracker.penalty_db.copy()
        out.tracker.measured = self.tracker.measured.copy()
        out.order = None if self.order is None else self.order.copy()
        out.sensing = None if self.sensing is None else self.sensing.copy()
        out.suspect = None if self.suspect is None else self.suspect.copy()
        return out

    @property
    def changes_mask(self) -> bool:
        """Whether the view's action mask differs from the environment's."""
        return self.order is not None or self.suspect is not None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        raw = np.asarray(obs)
        fields = self.layout.split(raw)
        penalty = self.tracker.update(fields)
        if self.sensing is not None:
            self.suspect = self.sensing.update(fields)
        out = np.array(raw, dtype=np.float32, copy=True)
        lay = self.layout
        rows = out[..., : lay.n_links * lay.link_features].reshape(
            *out.shape[:-1], lay.n_links, lay.link_features)
        valid = rows[..., :1] > 0
        eff = rows[..., self._cqi] - (penalty / SNR_SCALE_DB).astype(np.float32)
        rows[..., self._cqi] = np.where(valid, eff, rows[..., self._cqi])
        if self.kind.startswith("penalty_ordered"):
            self.order = interference_order(penalty, valid[..., 0])
            slot = self.order[:, None, :]
            for cols in (self._cqi, self._sinr):
                rows[..., cols] = np.take_along_axis(rows[..., cols], slot, axis=-1)
            start = lay.n_links * lay.link_features
            out[:, start:start + lay.n_channels] = np.take_along_axis(
                out[:, start:start + lay.n_channels], self.order, axis=1)
        return out

    def _grid(self, x: np.ndarray) -> np.ndarray:
        lay = self.layout
        return np.asarray(x).reshape(len(x), lay.n_bs, lay.n_channels, *np.shape(x)[2:])

    def permute_mask(self, mask: np.ndarray) -> np.ndarray:
        """The action mask (N, B*K, C) of this frame's view: links blocked on the channels
        the sensing debounce holds busy (with that kind), in the view's channel order."""
        if self.suspect is not None:
            mask = self.layout.idle_only_on(mask, self.suspect)
        if self.order is None:
            return mask
        slot = self.order[:, None, :, None]
        return np.take_along_axis(self._grid(mask), slot, axis=2).reshape(np.shape(mask))

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """A view action (N, B*K) (head b*K + j decides slot j) as the environment's action
        (head b*K + k decides channel k)."""
        if self.order is None:
            return action
        out = np.empty_like(self._grid(action))
        np.put_along_axis(out, self.order[:, None, :], self._grid(action), axis=2)
        return out.reshape(np.shape(action))

    def to_view(self, action: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_env`."""
        if self.order is None:
            return action
        return np.take_along_axis(self._grid(action), self.order[:, None, :],
                                  axis=2).reshape(np.shape(action))


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


def view_mask(memory: FeedbackMemory | None, mask: np.ndarray) -> np.ndarray:
    """An agent's ``act``: the action mask in its view (``memory`` from :func:`step_view`)."""
    return mask if memory is None else memory.permute_mask(mask)


def env_action(memory: FeedbackMemory | None, action: np.ndarray) -> np.ndarray:
    """An agent's ``act``: the view's action as the environment's."""
    return action if memory is None else memory.to_env(action)


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
        return self.memory(obs), self._view_info(info)

    def step(self, action: np.ndarray) -> tuple[Any, ...]:
        assert self.memory is not None, "reset the environment first"
        # the action was decided on the last view: map it back with that view's order
        obs, reward, terminated, truncated, info = self.env.step(
            self.memory.to_env(np.asarray(action)))
        return self.memory(obs), reward, terminated, truncated, self._view_info(info)

    def _view_info(self, info: dict[str, Any]) -> dict[str, Any]:
        """``info`` with the action mask in the view's channel order (a new dict)."""
        assert self.memory is not None
        if not self.memory.changes_mask:
            return info
        return {**info, "action_mask": self.memory.permute_mask(info["action_mask"])}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)


def wrap(env: Any, kind: str) -> Any:
    """``env`` with the feedback memory ``kind`` applied ("none": ``env`` itself)."""
    if kind not in FEEDBACK_KINDS:
        raise ValueError(f"feedback_memory={kind!r}: expected one of {list(FEEDBACK_KINDS)}")
    return env if kind == "none" else FeedbackEnv(env, kind)
