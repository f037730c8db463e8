"""report.md: the study's tables, paired ratios and adaptation curves in words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agents.agent import MODE_PREFIX
from agents.study.few_shot import gain_excludes_zero
from agents.study.labels import GAIN, GAIN_VS_BEST, METHOD_LABELS, adapts
from agents.study.spec import HIDDEN_ORACLE


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _change(reduction: float | None) -> str:
    """'37% lower' / '12% higher' from a fractional reduction."""
    if reduction is None or not np.isfinite(reduction):
        return "–"
    word = "lower" if reduction >= 0 else "higher"
    return f"{abs(100 * reduction):.0f}% {word}"


def _mode_section(methods: dict[str, Any]) -> list[str]:
    """The agents' modes (each head's most likely choice) on the same episodes, and how
    much of each agent's budget its warm start spent."""
    agents = {m: s for m, s in methods.items() if s["kind"] == "agent"}
    if not agents:
        return []
    lines = ["The agents' mode (most likely allocation) on the same episodes, after the last "
             "adaptation episode; adaptation gain = last adaptation episode minus episode 0 "
             "(mean ± 95% CI over seeds x tasks), in Mb/s and as the change of the ratio to "
             "the best heuristic on the same episodes (which removes the episodes' different "
             "traffic); warm start = env-steps of the teacher's "
             "demonstrations (counted in the meta-training budget):", "",
             "| agent | throughput (Mb/s) | SINR viol. | latency viol. | Jain | "
             "vs best heuristic | adaptation gain (Mb/s), sampled | adaptation gain, mode | "
             "gain vs best heuristic, sampled | gain vs best heuristic, mode | "
             "warm start env-steps |", "|" + "---|" * 11]
    for m, s in agents.items():
        p = MODE_PREFIX
        lines.append(
            f"| {METHOD_LABELS.get(m, m)} | {_fmt(s.get(p + 'throughput_mbps'), 1)} ± "
            f"{_fmt(s.get(p + 'throughput_mbps_ci95'), 1)} | "
            f"{_fmt(s.get(p + 'sinr_violation_rate'))} | "
            f"{_fmt(s.get(p + 'latency_violation_rate'))} | "
            f"{_fmt(s.get(p + 'jain_fairness'))} | "
            f"{_fmt(s.get(p + 'fraction_of_best_heuristic'), 3)} | "
            f"{_fmt(s.get(GAIN), 1)} ± {_fmt(s.get(GAIN + '_ci95'), 1)} | "
            f"{_fmt(s.get(p + GAIN), 1)} ± {_fmt(s.get(p + GAIN + '_ci95'), 1)} | "
            f"{_fmt(s.get(GAIN_VS_BEST))} ± {_fmt(s.get(GAIN_VS_BEST + '_ci95'))} | "
            f"{_fmt(s.get(p + GAIN_VS_BEST))} ± {_fmt(s.get(p + GAIN_VS_BEST + '_ci95'))} | "
            f"{_fmt(s.get('warm_start_env_steps'), 0)} |")
    return [*lines, ""]


def _pm(values: list[float], cis: list[float], j: int) -> str:
    """'mean ± ci', or the mean alone where there is no interval (one seed x task)."""
    if not cis[j]:
        return _fmt(values[j])
    return f"{_fmt(values[j])} ± {_fmt(cis[j])}"


