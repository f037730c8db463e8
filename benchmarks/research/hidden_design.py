"""Candidate hidden deployment conditions, measured on the fallback before either backend
builds them (issue 12): is there room to adapt against adaptive heuristics?

Each candidate is a subclass of the fallback core defined here (the simulator's default is
untouched): ``current`` (the model as built: an i.i.d.-active external interferer and sensing
misses, as sampled; ``current_sparse`` / ``current_noisy`` with each SINR report kept with
probability 0.1 / with 4 dB of noise; ``hopping_long_strong_sparse`` likewise),
``periodic`` (that interferer active on a
per-deployment periodic pattern: frames t with (t + phase) mod P < on, P in 2..8, t counted
over the deployment's episodes), ``hopping`` (its block hops over a per-deployment cyclic
sequence of 2-4 starts, dwell 1-2 frames; ``hopping_long``: 6-12 starts), ``beams`` (a
beam-switched neighbour: 2-4 beams served round-robin, so which links it hits changes
frame to frame), ``moving`` (the interferer drifting at 5-20 m/s), ``miscal`` (a persistent
per-UE CQI offset in [-X, X] dB, X in 3-9, on half the UEs; no interferer). ``*_strong``:
EIRP + 10 dB (50-60 dBm) and always on when its pattern says so. Sensing is perfect in all
but ``current*``. The per-deployment parameters come from the instance seed, so they
persist over a deployment's episodes.

For each candidate, on 2 sets of 4 held-out tasks of the main study (the seed plan's for
seeds 0 and 1) x 8 replicas, episodes 0..10 of each deployment, one policy per environment
keeping its state over the episodes: greedy max-SINR, proportional fair,
greedy_measured_sinr, the candidate's own engineer's heuristic and structure-aware learner
(benchmarks.research.hidden_design_policies) and an oracle that knows the hidden
parameters. Output: one JSON line per (candidate, set, policy) with throughput and SINR
violation rate per episode, then the room per episode (oracle / best heuristic).

    PYTHONPATH=. python -m benchmarks.research.hidden_design [--candidates periodic,miscal]
        [--episodes 10] [--replicas 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable

import numpy as np

from agents.heuristics import make_heuristic
from agents.rollouts import pin_tasks
from benchmarks.research import hidden_design_policies as hp
from benchmarks.research.common import report, study_config
from bridge.config import ScenarioConfig
from bridge.fallback.core import BatchedIABCore
from bridge.fallback.env import IABVectorEnv
from bridge.layout import LAST_SINR_SENTINEL, OBS_BOUND, SNR_SCALE_DB
from bridge.model import external, rng
from bridge.model.channel import upa_gain_lin
from bridge.tasks import Task, TaskDistribution

SETS = (0, 1)  # study seeds whose held-out tasks are measured
SUMMARY_EPISODES = (0, 1, 2, 5, 10)
PERIODS = (2, 8)  # periodic: P uniform in 2..8, on frames uniform in 1..P-1
MISCAL_DB = (3.0, 9.0)  # miscal: X uniform per deployment, offsets uniform in [-X, X]
MISCAL_FRACTION = 0.5  # ... for this fraction of the UEs
SPEED_MPS = (5.0, 20.0)  # moving: speed uniform per deployment
STRONG_DB = 10.0  # the *_strong candidates: EIRP this much above the held-out range


def _param_rng(seed: int, tag: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), tag]))


class CurrentCore(BatchedIABCore):
    """The model as built, plus the deployment-wide clock and the external power query."""

    def reset(self, seeds, env_mask=None) -> None:
        m = np.ones(self.N, dtype=bool) if env_mask is None else np.asarray(env_mask, bool)
        if not hasattr(self, "episode_idx"):
            self.episode_idx = np.full(self.N, -1)
        self.episode_idx[m] += 1
        super().reset(seeds, env_mask)

    def clock(self, offset: int = 0) -> np.ndarray:
        return self.episode_idx * self.config.dynamics.episode_frames + self.frame + offset

    def _on(self, offset: int) -> np.ndarray:
        """(N,) float: the interferer on in frame ``frame + offset`` (realised for a past
        frame, the activity for the next one)."""
        if offset < 0:
            return external.interferer_on(self.key, self.frame + offset,
                                          self.ext_activity).astype(np.float64)
        return self.ext_activity.copy()

    def external_ratio(self, offset: int) -> np.ndarray:
        """(N, L, K) external I/N at every receiver and channel in frame ``frame + offset``
        (0 for a frame before the episode)."""
        on = self._on(offset) * (self.frame + offset >= 0)
        return (on[:, None, None] * (self.ext_rx_mw / self.noise_mw)[:, :, None]
                * self._block(offset)[:, None, :])

    def _block(self, offset: int) -> np.ndarray:
        """(N, K) the interferer's channels in frame ``frame + offset``."""
        return self.ext_channels


