"""Names the report shows: metric labels, method labels (agents from the registry),
the plots' order and the metric keys of a curve point."""

from __future__ import annotations

from agents.agent import MODE_PREFIX
from agents.heuristics import HEURISTICS
from agents.registry import AGENT_NAMES, AGENTS
from agents.study.spec import HIDDEN_ORACLE, UPPER_BOUND
from bridge.metrics import HEADLINE_METRICS

LABELS = {
    "throughput_mbps": ("Throughput", "Mb/s"),
    "sinr_violation_rate": ("SINR violations", "fraction of scheduled"),
    "latency_violation_rate": ("Latency violations", "fraction of bytes"),
    "jain_fairness": ("Jain fairness", "index (0-1)"),
    "episode_return": ("Episode return", "reward"),
}
BASELINE_LABELS = {"random": "Random (masked)", "round_robin": "Round-robin",
                   "greedy_max_sinr": "Greedy max-SINR", "proportional_fair": "Proportional fair",
                   "greedy_measured_sinr": "Greedy on measured SINR (adaptive)",
                   UPPER_BOUND: "Upper bound", HIDDEN_ORACLE: "Oracle (knows hidden conditions)"}
# baselines that know what no policy observes: never the "best heuristic"
KNOWING_BASELINES = (UPPER_BOUND, HIDDEN_ORACLE)
METHOD_LABELS = {**{n: e.label for n, e in AGENTS.items()}, **BASELINE_LABELS}
METRICS = (*HEADLINE_METRICS, "episode_return")
# an agent's curve points also hold its mode's metrics on the same episodes
AGENT_METRICS = (*METRICS, *(MODE_PREFIX + k for k in METRICS))
# an agent's throughput after the last adaptation episode minus before the first (Mb/s)
GAIN = "adaptation_gain_mbps"
# the same in units of the best heuristic's throughput on the same episodes
GAIN_VS_BEST = "adaptation_gain_vs_best_heuristic"
# the plots' order: agents, heuristics, upper bound
METHOD_ORDER = (*AGENT_NAMES, *sorted(HEURISTICS, key=list(BASELINE_LABELS).index),
                *KNOWING_BASELINES)


def adapts(method: str, kind: str) -> bool:
    """Agents, adaptive heuristics and the baselines that know the task: the methods whose
    per-episode ratio to the best heuristic says something (a fixed heuristic's only shows
    the episodes' noise)."""
    return (kind == "agent" or method in KNOWING_BASELINES
            or (method in HEURISTICS and HEURISTICS[method].adaptive))
