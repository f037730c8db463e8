"""The study: spec (experiment file + overrides), seed plan, phases, phase store, rollout
runtime and report, used alike by ``iabmeta reproduce/train/evaluate`` and by code.

Library use::

    from agents.study import build_spec, run_study
    spec = build_spec("exp.toml", ["agents.ppo.learning_rate=3e-4"], profile="quick")
    results = run_study(spec, "runs/mine")      # resumable, writes the report too
"""

from __future__ import annotations

from agents.study.phases import adapt_checkpoint, evaluate_baseline, study_phases, train_agent
from agents.study.rollout_runtime import RolloutRuntime, rollout_runtime
from agents.study.runner import Progress, run_study
from agents.study.seeds import SeedPlan
from agents.study.spec import Study, StudySpec, build_spec
from agents.study.store import PhaseId, PhaseStore

__all__ = ["PhaseId", "PhaseStore", "Progress", "RolloutRuntime", "SeedPlan", "Study",
           "StudySpec", "adapt_checkpoint", "build_spec", "evaluate_baseline",
           "rollout_runtime", "run_study", "study_phases", "train_agent"]
