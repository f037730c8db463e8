"""Turns the phase results of a study into results.json, CSV curves, PNG plots and report.md."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.agent import MODE_PREFIX
from agents.heuristics import HEURISTICS
from agents.stats import episodes_to_fraction, mean_ci
from agents.study.few_shot import few_shot
from agents.study.labels import (
    AGENT_METRICS,
    GAIN,
    GAIN_VS_BEST,
    KNOWING_BASELINES,
    LABELS,
    METHOD_LABELS,
    METHOD_ORDER,
    METRICS,
    adapts,
)
from agents.study.markdown import write_markdown
from agents.study.spec import HIDDEN_ORACLE, Study, StudySpec
from agents.study.store import PhaseId, PhaseStore, write_json_atomic
from bridge.metrics import HEADLINE_METRICS


def _method_rows(spec: StudySpec, store: PhaseStore, study: Study
                 ) -> dict[str, dict[str, Any]]:
    """Per method: final values per (seed, task), mean curves, training info."""
    K = spec.budget.adapt_episodes
    rows: dict[str, dict[str, Any]] = {}
    for h in (*spec.heuristics, *study.baselines):
        name = PhaseId("baseline", study.name, h)
        if not store.done(name):
            continue
        recs = store.load(name)
        # a fixed policy does not adapt: its value on a task is the mean over all episodes;
        # an adaptive heuristic's is its last episode's, as an agent's
        per_task: dict[int, list[dict[str, float]]] = {}
        adaptive = h in HEURISTICS and HEURISTICS[h].adaptive
        for r in recs:
            if not adaptive or r["episode"] == K:
                per_task.setdefault(r["task"], []).append(r)
        finals = [{k: float(np.mean([r[k] for r in rs])) for k in METRICS}
                  for rs in per_task.values()]
        curve = [{k: float(np.mean([r[k] for r in recs if r["episode"] == e]))
                  for k in METRICS} for e in range(K + 1)]
        rows[h] = {"kind": "baseline", "last_episode": adaptive, "finals": finals,
                   "curve": curve,
                   "tp": {(r["task"], r["episode"]): r["throughput_mbps"] for r in recs},
                   "by_episode": {(r["task"], r["episode"]): r for r in recs}}
    for agent in spec.agents:
        finals, curves, trains, runs = [], [], [], []
        for seed in spec.seeds:
            a_name = PhaseId("adapt", study.name, agent, seed)
            t_name = a_name.trained
            if not (store.done(a_name) and store.done(t_name)):
                continue
            recs = store.load(a_name)
            trains.append(store.load(t_name))
            for t in sorted({r["task"] for r in recs}):
                runs.append({"seed": seed, "task": t, "by_episode": {
                    r["episode"]: r for r in recs if r["task"] == t}})
                last = [r for r in recs if r["task"] == t and r["episode"] == K]
                first = [r for r in recs if r["task"] == t and r["episode"] == 0]
                if last and first:
                    final = {k: last[0].get(k, float("nan")) for k in AGENT_METRICS}
                    # what the adaptation episodes bought on this task (paired: same seed,
                    # same deployment)
                    for p in ("", MODE_PREFIX):
                        final[p + GAIN] = (last[0].get(p + "throughput_mbps", float("nan"))
                                           - first[0].get(p + "throughput_mbps", float("nan")))
                        final["_" + p + "tp0"] = first[0].get(p + "throughput_mbps", np.nan)
                    final["_task"] = t
                    finals.append(final)
            curves.append([{k: float(np.mean([r.get(k, np.nan) for r in recs
                                              if r["episode"] == e]))
                            for k in AGENT_METRICS}
                           for e in range(K + 1)])
        if not finals:
            continue
        curve = [{k: float(np.mean([c[e][k] for c in curves])) for k in curves[0][e]}
                 for e in range(K + 1)]
        rows[agent] = {"kind": "agent", "last_episode": True, "finals": finals,
                       "curve": curve, "curves": curves,
                       "train": trains, "runs": runs}
    return rows


def _paired_fraction(s: dict[str, Any], ref: dict[str, Any], prefix: str = "") -> float:
    """Throughput of ``s`` as a fraction of the baseline ``ref``'s on the same episodes: a
    value taken from the last adaptation episode (``s["last_episode"]``: an agent's, an
    adaptive heuristic's) is compared with that episode of ``ref`` (same deployments, same
    traffic); a fixed policy's mean over all the episodes with ``ref``'s mean over them (the
    mean of its curve, whatever ``ref``'s own table value is)."""
    curve = [p["throughput_mbps"] for p in ref["adaptation_curve"]]
    ref_tp = curve[-1] if s["last_episode"] else float(np.mean(curve))
    return s[prefix + "throughput_mbps"] / ref_tp if ref_tp > 0 else float("nan")


def _relative_gains(rows: dict[str, dict[str, Any]], out: dict[str, dict[str, Any]],
                    best: str) -> None:
    """The adaptation gain in units of the best heuristic on the same episodes: the ratio
    to it after the last adaptation episode minus the ratio in episode 0, per (seed, task)
    (the raw gain in Mb/s also carries the difference between the two episodes' traffic,
    which this removes), mean ± 95% interval."""
    tp = rows[best]["tp"]
    last = max(e for _, e in tp)
    for method, row in rows.items():
        if row["kind"] != "agent":
            continue
        for p in ("", MODE_PREFIX):
            gains = [f[p + "throughput_mbps"] / tp[(f["_task"], last)]
                     - f["_" + p + "tp0"] / tp[(f["_task"], 0)] for f in row["finals"]
                     if tp.get((f["_task"], last), 0) > 0 and tp.get((f["_task"], 0), 0) > 0]
            m, ci = mean_ci(gains)
            out[method][p + GAIN_VS_BEST], out[method][p + GAIN_VS_BEST + "_ci95"] = m, ci


def _summarise(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for method, row in rows.items():
        # last_episode: the table value is the last adaptation episode (agents, adaptive
        # heuristics), not the mean over all the episodes (fixed policies)
        s: dict[str, Any] = {"kind": row["kind"], "last_episode": row["last_episode"],
                             "n": len(row["finals"])}
        keys = (*AGENT_METRICS, GAIN, MODE_PREFIX + GAIN) if row["kind"] == "agent" else METRICS
        for k in keys:
            m, ci = mean_ci([f[k] for f in row["finals"]])
            s[k] = m
            s[k + "_ci95"] = ci
        tp_curve = [p["throughput_mbps"] for p in row["curve"]]
        s["adaptation_curve"] = row["curve"]
        # a fixed policy does not adapt, so adaptation speed applies to agents only
        s["episodes_to_90pct"] = (episodes_to_fraction(tp_curve, 0.9)
                                  if row["kind"] == "agent" else None)
        if row["kind"] == "agent":
            s["meta_train_env_steps"] = float(np.mean([t["env_steps"] for t in row["train"]]))
            s["meta_train_wall_s"] = float(np.mean([t["wall_s"] for t in row["train"]]))
            # env-steps of the teacher's demonstrations (part of meta_train_env_steps)
            s["warm_start_env_steps"] = float(np.mean([
                t.get("info", {}).get("warm_start_env_steps", 0.0) for t in row["train"]]))
        out[method] = s
    # the best task-blind heuristic, adaptive ones included
    heur = [m for m, s in out.items() if s["kind"] == "baseline" and m not in KNOWING_BASELINES]
    best = max(heur, key=lambda m: out[m]["throughput_mbps"]) if heur else None
    if best is not None and HIDDEN_ORACLE in out and out[best]["throughput_mbps"] > 0:
        # room to adapt: what knowing the hidden conditions is worth over the best heuristic,
        # on the same episodes (the last one when the best heuristic adapts)
        oracle = out[HIDDEN_ORACLE]
        same = (oracle["adaptation_curve"][-1]["throughput_mbps"]
                if out[best]["last_episode"] else oracle["throughput_mbps"])
        oracle["room_to_adapt"] = same / out[best]["throughput_mbps"]
    for s in out.values():
        if best is not None:
            for prefix in ("", MODE_PREFIX) if s["kind"] == "agent" else ("",):
                s[prefix + "fraction_of_best_heuristic"] = _paired_fraction(
                    s, out[best], prefix)
        if "upper_bound" in out:
            s["fraction_of_upper_bound"] = _paired_fraction(s, out["upper_bound"])
            ub_ret = out["upper_bound"]["episode_return"]
            if ub_ret and ub_ret > 0:
                s["return_fraction_of_upper_bound"] = s["episode_return"] / ub_ret
        if "ppo" in out:
            # PPO's values are its last adaptation episode: a fixed policy is compared on
            # that episode too, not with its mean over all of them
            p = out["ppo"]
            mine = s if s["last_episode"] else s["adaptation_curve"][-1]
            s["throughput_vs_ppo"] = (mine["throughput_mbps"] / p["throughput_mbps"]
                                      if p["throughput_mbps"] > 0 else float("nan"))
            for k, key in (("sinr_violation_rate", "sinr_violation_reduction_vs_ppo"),
                           ("latency_violation_rate", "latency_violation_reduction_vs_ppo")):
                s[key] = 1 - mine[k] / p[k] if p[k] > 0 else float("nan")
    if best is not None:
        _relative_gains(rows, out, best)
        best_curve = [p["throughput_mbps"] for p in out[best]["adaptation_curve"]]
        for s in out.values():
            s["best_heuristic"] = best
            # baselines run the agents' episode seeds, so episode k is the same traffic for
            # every method: this ratio is the adaptation curve without the episode noise
            for prefix in ("", MODE_PREFIX) if s["kind"] == "agent" else ("",):
                s[prefix + "throughput_vs_best_heuristic_per_episode"] = [
                    p[prefix + "throughput_mbps"] / b if b > 0 else float("nan")
                    for p, b in zip(s["adaptation_curve"], best_curve)]
        last_episode = max(e for _, e in rows[best]["tp"])
        for method, entry in few_shot(rows, best, last_episode).items():
            out[method]["few_shot"] = entry
    return out


def write_report(spec: StudySpec, store: PhaseStore, versions: dict[str, str],
                 run_wall_s: float) -> tuple[dict[str, Any], list[Path]]:
    """results.json, the CSV curves, the plots and report.md from the store's phases;
    returns the results and the paths written."""
    out = store.out
    results: dict[str, Any] = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "backend": spec.backend, "seed": spec.seed, "profile": spec.budget.name,
        "budget": spec.budget.to_dict(), "agents": list(spec.agents),
        "versions": versions, "run_wall_s": run_wall_s, "studies": {},
    }
    all_rows = {}
    for study in spec.studies:
        rows = _method_rows(spec, store, study)
        all_rows[study.name] = rows
        summary = _summarise(rows)
        per_seed = {}
        for agent in spec.agents:
            for seed in spec.seeds:
                name = PhaseId("adapt", study.name, agent, seed)
                if store.done(name):
                    per_seed[f"{agent}:{seed}"] = store.load(name)
        results["studies"][study.name] = {
            "config": study.config.to_dict(), "tasks": study.tasks.ranges,
            "test_tasks": [t.to_dict() | {"instance_seed": s}
                           for t, s in spec.held_out(study)],
            "methods": summary, "adaptation_records": per_seed,
        }
    results["rollouts"] = rollout_totals(store.rollout_stats())
    paths = [out / "results.json"]
    write_json_atomic(paths[0], results)
    paths += _write_csv(out, spec, store, all_rows)
    paths += _plots(out, results, all_rows)
    paths.append(write_markdown(out, results))
    return results, paths


def rollout_totals(per_phase: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Sums of the rollout backends' statistics over the phases (jobs, env-steps, retried
    job attempts, replaced workers), with the per-phase table."""
    keys = ("jobs", "env_steps", "retries", "worker_replacements")
    totals: dict[str, Any] = {k: int(sum(p.get(k, 0) for p in per_phase.values()))
                              for k in keys}
    totals["failures"] = [f"{name}: {f}" for name, p in per_phase.items()
                          for f in p.get("failures", [])]
    totals["per_phase"] = per_phase
    return totals


def _write_csv(out: Path, spec: StudySpec, store: PhaseStore, all_rows: dict[str, Any]
               ) -> list[Path]:
    curves = out / "adaptation_curves.csv"
    with open(curves, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["study", "method", "seed", "task", "episode", *AGENT_METRICS])
        for study in spec.studies:
            for h in (*spec.heuristics, *study.baselines):
                name = PhaseId("baseline", study.name, h)
                if store.done(name):
                    for r in store.load(name):
                        w.writerow([study.name, h, "", r["task"], r["episode"],
                                    *[r.get(k, "") for k in AGENT_METRICS]])
            for agent in spec.agents:
                for seed in spec.seeds:
                    name = PhaseId("adapt", study.name, agent, seed)
                    if store.done(name):
                        for r in store.load(name):
                            w.writerow([study.name, agent, seed, r["task"], r["episode"],
                                        *[r.get(k, "") for k in AGENT_METRICS]])
    training = out / "training_curves.csv"
    with open(training, "w", newline="") as fh:
        w = csv.writer(fh)
        keys: list[str] = []
        for rows in all_rows.values():
            for row in rows.values():
                for t in row.get("train", []):
                    for point in t["curve"]:
                        keys += [k for k in point if k not in keys]
        w.writerow(["study", "agent", "seed", *keys])
        for study_name, rows in all_rows.items():
            for agent, row in rows.items():
                for t in row.get("train", []):
                    for point in t["curve"]:
                        w.writerow([study_name, agent, t["seed"],
                                    *[point.get(k, "") for k in keys]])
    return [curves, training]


def _plots(out: Path, results: dict[str, Any], all_rows: dict[str, Any]) -> list[Path]:
    """metrics.png, adaptation.png and training.png of the main study (else the first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study = "main" if "main" in results["studies"] else next(iter(results["studies"]))
    methods = results["studies"][study]["methods"]
    order = [m for m in METHOD_ORDER if m in methods]
    # tab20's dark shades first, then its light ones: distinct colours for up to 20 methods
    colors = {m: plt.cm.tab20((2 * i) % 20 + (i // 10) % 2) for i, m in enumerate(order)}
    paths = []
    for name, draw in (("metrics.png", _metrics_figure), ("adaptation.png", _adaptation_figure)):
        fig = draw(plt, methods, order, colors)
        if name == "metrics.png":
            fig.suptitle(f"Held-out deployments, study '{study}' ({results['backend']} "
                         "backend, mean ± 95% CI over seeds x tasks)")
        fig.tight_layout()
        paths.append(out / name)
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    fig = _training_figure(plt, all_rows.get(study, {}), colors)
    fig.suptitle(f"Meta-training on training tasks, study '{study}' (one line per seed)")
    fig.tight_layout()
    paths.append(out / "training.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def _metrics_figure(plt: Any, methods: dict[str, Any], order: list[str],
                    colors: dict[str, Any]) -> Any:
    """Bars of the headline metrics per method, with 95% intervals."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, key in zip(axes.ravel(), HEADLINE_METRICS):
        vals = np.array([methods[m][key] for m in order], dtype=float)
        errs = np.nan_to_num(np.array([methods[m][key + "_ci95"] for m in order], dtype=float))
        # the interval is clipped to the metric's domain (rates and Jain lie in [0, 1])
        hi_limit = 1.0 if key != "throughput_mbps" else np.inf
        lower = np.minimum(errs, vals)
        upper = np.minimum(errs, hi_limit - vals)
        ax.bar(range(len(order)), vals, yerr=np.vstack([lower, upper]), capsize=3,
               color=[colors[m] for m in order])
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([METHOD_LABELS.get(m, m) for m in order], rotation=30, ha="right",
                           fontsize=8)
        title, unit = LABELS[key]
        ax.set_title(f"{title} on held-out tasks")
        ax.set_ylabel(f"{title} ({unit})")
        ax.grid(axis="y", alpha=0.3)
    return fig


def _adaptation_figure(plt: Any, methods: dict[str, Any], order: list[str],
                       colors: dict[str, Any]) -> Any:
    """Each headline metric against the adaptation episode, per method, and the few-shot
    view: throughput relative to the best heuristic on the same episodes (sampled and mode),
    with the oracle, the adaptive heuristics and the best heuristic (1.0) as lines."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 3, figsize=(17, 8))
    panels = list(axes.ravel())
    for ax, key in zip(panels[:2] + panels[3:5], HEADLINE_METRICS):
        for m in order:
            curve = [p[key] for p in methods[m]["adaptation_curve"]]
            style = "-o" if methods[m]["kind"] == "agent" else "--"
            ax.plot(range(len(curve)), curve, style, color=colors[m],
                    label=METHOD_LABELS.get(m, m), markersize=4)
        title, unit = LABELS[key]
        ax.set_title(f"Adaptation on held-out tasks: {title}")
        ax.set_ylabel(f"{title} ({unit})")
    best = next(iter(methods.values())).get("best_heuristic")
    for ax, prefix, what in ((panels[2], "", "sampled"), (panels[5], MODE_PREFIX, "mode")):
        for m in order:
            s = methods[m]
            # a baseline has no mode: its line is the same in both panels
            key = (prefix if s["kind"] == "agent" else "") + \
                "throughput_vs_best_heuristic_per_episode"
            if key not in s or not adapts(m, s["kind"]) or m == best:
                continue
            style = "-o" if s["kind"] == "agent" else "--"
            ax.plot(range(len(s[key])), s[key], style, color=colors[m], markersize=4,
                    label=METHOD_LABELS.get(m, m))
        ax.axhline(1.0, color="k", linestyle=":", label=METHOD_LABELS.get(best, best))
        ax.set_title(f"Few-shot: throughput / best heuristic ({what})")
        ax.set_ylabel("ratio on the same episodes")
        ax.legend(fontsize=6)
    for ax in panels:
        ax.set_xlabel("adaptation episodes on the held-out task")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    panels[0].legend(fontsize=7, ncol=2)
    return fig


def _training_figure(plt: Any, rows: dict[str, Any], colors: dict[str, Any]) -> Any:
    """Training-episode throughput and return against meta-training env-steps."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    panels = (("throughput_mbps", "training-episode throughput (Mb/s)"),
              ("episode_return", "training-episode return (reward)"))
    for ax, (key, ylabel) in zip(axes, panels):
        plotted = False
        for agent, row in rows.items():
            for i, t in enumerate(row.get("train", [])):
                pts = [(p["env_steps"], p.get(f"episode_{key}", p.get(key)))
                       for p in t["curve"] if "env_steps" in p]
                pts = [(x, y) for x, y in pts if y is not None and np.isfinite(y)]
                if not pts:
                    continue
                ax.plot([x for x, _ in pts], [y for _, y in pts], color=colors.get(agent, "k"),
                        alpha=0.85, label=METHOD_LABELS.get(agent, agent) if i == 0 else None)
                plotted = True
        ax.set_xlabel("environment steps in (meta-)training (frames, all environments)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if plotted:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no training episodes recorded", ha="center",
                    transform=ax.transAxes)
    return fig