def _few_shot_section(methods: dict[str, Any], best: str) -> list[str]:
    """The few-shot protocol's tables (agents/study/few_shot.py): ratios to the best
    heuristic after k adaptation episodes, the gains over zero-shot and the SINR violations
    while adapting."""
    # agents first, then the adaptive heuristics and the baselines that know the task (a
    # fixed heuristic's ratio per episode only shows the episodes' noise; the best
    # heuristic's is 1 by definition)
    order = sorted(methods, key=lambda m: methods[m]["kind"] != "agent")
    entries = {m: methods[m]["few_shot"] for m in order
               if "few_shot" in methods[m] and adapts(m, methods[m]["kind"]) and m != best}
    if not entries:
        return []
    points = next(iter(entries.values()))["episodes"]
    cols = " | ".join("zero-shot" if k == 0 else f"after {k}" for k in points)
    lines = [f"Few-shot adaptation: throughput relative to {METHOD_LABELS.get(best, best)} on "
             "the same episodes, zero-shot (episode 0) and after k adaptation episodes "
             "(episode k); SINR violations of the sampled policy over the episodes it adapts "
             "on (mean ± 95% CI over seeds x tasks; baselines over tasks):", "",
             f"| method | {cols} | SINR viol. during adaptation |",
             "|" + "---|" * (len(points) + 2)]
    ppo_sinr = entries.get("ppo", {}).get("sinr_violations_during_adaptation")
    for m, e in entries.items():
        for p, tag in (("", ""), (MODE_PREFIX, " (mode)")):
            if p + "ratio" not in e:
                continue
            sinr = (f"{_fmt(e['sinr_violations_during_adaptation'])} ± "
                    f"{_fmt(e['sinr_violations_during_adaptation_ci95'])}" if not p else "")
            if not p and ppo_sinr and m != "ppo" and methods[m]["kind"] == "agent":
                sinr += f" ({_change(1 - e['sinr_violations_during_adaptation'] / ppo_sinr)}"
                sinr += " than PPO)"
            cells = " | ".join(_pm(e[p + "ratio"], e[p + "ratio_ci95"], j)
                               for j in range(len(points)))
            lines.append(f"| {METHOD_LABELS.get(m, m)}{tag} | {cells} | {sinr} |")
    lines.append("")
    agents = {m: e for m, e in entries.items() if methods[m]["kind"] == "agent"}
    if agents and len(points) > 1:
        cols = " | ".join(f"after {k}" for k in points[1:])
        lines += ["Adaptation gain: the ratio above after k episodes minus the zero-shot ratio "
                  "of the same seed and task (* where the 95% interval excludes 0):", "",
                  f"| agent | {cols} |", "|" + "---|" * len(points)]
        for m, e in agents.items():
            for p, tag in (("", ""), (MODE_PREFIX, " (mode)")):
                if p + "gain" not in e:
                    continue
                star = gain_excludes_zero(e, p)
                cells = " | ".join(_pm(e[p + "gain"], e[p + "gain_ci95"], j)
                                   + ("*" if star[j] else "") for j in range(1, len(points)))
                lines.append(f"| {METHOD_LABELS.get(m, m)}{tag} | {cells} |")
        lines.append("")
    return lines