class PeriodicCore(CurrentCore):
    """The interferer transmits in frames t (deployment clock) with (t + phase) mod P < on."""

    def __init__(self, config: ScenarioConfig, instances) -> None:
        super().__init__(config, instances)
        draws = []
        for inst in instances:
            g = _param_rng(inst.seed, 0xC1)
            p = int(g.integers(PERIODS[0], PERIODS[1] + 1))
            draws.append((p, int(g.integers(1, p)), int(g.integers(0, p))))
        self.period, self.on_frames, self.phase = (np.array(c) for c in zip(*draws))

    def _pattern(self, offset: int) -> np.ndarray:
        return ((self.clock(offset) + self.phase) % self.period) < self.on_frames

    def _on(self, offset: int) -> np.ndarray:
        return self._pattern(offset).astype(np.float64)

    def step(self, action, validated: bool = False):
        # interferer_on(u < activity) with activity 0 or 1 is the pattern itself
        self.ext_activity = self._on(0)
        return super().step(action, validated)


class HoppingCore(CurrentCore):
    """The interferer's block hops: it starts at channel seq[((t + phase) // dwell) mod M]
    in frame t (deployment clock), a per-deployment sequence of M uniform starts (period
    M x dwell frames); activity i.i.d. per frame as sampled."""

    hops = (2, 4)  # M
    dwells = (1, 2)

    def __init__(self, config: ScenarioConfig, instances) -> None:
        super().__init__(config, instances)
        m_max = self.hops[1]
        self.seq = np.zeros((self.N, m_max), dtype=np.int64)
        self.n_hops, self.dwell, self.hop_phase, self.width = (
            np.zeros(self.N, dtype=np.int64) for _ in range(4))
        for n, inst in enumerate(instances):
            g = _param_rng(inst.seed, 0xC3)
            w = inst.config.radio.external_block_channels
            m, d = int(g.integers(self.hops[0], m_max + 1)), int(
                g.integers(self.dwells[0], self.dwells[1] + 1))
            self.seq[n, :m] = g.integers(0, self.K - w + 1, m)
            self.n_hops[n], self.dwell[n], self.width[n] = m, d, w
            self.hop_phase[n] = int(g.integers(0, m * d))

    def _block(self, offset: int) -> np.ndarray:
        idx = ((self.clock(offset) + self.hop_phase) // self.dwell) % self.n_hops
        start = self.seq[np.arange(self.N), idx][:, None]
        k = np.arange(self.K)[None]
        return (k >= start) & (k < start + self.width[:, None])

    def step(self, action, validated: bool = False):
        self.ext_channels = self._block(0)
        return super().step(action, validated)


class LongHoppingCore(HoppingCore):
    """Hopping with longer sequences: M in 6..12, dwell 1-2 (period up to 24 frames)."""

    hops = (6, 12)


class BeamCore(CurrentCore):
    """The neighbour is a beam-switched cell: n_beams (2-4) beams, each aimed at a point at UE
    height uniform over the area, served round-robin with a dwell of 1-2 frames (period
    n_beams x dwell <= 8 frames, phase per deployment). Its power toward a victim is the
    task's EIRP (the main-lobe value) times its 8x8 array's normalised gain toward the victim
    in the current beam, so which links it hits changes frame to frame."""

    beams = (2, 4)
    dwells = (1, 2)

    def __init__(self, config: ScenarioConfig, instances) -> None:
        super().__init__(config, instances)
        b_max, half = self.beams[1], config.topology.area_m / 2
        self.aim = np.zeros((self.N, b_max, 3))
        self.n_beams, self.dwell, self.beam_phase = (np.ones(self.N, dtype=np.int64)
                                                     for _ in range(3))
        for n, inst in enumerate(instances):
            g = _param_rng(inst.seed, 0xC5)
            nb = int(g.integers(self.beams[0], b_max + 1))
            d = int(g.integers(self.dwells[0], self.dwells[1] + 1))
            self.aim[n, :, :2] = g.uniform(-half, half, (b_max, 2))
            self.aim[n, :, 2] = config.topology.ue_height_m
            self.n_beams[n], self.dwell[n] = nb, d
            self.beam_phase[n] = int(g.integers(0, nb * d))
        self.beam_rx_mw = np.zeros((self.N, b_max, self.L))

    def _beam(self, offset: int) -> np.ndarray:
        return ((self.clock(offset) + self.beam_phase) // self.dwell) % self.n_beams

    def _external_geometry(self, sel, n, rx, parent_xyz) -> None:
        super()._external_geometry(sel, n, rx, parent_xyz)
        lc = self.n_links_used
        src = self.ext_xyz[sel][:, None, :]
        toward = rx - src
        toward /= np.maximum(np.linalg.norm(toward, axis=-1, keepdims=True), 1e-9)
        rows, cols = self.config.radio.bs_array
        for b in range(self.beams[1]):
            bore = self.aim[sel, b][:, None, :] - src
            bore /= np.maximum(np.linalg.norm(bore, axis=-1, keepdims=True), 1e-9)
            gain = upa_gain_lin(toward, np.broadcast_to(bore, toward.shape), rows, cols)
            self.beam_rx_mw[sel, b, :lc] = self.ext_rx_mw[sel, :lc] * gain / (rows * cols)

    def _rx(self, offset: int) -> np.ndarray:
        return self.beam_rx_mw[np.arange(self.N), self._beam(offset)]

    def external_ratio(self, offset: int) -> np.ndarray:
        on = self._on(offset) * (self.frame + offset >= 0)
        return (on[:, None, None] * (self._rx(offset) / self.noise_mw)[:, :, None]
                * self.ext_channels[:, None, :])

    def step(self, action, validated: bool = False):
        self.ext_rx_mw = self._rx(0)
        return super().step(action, validated)


class MovingCore(CurrentCore):
    """The interferer moves at a per-deployment speed and heading from its drawn position,
    reflected at the area's border; its power is recomputed at geometry updates."""

    def __init__(self, config: ScenarioConfig, instances) -> None:
        super().__init__(config, instances)
        self.ext_xyz0 = self.ext_xyz.copy()
        vel = []
        for inst in instances:
            g = _param_rng(inst.seed, 0xC4)
            v, a = g.uniform(*SPEED_MPS), g.uniform(0, 2 * np.pi)
            vel.append((v * np.cos(a), v * np.sin(a)))
        self.ext_vel = np.array(vel)

    def _external_geometry(self, sel, n, rx, parent_xyz) -> None:
        half = self.config.topology.area_m / 2
        t_s = self.clock() * self.config.dynamics.frame_s
        q = (self.ext_xyz0[:, :2] + self.ext_vel * t_s[:, None] + half) % (4 * half)
        self.ext_xyz[:, :2] = np.where(q > 2 * half, 4 * half - q, q) - half
        super()._external_geometry(sel, n, rx, parent_xyz)


class MiscalCore(CurrentCore):
    """A fraction of the UEs report their CQI offset by a persistent amount in [-X, X] dB
    (X per deployment); the measured SINR is the truth."""

    def __init__(self, config: ScenarioConfig, instances) -> None:
        super().__init__(config, instances)
        self.cqi_offset_db = np.zeros((self.N, self.L))
        for n, inst in enumerate(instances):
            g = _param_rng(inst.seed, 0xC2)
            x = g.uniform(*MISCAL_DB)
            off = g.uniform(-x, x, self.U) * (g.random(self.U) < MISCAL_FRACTION)
            self.cqi_offset_db[n, self.I:] = off * self.ue_valid[n]

    def observation(self) -> np.ndarray:
        obs = super().observation()
        cqi = self.layout.split(obs)["cqi"]
        cqi += (self.cqi_offset_db / SNR_SCALE_DB)[..., None].astype(np.float32)
        return np.clip(obs, -OBS_BOUND, OBS_BOUND, out=obs)


class FeedbackCore(CurrentCore):
    """The model as built, with degraded SINR feedback: each scheduled (link, channel)
    SINR is reported with probability ``report_prob`` and with Gaussian noise of
    ``noise_db`` (a prototype's own stream of counter-based draws)."""

    report_prob = 1.0
    noise_db = 0.0
    stream = 97

    def observation(self) -> np.ndarray:
        obs = super().observation()
        sinr = self.layout.split(obs)["sinr"]
        idx = (self.key[:, None, None], self.stream, self.clock()[:, None, None],
               np.arange(self.L)[None, :, None], np.arange(self.K)[None, None, :])
        scheduled = sinr > LAST_SINR_SENTINEL
        drop = rng.to_uniform(rng.hash_keys(*idx, 0)) >= self.report_prob
        noise = rng.to_normal(rng.hash_keys(*idx, 1)) * (self.noise_db / SNR_SCALE_DB)
        sinr[...] = np.where(scheduled & drop, LAST_SINR_SENTINEL,
                             np.where(scheduled, sinr + noise, sinr))
        return obs


class SparseFeedbackCore(FeedbackCore):
    report_prob = 0.1


class NoisyFeedbackCore(FeedbackCore):
    noise_db = 4.0


class SparseLongHoppingCore(SparseFeedbackCore, LongHoppingCore):
    """``hopping_long`` with 10% of the SINR reports kept."""


class CandidateEnv(IABVectorEnv):
    """The fallback vector env on a candidate core."""

    def __init__(self, num_envs: int, config: ScenarioConfig, core_cls: type) -> None:
        self.core_cls = core_cls
        super().__init__(num_envs, config)

    def _rebuild(self) -> None:
        instances = self._deploy.instances()
        if self.core is not None and all(a is b for a, b in zip(instances, self._instances)):
            return
        self._instances = instances
        self.core = self.core_cls(self.config, self._instances)


def _no_misses(t: Task) -> Task:
    return dataclasses.replace(t, incumbent_miss_prob=0.0)


def _strong(t: Task) -> Task:
    """A stronger neighbour: the held-out EIRP + STRONG_DB (40-50 -> 50-60 dBm per 50 MHz),
    always on when its pattern says so."""
    return dataclasses.replace(_no_misses(t), external_eirp_dbm=t.external_eirp_dbm + STRONG_DB,
                               external_activity=1.0)


CANDIDATES: dict[str, tuple[type, Callable[[Task], Task], tuple[str, ...]]] = {
    # name: (core, task transform, the candidate's own policies)
    "current": (CurrentCore, lambda t: t, ()),
    "periodic": (PeriodicCore, _no_misses, ("last_frame", "phase_tables", "pattern_fit")),
    "miscal": (MiscalCore, lambda t: dataclasses.replace(_no_misses(t),
                                                         external_block_channels=0),
               ("olla_ucb", "offset_bound")),
    "moving": (MovingCore, _no_misses, ("measured_sinr_forgetting",)),
    "hopping": (HoppingCore, _no_misses, ("last_frame", "phase_tables", "hop_fit")),
    "hopping_long": (LongHoppingCore, _no_misses, ("last_frame", "phase_tables_24",
                                                    "hop_fit")),
    "current_sparse": (SparseFeedbackCore, lambda t: t, ()),
    "current_noisy": (NoisyFeedbackCore, lambda t: t, ()),
    "hopping_long_strong_sparse": (SparseLongHoppingCore, _strong,
                                   ("phase_tables_24", "hop_fit")),
    "beams": (BeamCore, _no_misses, ("phase_tables",)),
    "beams_strong": (BeamCore, _strong, ("phase_tables",)),
    "periodic_strong": (PeriodicCore, _strong, ("last_frame", "phase_tables", "pattern_fit")),
    "hopping_strong": (HoppingCore, _strong, ("last_frame", "phase_tables", "hop_fit")),
    "hopping_long_strong": (LongHoppingCore, _strong, ("last_frame", "phase_tables_24",
                                                       "hop_fit")),
}
DEFAULT_CANDIDATES = ("current", "periodic", "periodic_strong", "hopping",
                      "hopping_long_strong", "beams_strong", "miscal", "moving")
GENERIC = ("greedy_max_sinr", "proportional_fair", "greedy_measured_sinr")
OWN = {cls.name: cls for cls in (hp.PhaseTables, hp.PhaseTables24, hp.PatternFit,
                                 hp.ForgettingMeasuredSinr, hp.OllaUcb, hp.OffsetBound,
                                 hp.LastFrame, hp.HopFit)}


def make_policy(name: str, candidate: str, env: CandidateEnv, config: ScenarioConfig):
    kw = {"channel_hz": config.radio.channel_bandwidth_hz, "frame_s": config.dynamics.frame_s}
    if name in GENERIC:
        policy = make_heuristic(name, env.layout, seed=0, config=config)
    elif name == "oracle":
        cls = hp.TrueCqi if candidate == "miscal" else hp.KnownExternal
        policy = cls(env.layout, core=env.core, **kw)
    else:
        policy = OWN[name](env.layout, **kw)
    policy.episode_frames = config.dynamics.episode_frames
    policy.reset(env.num_envs)
    return policy


def run(candidate: str, config: ScenarioConfig, pairs: list[tuple[Task, int]], name: str,
        episodes: int, replicas: int) -> dict[str, np.ndarray]:
    """Per-episode metrics (episodes + 1, N) of policy ``name`` on the candidate."""
    core_cls, transform, _ = CANDIDATES[candidate]
    env = CandidateEnv(replicas * len(pairs), config, core_cls)
    out: dict[str, list] = {"throughput_mbps": [], "sinr_violation_rate": []}
    try:
        cursor = pin_tasks(env, [transform(t) for t, _ in pairs], [s for _, s in pairs])
        obs, mask = cursor.obs, cursor.mask
        policy = make_policy(name, candidate, env, config)
        for _ in range(episodes + 1):
            for _ in range(config.dynamics.episode_frames):
                obs, _, _, _, info = env.step(policy.act(obs, mask))
                mask = info["action_mask"]
            for k in out:
                out[k].append(np.asarray(info["episode_metrics"][k], dtype=np.float64))
            obs, *_, info = env.step(np.zeros((env.num_envs, env.layout.action_size),
                                              dtype=np.int64))
            mask = info["action_mask"]
    finally:
        env.close()
    return {k: np.stack(v) for k, v in out.items()}


def held_out(config: ScenarioConfig, seed: int) -> list[tuple[Task, int]]:
    """agents.study.seeds.SeedPlan.held_out for study seed ``seed`` (4 tasks)."""
    tasks = TaskDistribution.for_config(config).sample("test", seed=seed + 7_777, n=4)
    return [(t, seed * 1000 + 500 + i) for i, t in enumerate(tasks)]


def rooms(curves: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Per-episode ratios: oracle and each own policy over the best generic heuristic, and
    the oracle over the best of all heuristics (own ones included)."""
    heur = [k for k in curves if k != "oracle"]
    generic = np.max([curves[k] for k in GENERIC], axis=0)
    every = np.max([curves[k] for k in heur], axis=0)
    out = {"oracle_over_best_generic": curves["oracle"] / generic,
           "oracle_over_best_heuristic": curves["oracle"] / every}
    for k in heur:
        if k not in GENERIC:
            out[f"{k}_over_best_generic"] = curves[k] / generic
    return {k: [round(float(x), 3) for x in v] for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default=",".join(DEFAULT_CANDIDATES))
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=8)
    args = parser.parse_args()
    config = study_config("main")
    for candidate in args.candidates.split(","):
        if candidate not in CANDIDATES:
            raise SystemExit(f"--candidates: {candidate!r} is not one of {sorted(CANDIDATES)}")
        names = (*GENERIC, *CANDIDATES[candidate][2], "oracle")
        per_set = []
        for seed in SETS:
            pairs = held_out(config, seed)
            curves = {}
            for name in names:
                start = time.perf_counter()
                m = run(candidate, config, pairs, name, args.episodes, args.replicas)
                curves[name] = m["throughput_mbps"].mean(axis=1)
                report(f"design candidate={candidate} set={seed} policy={name}", {
                    "throughput_mbps_per_episode": [round(float(x), 1) for x in curves[name]],
                    "sinr_violation_rate_per_episode": [
                        round(float(x), 3) for x in m["sinr_violation_rate"].mean(axis=1)],
                    "sinr_violation_rate": float(m["sinr_violation_rate"].mean()),
                    "wall_s": round(time.perf_counter() - start, 1)})
            per_set.append(curves)
            report(f"room candidate={candidate} set={seed}", rooms(curves))
        both = {k: np.mean([c[k] for c in per_set], axis=0) for k in per_set[0]}
        report(f"mean candidate={candidate} sets={list(SETS)}", {
            "throughput_mbps_per_episode": {k: [round(float(x), 1) for x in v]
                                            for k, v in both.items()},
            **rooms(both)})
        at = [e for e in SUMMARY_EPISODES if e <= args.episodes]
        report(f"summary candidate={candidate} episodes={at}", {
            **{k: [round(float(v[e]), 1) for e in at] for k, v in both.items()},
            **{k: [v[e] for e in at] for k, v in rooms(both).items()}})


if __name__ == "__main__":
    main()
