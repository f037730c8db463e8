"""`iabmeta reproduce --ray-address ...` end to end: a study whose rollouts run on Ray workers
of a running cluster gives the results of the same study run in one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TINY = Path(__file__).parents[1] / "data" / "tiny_experiment.toml"
ROOT = Path(__file__).parents[2]


def _methods(out: Path) -> tuple[dict, dict]:
    """Every result of every method except wall-clock times, and the rollout totals."""
    data = json.loads((out / "results.json").read_text())
    methods = {m: {k: v for k, v in values.items() if "wall" not in k}
               for m, values in data["studies"]["main"]["methods"].items()}
    return methods, data["rollouts"]


def test_a_study_on_a_ray_cluster_equals_the_local_study(pool, tmp_path) -> None:
    import ray

    # no wall-clock cap: both runs spend exactly the step budget
    config = tmp_path / "exp.toml"
    config.write_text(TINY.read_text().replace("max_meta_train_s = 20.0",
                                               "max_meta_train_s = 1e9"))
    local = tmp_path / "local"
    assert main(["reproduce", "--quick", "--config", str(config), "--out", str(local),
                 "--envs-per-job", "1"]) == 0
    address = ray.get_runtime_context().gcs_address  # the session's cluster, on loopback
    remote = tmp_path / "remote"
    proc = subprocess.run(
        [sys.executable, "-m", "agents.cli", "reproduce", "--quick", "--config", str(config),
         "--out", str(remote), "--envs-per-job", "1", "--ray-address", address,
         "--ray-workers", "2"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rollouts on Ray" in proc.stdout and "2 workers" in proc.stdout
    local_methods, local_rollouts = _methods(local)
    remote_methods, remote_rollouts = _methods(remote)
    assert remote_methods == local_methods  # every metric, curve and ratio
    assert remote_rollouts["jobs"] == local_rollouts["jobs"] > 0
    assert remote_rollouts["retries"] == 0
    assert "Rollouts:" in (remote / "report.md").read_text()