def _study_section(study: str, data: dict[str, Any]) -> list[str]:
    """report.md's table and ratios of one study."""
    lines: list[str] = []
    methods = data["methods"]
    lines += [f"## Study `{study}`", ""]
    cfg = data["config"]
    lines += [f"{cfg['topology']['n_iab'] + 1} base stations, "
              f"{cfg['radio']['n_channels']} channels, up to "
              f"{cfg['topology']['max_ues']} UEs. Values: agents and adaptive heuristics "
              "after the last adaptation episode, fixed baselines averaged over all the "
              "episodes; mean ± 95% CI over seeds x held-out tasks. 'vs best heuristic', "
              "'vs upper bound' and 'vs PPO' compare identical episodes: a last-episode "
              "value with that episode of the reference, an all-episode mean with the "
              "reference's mean over them (against PPO: the last episode).", ""]
    head = ("| method | throughput (Mb/s) | SINR viol. | latency viol. | Jain | "
            "vs best heuristic | vs upper bound | episodes to 90% | vs PPO (tput) | "
            "meta-train env-steps |")
    lines += [head, "|" + "---|" * 10]
    for m, s in methods.items():
        lines.append(
            f"| {METHOD_LABELS.get(m, m)} | {_fmt(s['throughput_mbps'], 1)} ± "
            f"{_fmt(s['throughput_mbps_ci95'], 1)} | {_fmt(s['sinr_violation_rate'])} | "
            f"{_fmt(s['latency_violation_rate'])} | {_fmt(s['jain_fairness'])} | "
            f"{_fmt(s.get('fraction_of_best_heuristic'), 3)} | "
            f"{_fmt(s.get('fraction_of_upper_bound'), 2)} | "
            f"{_fmt(s.get('episodes_to_90pct'))} | {_fmt(s.get('throughput_vs_ppo'), 2)} | "
            f"{_fmt(s.get('meta_train_env_steps'), 0)} |")
    lines.append("")
    lines += _mode_section(methods)
    best = next(iter(methods.values())).get("best_heuristic", "")
    if "room_to_adapt" in methods.get(HIDDEN_ORACLE, {}):
        lines += [f"Room to adapt: {METHOD_LABELS[HIDDEN_ORACLE]} / "
                  f"{METHOD_LABELS.get(best, best)} throughput = "
                  f"{_fmt(methods[HIDDEN_ORACLE]['room_to_adapt'], 3)}.", ""]
    lines += _few_shot_section(methods, best)
    for prefix, what in (("", "sampled policy"), (MODE_PREFIX, "mode")):
        per_episode = {m: s[prefix + "throughput_vs_best_heuristic_per_episode"]
                       for m, s in methods.items()
                       if prefix + "throughput_vs_best_heuristic_per_episode" in s
                       and adapts(m, s["kind"])}
        if not per_episode:
            continue
        lines += [f"Throughput ({what}) relative to {METHOD_LABELS.get(best, best)} on the "
                  "same episodes, per adaptation episode (0 = before any adaptation):", ""]
        for m, ratios in per_episode.items():
            lines.append(f"* {METHOD_LABELS.get(m, m)}: "
                         + " → ".join(_fmt(r, 2) for r in ratios))
        lines.append("")
    if "ppo" in methods:
        lines += ["Against PPO trained from scratch with the same adaptation budget:", ""]
        for m, s in methods.items():
            if m == "ppo":
                continue
            lines.append(
                f"* {METHOD_LABELS.get(m, m)}: {_fmt(s.get('throughput_vs_ppo'), 2)}x "
                f"throughput, SINR violations "
                f"{_change(s.get('sinr_violation_reduction_vs_ppo'))}, latency violations "
                f"{_change(s.get('latency_violation_reduction_vs_ppo'))}")
        lines.append("")
    return lines


def write_markdown(out: Path, results: dict[str, Any]) -> Path:
    lines = ["# iabmeta study report", "",
             f"Backend **{results['backend']}**, profile **{results['profile']}**, base seed "
             f"{results['seed']}, wall time {results['run_wall_s']:.0f} s.  Versions: "
             + ", ".join(f"{k} {v}" for k, v in results["versions"].items() if k != "platform"),
             ""]
    b = results["budget"]
    lines += [f"Budget: {b['meta_train_env_steps']} meta-training env-steps per agent and "
              f"seed, {b['adapt_episodes']} adaptation episodes of {b['episode_frames']} "
              f"frames on {b['n_test_tasks']} held-out tasks, seeds {b['seeds']}.", ""]
    r = results.get("rollouts", {})
    if r.get("jobs"):
        lines += [f"Rollouts: {r['jobs']} jobs of at most {b['envs_per_job']} environments "
                  f"({r['env_steps']} env-steps); {r['retries']} job attempts failed and were "
                  f"re-run, {r['worker_replacements']} workers replaced.", ""]
    for study, data in results["studies"].items():
        lines += _study_section(study, data)
    lines += ["## Figures", "", "![metrics](metrics.png)", "", "![adaptation](adaptation.png)",
              "", "![training](training.png)", "",
              "Raw numbers: `results.json`, `adaptation_curves.csv`, `training_curves.csv`."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
