"""`iabmeta reproduce --ray-address ...` end to end, the way the README sets up a cluster: a
head started with `ray start --head` (on loopback), the study run as a separate driver that
connects to it. The study gives the results of the same study run in one process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.cli import main
from tests.ray.conftest import alive, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TINY = Path(__file__).parents[1] / "data" / "tiny_experiment.toml"
ROOT = Path(__file__).parents[2]
RAY_VARIABLES = ("RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the Ray settings the test session made."""
    env = {k: v for k, v in os.environ.items() if k not in RAY_VARIABLES}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A Ray head node started by the `ray` command (blocking, in its own process group)."""
    gcs, client = free_port(), free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2",
         "--include-dashboard=false", f"--ray-client-server-port={client}",
         "--disable-usage-stats"],
        env=clean_env(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0"), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", client)) == 0
        wait_for(up, 90, "the Ray head node")
        yield {"gcs": f"127.0.0.1:{gcs}", "client": f"ray://127.0.0.1:{client}"}
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(60)
        wait_for(lambda: not alive(head.pid), 30, "the Ray head to stop")


def _methods(out: Path) -> tuple[dict, dict]:
    """Every result of every method except wall-clock times, and the rollout totals."""
    data = json.loads((out / "results.json").read_text())
    methods = {m: {k: v for k, v in values.items() if "wall" not in k}
               for m, values in data["studies"]["main"]["methods"].items()}
    return methods, data["rollouts"]


def test_a_study_on_a_ray_cluster_equals_the_local_study(ray_head, tmp_path) -> None:
    common = ["reproduce", "--quick", "--config", str(TINY), "--envs-per-job", "1"]
    local = tmp_path / "local"
    assert main([*common, "--out", str(local)]) == 0
    local_methods, local_rollouts = _methods(local)
    # the Ray Client address, and `auto` found through RAY_ADDRESS as on a cluster node
    for name, address, extra in (("client", ray_head["client"], {}),
                                 ("auto", "auto", {"RAY_ADDRESS": ray_head["gcs"]})):
        out = tmp_path / name
        proc = subprocess.run(
            [sys.executable, "-m", "agents.cli", *common, "--out", str(out),
             "--ray-address", address, "--ray-workers", "2"],
            cwd=ROOT, env=clean_env(**extra), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "rollouts on Ray" in proc.stdout and "2 workers" in proc.stdout
        methods, rollouts = _methods(out)
        assert methods == local_methods, name  # every metric, curve and ratio
        assert rollouts["jobs"] == local_rollouts["jobs"] > 0 and rollouts["retries"] == 0
        assert "Rollouts:" in (out / "report.md").read_text()
