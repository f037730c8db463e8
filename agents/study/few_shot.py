"""The few-shot protocol: every method's throughput on a held-out task zero-shot (episode 0)
and after 1, 2, 5 and 10 adaptation episodes, relative to the best heuristic on the same
episodes, the gain over zero-shot, and the SINR violations while it adapts.

Episode k of an adaptation run is played after k adaptation episodes on that deployment
(the agent learned from episodes 0..k-1), and every method plays the same episodes (same
deployment, same traffic), so each value is a paired ratio per (seed, task): the method's
episode-k throughput over the best heuristic's episode-k throughput. The gain after k
episodes is that ratio minus the zero-shot ratio of the same (seed, task), so the episodes'
different traffic cancels; intervals are 95% over seeds x tasks (baselines: over tasks).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.agent import MODE_PREFIX
from agents.stats import mean_ci

# the adaptation episodes after which the protocol reports (those within the budget, and
# always the budget's last episode)
FEW_SHOT_EPISODES = (0, 1, 2, 5, 10)
THROUGHPUT = "throughput_mbps"
SINR = "sinr_violation_rate"


def few_shot_points(adapt_episodes: int) -> list[int]:
    """The reported episodes for a budget of ``adapt_episodes`` adaptation episodes."""
    points = [k for k in FEW_SHOT_EPISODES if k <= adapt_episodes]
    if adapt_episodes not in points:
        points.append(adapt_episodes)
    return points


def adaptation_episodes(adapt_episodes: int) -> list[int]:
    """The episodes a method adapts on: 0..K-1 (episode 0 alone when K is 0)."""
    return list(range(max(adapt_episodes, 1)))


def _runs(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The (seed, task) runs of a method: ``{"task": t, "by_episode": {e: record}}``; a
    baseline has one run per task."""
    if row["kind"] == "agent":
        return row["runs"]
    tasks = sorted({t for t, _ in row["by_episode"]})
    return [{"task": t, "by_episode": {e: rec for (tt, e), rec in row["by_episode"].items()
                                       if tt == t}} for t in tasks]


def _ratio(run: dict[str, Any], ref: dict[tuple[int, int], dict[str, float]], episode: int,
           prefix: str) -> float:
    rec = run["by_episode"].get(episode)
    base = ref.get((run["task"], episode))
    if rec is None or base is None or not base.get(THROUGHPUT, 0) > 0:
        return float("nan")
    return float(rec.get(prefix + THROUGHPUT, np.nan)) / base[THROUGHPUT]


def method_few_shot(row: dict[str, Any], ref: dict[tuple[int, int], dict[str, float]],
                    adapt_episodes: int) -> dict[str, Any]:
    """One method's few-shot entry against the best heuristic's records ``ref``."""
    points = few_shot_points(adapt_episodes)
    runs = _runs(row)
    entry: dict[str, Any] = {"episodes": points, "n": len(runs)}
    prefixes = ("", MODE_PREFIX) if row["kind"] == "agent" else ("",)
    for p in prefixes if runs else ():
        ratios = np.array([[_ratio(run, ref, k, p) for k in points] for run in runs])
        stats = [mean_ci(ratios[:, j]) for j in range(len(points))]
        gains = [mean_ci(ratios[:, j] - ratios[:, 0]) for j in range(len(points))]
        entry[p + "ratio"] = [m for m, _ in stats]
        entry[p + "ratio_ci95"] = [c for _, c in stats]
        entry[p + "gain"] = [m for m, _ in gains]
        entry[p + "gain_ci95"] = [c for _, c in gains]
    # what exploring costs: the sampled policy's SINR violations over the episodes it adapts
    # on (the mode is never what a method explores with)
    during = adaptation_episodes(adapt_episodes)
    sinr = [float(np.mean([run["by_episode"][e][SINR] for e in during
                           if e in run["by_episode"]])) for run in runs]
    entry["sinr_violations_during_adaptation"], entry["sinr_violations_during_adaptation_ci95"] = \
        mean_ci(sinr)
    return entry


def few_shot(rows: dict[str, dict[str, Any]], best: str, adapt_episodes: int
             ) -> dict[str, dict[str, Any]]:
    """Every method's few-shot entry (the best heuristic's own ratios are 1 by definition)."""
    ref = rows[best]["by_episode"]
    return {m: method_few_shot(row, ref, adapt_episodes) for m, row in rows.items()}


def gain_excludes_zero(entry: dict[str, Any], prefix: str = "") -> list[bool]:
    """Per reported episode: whether the gain's 95% interval excludes 0."""
    gains, cis = entry.get(prefix + "gain", []), entry.get(prefix + "gain_ci95", [])
    return [bool(np.isfinite(g) and np.isfinite(c) and 0 < c < abs(g))
            for g, c in zip(gains, cis)]
