"""The policies of benchmarks.research.hidden_design: adaptive heuristics written for one
candidate hidden condition, structure-aware learners (what a meta-learner would approximate)
and oracles that know the candidate's hidden parameters.

All are greedy channel-by-channel schedulers (:meth:`_ChannelByChannel._plan`) on a learned
per-(environment, link, channel) SINR penalty; they differ in what they learn and from what.
Every one keeps its state over the episodes of a deployment (``reset`` once per deployment),
as :class:`agents.heuristics.GreedyMeasuredSinr` does. Measurements: the observation after
frame t carries frame t's measured SINR of the scheduled links and a CQI from frame t's own
reference signals, so CQI - SINR is exactly frame t's interference penalty (plus a CQI
offset, in the miscalibration candidate).
"""

from __future__ import annotations

import numpy as np

from agents.heuristics import GreedyMaxSinr, GreedyMeasuredSinr
from bridge.layout import LAST_SINR_SENTINEL, SNR_SCALE_DB


class _Learner(GreedyMaxSinr):
    """Shared bookkeeping: the deployment-wide frame clock t (episode x frames + frame, which
    the candidates' time-varying conditions are a function of) and the measurements."""

    adaptive = True
    window = 8.0
    episode_frames = 100

    def reset(self, num_envs: int) -> None:
        super().reset(num_envs)
        self.episode = np.full(num_envs, -1)

    def _clock(self, f: dict[str, np.ndarray]) -> np.ndarray:
        """(N,) the frame this action is for; the measurements are of frame t - 1."""
        first = f["time_frac"] <= 0.0
        self.episode = self.episode + first
        return self.episode * self.episode_frames + np.rint(
            f["time_frac"] * self.episode_frames).astype(np.int64)

    @staticmethod
    def _measured(f: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(N, L, K) where measured, and CQI - SINR there (dB, signed)."""
        sinr = f["sinr"].astype(np.float64)
        hit = (sinr > LAST_SINR_SENTINEL) & (f["valid"] > 0)
        return hit, (f["cqi"] - sinr) * SNR_SCALE_DB

    def _ema(self, table: np.ndarray, count: np.ndarray, hit: np.ndarray,
             value: np.ndarray) -> None:
        """Running mean over the first ``window`` measurements, then exponential (in place)."""
        count += hit
        step = np.maximum(1.0 / np.maximum(count, 1), 1.0 / self.window)
        np.copyto(table, table + step * (value - table), where=hit)

    def _greedy(self, obs: np.ndarray, mask: np.ndarray, penalty: np.ndarray,
                valid: np.ndarray, order_by: np.ndarray | None = None) -> np.ndarray:
        """Greedy on CQI - ``penalty``, the channels with the largest mean ``order_by``
        (default: the penalty) over valid links first."""
        key = penalty if order_by is None else order_by
        mean = (key * valid[..., None]).sum(axis=1)
        return self._plan(obs, mask, penalty, np.argsort(-mean, axis=1, kind="stable"))


# ------------------------------------------------------------------ periodic neighbour
class PhaseTables(_Learner):
    """Engineer's period detector, per pair: for every candidate period P in 1..``max_period``
    a penalty table per (link, channel, t mod P); each frame scores every P by how well its
    table predicted the new measurements, and plans with the smallest P whose mean squared
    error is within 10% of the best (P = 1 is greedy_measured_sinr without the sensing part)."""

    name = "phase_tables"
    max_period = 8

    def reset(self, num_envs: int) -> None:
        super().reset(num_envs)
        lay = self.layout
        shape = (num_envs, lay.n_links, lay.n_channels)
        self.tables = [np.zeros((*shape, p)) for p in range(1, self.max_period + 1)]
        self.counts = [np.zeros((*shape, p), dtype=np.int64) for p in
                       range(1, self.max_period + 1)]
        self.err = np.zeros((num_envs, self.max_period))
        self.n_err = np.zeros((num_envs, self.max_period))

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        f = self._fields(obs)
        t = self._clock(f)
        hit, pen = self._measured(f)
        pen = np.maximum(pen, 0.0)
        for i, (table, count) in enumerate(zip(self.tables, self.counts)):
            ph = ((t - 1) % (i + 1))[:, None, None, None]
            val = np.take_along_axis(table, ph, axis=3)[..., 0]
            cnt = np.take_along_axis(count, ph, axis=3)[..., 0]
            scored = hit & (cnt > 0)
            self.err[:, i] += (((pen - val) ** 2) * scored).sum(axis=(1, 2))
            self.n_err[:, i] += scored.sum(axis=(1, 2))
            self._ema(val, cnt, hit, pen)
            np.put_along_axis(table, ph, val[..., None], axis=3)
            np.put_along_axis(count, ph, cnt[..., None], axis=3)
        mse = self.err / np.maximum(self.n_err, 1)
        ok = (mse <= 1.1 * mse.min(axis=1, keepdims=True)) & (self.n_err >= 20)
        ok[:, 0] |= ~ok.any(axis=1)
        period = ok.argmax(axis=1)  # index of the smallest acceptable P
        penalty = self.tables[0][..., 0].copy()
        for i, (table, count) in enumerate(zip(self.tables, self.counts)):
            ph = (t % (i + 1))[:, None, None, None]
            val = np.take_along_axis(table, ph, axis=3)[..., 0]
            cnt = np.take_along_axis(count, ph, axis=3)[..., 0]
            use = (period == i)[:, None, None] & (cnt > 0)
            np.copyto(penalty, val, where=use)
        return self._greedy(obs, mask, penalty, f["valid"][..., 0] > 0)


def _patterns(max_period: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (period, on frames, phase) with 1 <= on < period <= max_period."""
    rows = [(p, on, ph) for p in range(2, max_period + 1) for on in range(1, p)
            for ph in range(p)]
    p, on, ph = (np.array(c, dtype=np.int64) for c in zip(*rows))
    return p, on, ph


class PatternFit(_Learner):
    """Structure-aware learner for the periodic neighbour: it knows the model (one on/off state
    per frame shared by all links and channels, periodic with unknown period, duty and phase).
    Each frame's measurements vote on whether the neighbour was on (the mean excess of the
    measured penalties over each pair's long-run mean); every pattern is scored by its
    correlation with those votes; the best one labels frames, and the penalty is learned per
    (link, channel) separately for on and off frames (on: the long-run mean until measured;
    off: 0, optimistic)."""

    name = "pattern_fit"
    max_period = 8

    def reset(self, num_envs: int) -> None:
        super().reset(num_envs)
        lay = self.layout
        shape = (num_envs, lay.n_links, lay.n_channels)
        self.mean, self.n_mean = np.zeros(shape), np.zeros(shape, dtype=np.int64)
        self.on_pen, self.n_on = np.zeros(shape), np.zeros(shape, dtype=np.int64)
        self.off_pen, self.n_off = np.zeros(shape), np.zeros(shape, dtype=np.int64)
        self.p, self.on, self.ph = _patterns(self.max_period)
        self.score = np.zeros((num_envs, len(self.p)))

    def _label(self, t: np.ndarray) -> np.ndarray:
        """(N,) whether the best-scoring pattern has the neighbour on in frame t."""
        best = self.score.argmax(axis=1)
        return (t + self.ph[best]) % self.p[best] < self.on[best]

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        f = self._fields(obs)
        t = self._clock(f)
        hit, pen = self._measured(f)
        pen = np.maximum(pen, 0.0)
        known = hit & (self.n_mean > 0)
        vote = ((pen - self.mean) * known).sum(axis=(1, 2)) / np.maximum(
            known.sum(axis=(1, 2)), 1)
        prev = t - 1
        pred = (prev[:, None] + self.ph) % self.p < self.on  # (N, patterns)
        self.score += np.where((prev >= 0)[:, None], vote[:, None] * (2 * pred - 1), 0.0)
        # the long-run mean: a plain running mean
        self.n_mean += hit
        np.copyto(self.mean, self.mean + (pen - self.mean) / np.maximum(self.n_mean, 1),
                  where=hit)
        was_on = self._label(prev)[:, None, None]
        self._ema(self.on_pen, self.n_on, hit & was_on, pen)
        self._ema(self.off_pen, self.n_off, hit & ~was_on, pen)
        now_on = self._label(t)[:, None, None]
        confident = (self.score.max(axis=1) > 0)[:, None, None]
        on_pen = np.where(self.n_on > 0, self.on_pen, self.mean)
        off_pen = np.where(self.n_off > 0, self.off_pen, 0.0)
        penalty = np.where(confident, np.where(now_on, on_pen, off_pen), self.mean)
        return self._greedy(obs, mask, penalty, f["valid"][..., 0] > 0)


class PhaseTables24(PhaseTables):
    """:class:`PhaseTables` up to period 24 (for the long hopping sequences)."""

    name = "phase_tables_24"
    max_period = 24


# ------------------------------------------------------------------ hopping neighbour
class _BlockLearner(_Learner):
    """Learners that label every (frame, channel) hit or clean: the penalty is learned per
    (link, channel) on clean channels (own-network interference; 0, optimistic, until
    measured) and per link, pooled over channels, on hit ones (the interferer's power is the
    same on all its channels; the long-run mean until measured). Each frame, channel k's
    vote is the mean excess of its measured penalties over each pair's long-run mean:
    positive when the interferer was on it. Subclasses turn votes into labels."""

    def reset(self, num_envs: int) -> None:
        super().reset(num_envs)
        lay = self.layout
        shape = (num_envs, lay.n_links, lay.n_channels)
        self.mean, self.n_mean = np.zeros(shape), np.zeros(shape, dtype=np.int64)
        self.clean, self.n_clean = np.zeros(shape), np.zeros(shape, dtype=np.int64)
        self.hit_pen = np.zeros((num_envs, lay.n_links))
        self.n_hit = np.zeros((num_envs, lay.n_links), dtype=np.int64)

    def _labels(self, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _observe(self, t: np.ndarray, vote: np.ndarray, has: np.ndarray) -> None:
        raise NotImplementedError

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        f = self._fields(obs)
        t = self._clock(f)
        hit, pen = self._measured(f)
        pen = np.maximum(pen, 0.0)
        known = hit & (self.n_mean > 0)
        has = known.any(axis=1) & (t - 1 >= 0)[:, None]  # (N, K)
        vote = ((pen - self.mean) * known).sum(axis=1) / np.maximum(known.sum(axis=1), 1)
        self._observe(t - 1, vote, has)
        self.n_mean += hit
        np.copyto(self.mean, self.mean + (pen - self.mean) / np.maximum(self.n_mean, 1),
                  where=hit)
        was = self._labels(t - 1)[:, None, :]
        self._ema(self.clean, self.n_clean, hit & ~was, pen)
        on = hit & was
        n_on = on.sum(axis=2)
        mean_on = (pen * on).sum(axis=2) / np.maximum(n_on, 1)
        self._ema(self.hit_pen, self.n_hit, n_on > 0, mean_on)
        now = self._labels(t)[:, None, :]
        hit_pen = np.where(self.n_hit > 0, self.hit_pen, 0.0)[..., None]
        hit_pen = np.where(self.n_hit[..., None] > 0, hit_pen, self.mean)
        clean = np.where(self.n_clean > 0, self.clean, 0.0)
        penalty = np.where(now, np.maximum(hit_pen, clean), clean)
        return self._greedy(obs, mask, penalty, f["valid"][..., 0] > 0)


class LastFrame(_BlockLearner):
    """Engineer's tracker: a channel whose vote was positive last frame is hit now (the
    last label is kept for a channel nothing was measured on)."""

    name = "last_frame"

    def reset(self, num_envs: int) -> None:
        super().reset(num_envs)
        self.label = np.zeros((num_envs, self.layout.n_channels), dtype=bool)
        self.label_t = np.full(num_envs, -10)

    def _observe(self, t: np.ndarray, vote: np.ndarray, has: np.ndarray) -> None:
        self.label = np.where(has, vote > 0, self.label)
        self.label_t = t

    def _labels(self, t: np.ndarray) -> np.ndarray:
        return self.label


class HopFit(_BlockLearner):
    """Structure-aware learner for a hopping neighbour: it knows the hit channels repeat with
    some period P <= ``max_period``. Votes are accumulated per (P, t mod P, channel); the
    period is the smallest whose accumulated votes are within 10% of the most coherent
    (sum of |votes|: a wrong period averages hits and misses away), and a channel is hit at
    phase t mod P where its accumulated vote is positive."""

    name = "hop_fit"
    max_period = 24

    def reset(self, num_envs: int) -> None:
        super().reset(num_envs)
        k = self.layout.n_channels
        self.votes = [np.zeros((num_envs, p, k)) for p in range(1, self.max_period + 1)]

    def _observe(self, t: np.ndarray, vote: np.ndarray, has: np.ndarray) -> None:
        rows = np.arange(len(t))
        for i, v in enumerate(self.votes):
            v[rows, t % (i + 1)] += np.where(has, vote, 0.0)

    def _labels(self, t: np.ndarray) -> np.ndarray:
        rows = np.arange(len(t))
        score = np.stack([np.abs(v).sum(axis=(1, 2)) for v in self.votes], axis=1)
        ok = score >= 0.9 * score.max(axis=1, keepdims=True)
        period = ok.argmax(axis=1)
        out = np.zeros((len(t), self.layout.n_channels), dtype=bool)
        for i, v in enumerate(self.votes):
            sel = period == i
            if sel.any():
                out[sel] = v[rows[sel], t[sel] % (i + 1)] > 0
        return out


# ------------------------------------------------------------------ moving neighbour
class ForgettingMeasuredSinr(GreedyMeasuredSinr):
    """greedy_measured_sinr whose penalties of unmeasured pairs decay toward 0 (time
    constant ``forget`` frames), so pairs it learned to avoid are retried once the
    interference may have moved: the engineer's fix for a non-stationary neighbour."""

    name = "measured_sinr_forgetting"
    forget = 30.0

    def _learn_penalty(self, f: dict[str, np.ndarray]) -> None:
        super()._learn_penalty(f)
        sinr = f["sinr"].astype(np.float64)
        unmeasured = ~((sinr > LAST_SINR_SENTINEL) & (f["valid"] > 0))
        self.penalty_db = np.where(unmeasured, self.penalty_db * (1 - 1 / self.forget),
                                   self.penalty_db)


# ------------------------------------------------------------------ CQI miscalibration
class OllaUcb(_Learner):
    """Outer-loop link adaptation with optimism, the engineer's answer to miscalibrated CQI:
    a signed penalty CQI - SINR per (link, channel) (so under-reporting is learned too), a
    per-link pooled one for the link's unmeasured channels, and a UCB bonus of
    ``bonus_db`` / sqrt(1 + measurements of the link) taken off the penalty so rarely
    scheduled links are tried."""

    name = "olla_ucb"
    bonus_db = 6.0

    def reset(self, num_envs: int) -> None:
        super().reset(num_envs)
        lay = self.layout
        self.pair = np.zeros((num_envs, lay.n_links, lay.n_channels))
        self.n_pair = np.zeros_like(self.pair, dtype=np.int64)
        self.link_sum = np.zeros((num_envs, lay.n_links))
        self.n_link = np.zeros((num_envs, lay.n_links))

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        f = self._fields(obs)
        self._clock(f)
        hit, pen = self._measured(f)
        self._ema(self.pair, self.n_pair, hit, pen)
        self.link_sum += (pen * hit).sum(axis=2)
        self.n_link += hit.sum(axis=2)
        pooled = (self.link_sum / np.maximum(self.n_link, 1))[..., None]
        penalty = np.where(self.n_pair > 0, self.pair, pooled)
        bonus = self.bonus_db / np.sqrt(1 + self.n_link)
        return self._greedy(obs, mask, penalty - bonus[..., None], f["valid"][..., 0] > 0,
                            order_by=np.maximum(penalty, 0.0))


class OffsetBound(_Learner):
    """Structure-aware learner for miscalibrated CQI: it knows a link's offset is one
    persistent number in [-``prior_db``, ``prior_db``] and interference only adds, so
    CQI - SINR = offset + penalty >= offset: the offset estimate is the smallest CQI - SINR
    measured on the link (-``prior_db``, the most optimistic, until measured: each link is
    tried once), the interference penalty per (link, channel) the running mean of the rest."""

    name = "offset_bound"
    prior_db = 9.0

    def reset(self, num_envs: int) -> None:
        super().reset(num_envs)
        lay = self.layout
        self.offset = np.full((num_envs, lay.n_links), -self.prior_db)
        self.seen = np.zeros((num_envs, lay.n_links), dtype=bool)
        self.pair = np.zeros((num_envs, lay.n_links, lay.n_channels))
        self.n_pair = np.zeros_like(self.pair, dtype=np.int64)
        self.raw = np.zeros_like(self.pair)  # running mean of CQI - SINR per pair

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        f = self._fields(obs)
        self._clock(f)
        hit, pen = self._measured(f)
        low = np.where(hit, pen, np.inf).min(axis=2)
        self.offset = np.where(self.seen, np.minimum(self.offset, low),
                               np.where(hit.any(axis=2), low, self.offset))
        self.seen |= hit.any(axis=2)
        self._ema(self.raw, self.n_pair, hit, pen)
        interference = np.maximum(self.raw - self.offset[..., None], 0.0) * (self.n_pair > 0)
        penalty = self.offset[..., None] + interference
        return self._greedy(obs, mask, penalty, f["valid"][..., 0] > 0, order_by=interference)


# ------------------------------------------------------------------ oracles
class KnownExternal(_Learner):
    """Oracle for the interferer candidates: greedy_measured_sinr's learning of the own
    network's interference (per pair, optimistic) with the external interferer's power
    known exactly, past and next frame (``core.external_ratio``: I/N per (link, channel),
    the realised one for the frame measured, the expected one for the frame to come), and
    perfect sensing. The interferer's channels are visited first when it is expected on."""

    name = "oracle"

    def __init__(self, *args, core=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.core = core

    def reset(self, num_envs: int) -> None:
        super().reset(num_envs)
        lay = self.layout
        self.own = np.zeros((num_envs, lay.n_links, lay.n_channels))
        self.n_own = np.zeros_like(self.own, dtype=np.int64)

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        f = self._fields(obs)
        hit, pen = self._measured(f)
        past = self.core.external_ratio(-1)
        own_lin = np.maximum(10 ** (np.maximum(pen, 0.0) / 10) - past, 1.0)
        self._ema(self.own, self.n_own, hit, 10 * np.log10(own_lin))
        nxt = self.core.external_ratio(0)
        penalty = 10 * np.log10(10 ** (self.own / 10) + nxt)
        n, lay = obs.shape[0], self.layout
        grid = mask.reshape(n, lay.n_bs, lay.n_channels, -1).copy()
        grid[..., 1:] &= ~self.core.incumbent[:, None, :, None]
        ext_db = 10 * np.log10(1 + nxt)
        return self._greedy(obs, grid.reshape(mask.shape), penalty, f["valid"][..., 0] > 0,
                            order_by=ext_db)


class TrueCqi(GreedyMeasuredSinr):
    """Oracle for the miscalibration candidate: greedy_measured_sinr on the CQI corrected by
    the true offsets (``core.cqi_offset_db``)."""

    name = "oracle"

    def __init__(self, *args, core=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.core = core

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        fixed = obs.copy()
        cqi = self.layout.split(fixed)["cqi"]
        cqi -= (self.core.cqi_offset_db / SNR_SCALE_DB)[..., None].astype(np.float32)
        return super()._act(fixed, mask)
