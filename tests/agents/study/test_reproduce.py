"""`iabmeta reproduce` end to end on a tiny study: outputs, resume after a kill, bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.cli import main

TINY = Path(__file__).parents[2] / "data" / "tiny_experiment.toml"
ROOT = Path(__file__).parents[3]
PROMISED = ("results.json", "report.md", "adaptation_curves.csv", "training_curves.csv",
            "metrics.png", "adaptation.png", "training.png")


def _check_outputs(out: Path) -> dict:
    for name in PROMISED:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for png in ("metrics.png", "adaptation.png", "training.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    methods = results["studies"]["main"]["methods"]
    expected = {"ppo", "maml", "rl2", "attention", "random", "round_robin", "greedy_max_sinr",
                "proportional_fair", "upper_bound"}
    assert expected <= set(methods)
    for name, m in methods.items():
        assert m["throughput_mbps"] >= 0 and math.isfinite(m["throughput_mbps"]), name
        for k in ("sinr_violation_rate", "latency_violation_rate", "jain_fairness"):
            assert 0.0 <= m[k] <= 1.0, (name, k, m[k])
        assert 0 <= m.get("fraction_of_upper_bound", 0) <= 1.5
    assert methods["upper_bound"]["throughput_mbps"] > 0
    for agent in ("ppo", "ppo_finetune", "maml", "rl2", "attention"):
        m = methods[agent]  # the mode on the same episodes, and what adaptation bought
        assert math.isfinite(m["mode_throughput_mbps"]) and m["mode_throughput_mbps"] >= 0
        assert 0 <= m["mode_fraction_of_best_heuristic"] <= 2
        assert math.isfinite(m["adaptation_gain_mbps"])
        assert abs(m["adaptation_gain_vs_best_heuristic"]) < 2
        curve = m["adaptation_curve"]
        assert len(curve) == 2 and all("mode_sinr_violation_rate" in p for p in curve)
        # the few-shot protocol within a 1-episode budget: zero-shot and after 1 episode
        fs = m["few_shot"]
        assert fs["episodes"] == [0, 1] and len(fs["ratio"]) == len(fs["mode_gain"]) == 2
        assert fs["gain"][0] == 0.0 and 0 <= fs["sinr_violations_during_adaptation"] <= 1
        best = methods[m["best_heuristic"]]["adaptation_curve"]
        assert fs["ratio"][1] == pytest.approx(
            curve[1]["throughput_mbps"] / best[1]["throughput_mbps"])
    # the warm-started agents spent part of their budget on the teacher's demonstrations
    assert methods["maml"]["warm_start_env_steps"] > 0 == methods["ppo"]["warm_start_env_steps"]
    assert results["versions"]["torch"] and results["budget"]["adapt_episodes"] == 1
    report = (out / "report.md").read_text()
    for label in ("PPO", "MAML", "RNN", "attention", "Upper bound", "vs PPO", "fine-tune",
                  "mode (most likely allocation)", "adaptation gain", "Few-shot adaptation",
                  "SINR viol. during adaptation"):
        assert label in report
    return results


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("quick") / "run"
    assert main(["reproduce", "--quick", "--config", str(TINY), "--out", str(out)]) == 0
    return out, ""


def test_reproduce_quick_writes_every_promised_file(quick_run):
    _check_outputs(quick_run[0])


@pytest.mark.parametrize("method", ["maml", "rl2", "attention", "ppo", "greedy_max_sinr",
                                    "upper_bound"])
def test_evaluate_gives_the_numbers_reproduce_recorded(quick_run, capsys, method):
    """`iabmeta evaluate` of a reproduce checkpoint (or a baseline) replays the recorded
    adaptation: same seeds, same reloading, so every record is identical."""
    out = quick_run[0]
    args = ["evaluate", "--profile", "quick", "--config", str(TINY), "--agent", method]
    if method in ("greedy_max_sinr", "upper_bound"):
        recorded = json.loads((out / "phases" / f"baseline__main__{method}.json").read_text())
    else:
        recorded = json.loads((out / "phases" / f"adapt__main__{method}__0.json").read_text())
        args += ["--checkpoint", str(out / "checkpoints" / f"main-{method}-s0.pt")]
    capsys.readouterr()
    assert main(args) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["records"] == recorded and len(recorded) > 0


def test_reproduce_prints_its_plan(tmp_path, capsys):
    exp = tmp_path / "exp.toml"
    exp.write_text(TINY.read_text().replace('seeds = [0]', 'seeds = [0]\nagents = ["ppo"]'))
    assert main(["reproduce", "--quick", "--config", str(exp), "--out",
                 str(tmp_path / "o"), "--set", "agents.ppo.adapt_learning_rate=5e-4"]) == 0
    printed = capsys.readouterr().out
    assert "reproduce" in printed and "profile=quick agents=ppo" in printed
    assert "wrote" in printed


def _methods(out: Path) -> dict:
    data = json.loads((out / "results.json").read_text())["studies"]["main"]["methods"]
    keys = ("throughput_mbps", "sinr_violation_rate", "latency_violation_rate",
            "jain_fairness")
    return {m: {k: round(v[k], 9) for k in keys} for m, v in data.items()}


def test_parallel_phases_give_the_results_of_one_at_a_time(quick_run, tmp_path):
    """--jobs 2 runs phases in two worker processes; every phase seeds itself, so the
    results are those of the sequential run, and every phase's rollout record is kept."""
    out = tmp_path / "parallel"
    assert main(["reproduce", "--quick", "--config", str(TINY), "--out", str(out),
                 "--jobs", "2"]) == 0
    assert _methods(out) == _methods(quick_run[0])
    rollouts = json.loads((out / "results.json").read_text())["rollouts"]
    sequential = json.loads((quick_run[0] / "results.json").read_text())["rollouts"]
    assert set(rollouts["per_phase"]) == set(sequential["per_phase"])
    assert rollouts["env_steps"] == sequential["env_steps"] > 0


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(tmp_path):
    cmd = [sys.executable, "-m", "agents.cli", "reproduce", "--quick", "--config", str(TINY)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen([*cmd, "--out", str(interrupted)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    phases = interrupted / "phases"
    deadline = time.monotonic() + 240
    # kill it once some phases are done but not all of them
    while time.monotonic() < deadline:
        done = list(phases.glob("*.json")) if phases.exists() else []
        if any(p.name.startswith("train") for p in done):
            break
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be interrupted:\n"
                        + proc.stdout.read().decode())
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    finished = {p.name: p.stat().st_mtime_ns for p in phases.glob("*.json")}
    assert finished and not (interrupted / "report.md").exists()

    second = subprocess.run([*cmd, "--out", str(interrupted)], env=env, capture_output=True,
                            text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert f"{len(finished)} of" in second.stdout and "resuming" in second.stdout
    for name, mtime in finished.items():  # finished work was not repeated
        assert (phases / name).stat().st_mtime_ns == mtime
    _check_outputs(interrupted)

    straight = tmp_path / "straight"
    third = subprocess.run([*cmd, "--out", str(straight)], env=env, capture_output=True,
                           text=True, timeout=600)
    assert third.returncode == 0, third.stderr
    assert _methods(interrupted) == _methods(straight)


@pytest.mark.parametrize(("content", "words"), [
    ("[scenario.radio]\nn_channels = 0\n", ["radio.n_channels=0", "out of range"]),
    ("[experiment]\nagents = [\"dqn\"]\n", ["experiment.agents", "dqn"]),
    ("[experiment]\nepochs = 3\n", ["experiment.epochs"]),
    ("[tasks.test]\nue_speed_mps = [[0.5, 4.0]]\n", ["overlaps"]),
    ("not toml at all [", ["not valid"]),
    ("[experiment]\nenvs_per_job = 0\n", ["experiment.envs_per_job=0", "out of range"]),
    ("[agents.ppo]\nlearning_rate = -1.0\n", ["agents.ppo.learning_rate=-1.0", "range"]),
    ("[agents.maml]\nouter_learning_rate = 1.0\n", ["agents.maml.outer_learning_rate"]),
    ("[agents.sac]\ngamma = 0.9\n", ["[agents.sac]"]),
    ("[experiment]\nmax_meta_train_s = 5.0\n", ["experiment.max_meta_train_s"]),
    ("[experiment]\nprofile = \"huge\"\n", ["huge", "paper"]),
    ("[experiment]\nnum_envs = 2.5\n", ["experiment.num_envs=2.5"]),
])
def test_bad_config_file_gets_a_clear_error(tmp_path, capsys, content, words):
    bad = tmp_path / "bad.toml"
    bad.write_text(content)
    assert main(["reproduce", "--quick", "--config", str(bad), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err


def test_bad_options_get_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--backend", "ns4"])
    assert "ns4" in capsys.readouterr().err
    assert main(["reproduce", "--quick", "--set", "radio.carrier_ghz=500", "--out",
                 str(tmp_path / "o")]) == 2
    assert "radio.carrier_ghz=500" in capsys.readouterr().err
    assert main(["reproduce", "--quick", "--set", "agents.ppo.gamma=2", "--out",
                 str(tmp_path / "o")]) == 2
    assert "agents.ppo.gamma=2.0 is out of range" in capsys.readouterr().err
    assert main(["reproduce", "--quick", "--profile", "paper", "--out",
                 str(tmp_path / "o")]) == 2
    assert "--quick and --profile=paper" in capsys.readouterr().err
    assert main(["reproduce", "--quick", "--config", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["reproduce", "--quick", "--envs-per-job", "-3", "--out",
                 str(tmp_path / "o")]) == 2
    assert "experiment.envs_per_job=-3" in capsys.readouterr().err
    # a malformed Ray address is refused before any work (and before Ray is started)
    assert main(["reproduce", "--quick", "--ray-address", "headnode", "--out",
                 str(tmp_path / "o")]) == 2
    assert "--ray-address='headnode'" in capsys.readouterr().err


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_to_a_parallel_run_leaves_no_worker_behind(tmp_path):
    """`kill <pid>` of `reproduce --jobs 2` (the parent only, not its group) while phases run
    in worker processes: the run stops with its interrupt message and its workers go too."""
    cmd = [sys.executable, "-m", "agents.cli", "reproduce", "--quick", "--jobs", "2",
           "--config", str(TINY), "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        workers: set[int] = set()
        while time.monotonic() < deadline and len(workers) < 2:  # the pool's workers
            assert proc.poll() is None, proc.stderr.read().decode()
            workers = _children(proc.pid)
            time.sleep(0.1)
        assert workers
        time.sleep(1.0)  # let them start a phase
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and b"interrupted" in err
        gone = time.monotonic() + 20
        while time.monotonic() < gone and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "a worker outlived its run"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
