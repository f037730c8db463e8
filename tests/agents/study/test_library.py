"""The study as a library: specs from files and overrides (validated like the scenario), the
seed plan, phase ids, and run_study running every agent end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from agents.registry import AGENT_NAMES
from agents.study import PhaseId, SeedPlan, build_spec, run_study, study_phases
from bridge.config import ConfigError

TINY = Path(__file__).parents[2] / "data" / "tiny_experiment.toml"


def test_run_study_runs_all_agents_and_returns_plain_data(tmp_path) -> None:
    spec = build_spec(TINY, profile="quick")
    results = run_study(spec, tmp_path / "lib")
    json.dumps(results)
    assert results == json.loads((tmp_path / "lib" / "results.json").read_text())
    methods = results["studies"]["main"]["methods"]
    for name in AGENT_NAMES:
        # PPO is the from-scratch baseline: its meta-training is free by design
        assert (methods[name]["meta_train_env_steps"] == 0) == (name == "ppo"), name
        assert len(methods[name]["adaptation_curve"]) == spec.budget.adapt_episodes + 1


def test_agent_hyperparameters_come_from_the_file_and_overrides(tmp_path) -> None:
    exp = tmp_path / "exp.toml"
    exp.write_text(TINY.read_text() + "\n[agents.ppo]\nlearning_rate = 3e-4\n")
    spec = build_spec(exp, ["agents.maml.inner_lr=0.02", "experiment.num_envs=8",
                            "agents.ppo.update_epochs=2"])
    assert spec.agent_hyperparams("ppo").learning_rate == 3e-4
    assert spec.agent_hyperparams("ppo").update_epochs == 2
    assert spec.agent_hyperparams("maml").inner_lr == 0.02
    assert spec.agent_hyperparams("attention").memory == "attention"
    assert spec.budget.num_envs == 8
    assert spec.fingerprint() != build_spec(TINY).fingerprint()


@pytest.mark.parametrize(("overrides", "words"), [
    (["agents.ppo.learning_rate=-1"], ["agents.ppo.learning_rate=-1", "out of range"]),
    (["agents.ppo.lr=0.1"], ["unknown field agents.ppo.lr"]),
    (["agents.dqn.gamma=0.9"], ["agents.dqn"]),
    (["agents.rl2.hidden=x"], ["agents.rl2.hidden='x'", "not an integer"]),
    (["agents.maml.meta_gradient=exact"], ["agents.maml.meta_gradient='exact'", "dice"]),
    (["agents.ppo=1"], ["agents.<agent>.<field>"]),
    (["experiment.num_envs=0"], ["experiment.num_envs=0", "out of range"]),
    (["experiment.max_meta_train_s=5"], ["unknown field experiment.max_meta_train_s"]),
    (["experiment.torch_threads=0"], ["experiment.torch_threads=0"]),
])
def test_bad_overrides_name_the_field_and_value(overrides, words) -> None:
    with pytest.raises(ConfigError) as err:
        build_spec(TINY, overrides)
    for w in words:
        assert w in str(err.value)


def test_profiles_are_budgets_in_env_steps() -> None:
    quick, default, paper = (build_spec(profile=p).budget for p in ("quick", "default", "paper"))
    assert paper.seeds == (0, 1, 2, 3, 4) and default.seeds == (0, 1, 2)
    assert quick.meta_train_env_steps < default.meta_train_env_steps
    assert paper.meta_train_env_steps >= default.meta_train_env_steps
    ns3 = build_spec(profile="quick", backend="ns3").budget
    assert ns3.meta_train_env_steps < quick.meta_train_env_steps
    assert "max_meta_train_s" not in dataclasses.asdict(default)
    with pytest.raises(ConfigError, match="--profile='long'"):
        build_spec(profile="long")


def test_the_seed_plan_is_the_one_every_phase_uses() -> None:
    spec = build_spec(TINY, profile="quick", seed=1)
    plan = spec.seed_plan
    assert plan == SeedPlan(1)
    # the run seeds and the adaptation seeds of the runs of one base seed never collide
    agent_seeds = {plan.agent_seed(r) for r in range(100)}
    assert len(agent_seeds) == 100 and all(plan.run_of(s) in range(100) for s in agent_seeds)
    assert len({plan.adaptation_seed(r, t) for r in range(10) for t in range(50)}) == 500
    with pytest.raises(ConfigError, match="--seed=0"):
        SeedPlan(0).run_of(plan.agent_seed(3))
    held = spec.held_out(spec.studies[0])
    assert held == plan.held_out(spec.studies[0].tasks, spec.budget.n_test_tasks)
    assert all(spec.studies[0].tasks.contains("test", t) for t, _ in held)
    assert len({s for _, s in held}) == len(held)


def test_phase_ids_name_their_files_and_checkpoints() -> None:
    spec = build_spec(TINY, profile="quick")
    phases = [p for p, _ in study_phases(spec)]
    assert len(set(phases)) == len(phases)
    train = PhaseId("train", "main", "maml", 0)
    assert str(train) == "train:main:maml:0" and train.adapted.trained == train
    assert phases.index(train) + 1 == phases.index(train.adapted)
    assert train.checkpoint == "checkpoints/main-maml-s0.pt"
    assert str(PhaseId("baseline", "small", "upper_bound")) == "baseline:small:upper_bound"
