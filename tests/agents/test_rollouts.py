"""The rollout layer on the local backend: jobs are pure, run the same side by side as alone,
start at any episode of a deployment, survive a dying environment, and refuse bad input."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from agents.networks import ActorCritic
from agents.rollouts import (
    LocalRollouts,
    PolicySnapshot,
    RolloutJob,
    pin_tasks,
    plan_jobs,
    run_jobs,
    task_slots,
)
from bridge.fallback.env import IABVectorEnv
from bridge.fallback.sharded import ShardedIABVectorEnv
from bridge.layout import ObservationLayout
from bridge.tasks import TaskDistribution
from tests.rollout_checks import assert_same_trajectory, mixed_jobs


@pytest.fixture
def setup(tiny_config):
    torch.manual_seed(0)
    layout = ObservationLayout.from_config(tiny_config)
    tasks = TaskDistribution.for_config(tiny_config).sample("train", 4, 3)
    policy = PolicySnapshot.capture(ActorCritic(layout, idle_bias=-1.0))
    other = PolicySnapshot.capture(ActorCritic(layout, idle_bias=1.0))
    return tiny_config, tasks, policy, other


def test_plan_jobs_splits_groups_and_refuses_bad_sizes(setup) -> None:
    config, tasks, policy, _ = setup
    jobs = mixed_jobs(config)
    assert [j.num_envs for j in jobs] == [2, 1, 2, 1]
    assert jobs[0].policy is jobs[1].policy is jobs[3].policy is not jobs[2].policy
    assert len({j.job_id for j in jobs}) == 4
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="envs_per_job"):
            plan_jobs([(task_slots(tasks[0], 1, [1]), policy)], envs_per_job=bad)


def test_a_job_gives_the_same_trajectory_alone_beside_others_and_again(setup) -> None:
    config = setup[0]
    jobs = mixed_jobs(config, episodes=2)
    together = LocalRollouts(lambda n: IABVectorEnv(n, config), config).run(jobs)
    again = LocalRollouts(lambda n: IABVectorEnv(n, config), config).run(jobs)
    alone = [LocalRollouts(lambda n: IABVectorEnv(n, config), config).run([j])[0] for j in jobs]
    for a, b, c in zip(together, again, alone):
        assert_same_trajectory(a, b)
        assert_same_trajectory(a, c)
    frames = config.dynamics.episode_frames
    assert together[0].steps == 2 * frames + 1
    assert [r["episode"] for r in together[0].episode_records] == [0, 0, 1, 1]
    # different noise seeds or a different policy give different actions
    assert not np.array_equal(together[0].arrays["action"][:, 0],
                              together[0].arrays["action"][:, 1])


@pytest.mark.parametrize("recurrent", [False, True])
def test_collect_groups_gives_each_group_what_collecting_it_alone_gives(setup, recurrent
                                                                         ) -> None:
    """An adaptation's sampled policy and its mode run side by side in one batch (and the
    jobs of one snapshot act as one batched actor): bit for bit what two separate collects
    give, with the sequential allocation and the ordered feedback memory."""
    config, tasks, _, _ = setup
    torch.manual_seed(3)
    layout = ObservationLayout.from_config(config)
    model = ActorCritic(layout, idle_bias=-2.0, memory="gru" if recurrent else "none",
                        allocation="sequential", feedback_memory="penalty_ordered")
    slots = task_slots(tasks[1], 31, [7, 8, 9])
    groups = [(slots, PolicySnapshot.capture(model)),
              (slots, PolicySnapshot.capture(model, deterministic=True))]
    kwargs = {"episodes": 2, "first_episode": 1, "trial": recurrent}

    def backend() -> LocalRollouts:
        return LocalRollouts(lambda n: IABVectorEnv(n, config), config, envs_per_job=2)

    together = backend().collect_groups(groups, **kwargs)
    alone = [backend().collect([group], **kwargs) for group in groups]
    assert len(together) == 2
    for a, b in zip(together, alone):
        for key in ("obs", "mask", "action", "logprob", "value", "reward", "final_obs"):
            assert torch.equal(getattr(a, key), getattr(b, key)), key
        assert a.episode_records == b.episode_records
    # the mode is not the sampled policy
    assert not torch.equal(together[0].action, together[1].action)
    # a given vector environment (of one group's size) runs the groups one after another
    env = IABVectorEnv(len(slots), config)
    borrowed = LocalRollouts.from_env(env, envs_per_job=2).collect_groups(groups, **kwargs)
    assert all(torch.equal(a.action, b.action) for a, b in zip(borrowed, alone))


def test_first_episode_is_the_episode_a_continuous_run_reaches(setup) -> None:
    """Job episode k sees the traffic the baselines' continuous run sees in episode k."""
    config, tasks, policy, _ = setup
    frames = config.dynamics.episode_frames
    env = IABVectorEnv(2, config)
    pin_tasks(env, [tasks[0]], [21])
    idle = np.zeros((2, env.layout.action_size), dtype=np.int64)
    for _ in range(2 * (frames + 1)):
        env.step(idle)  # episodes 0 and 1 and their autoreset steps
    continuous = [env.step(idle)[0] for _ in range(5)]
    job = RolloutJob(0, tuple(task_slots(tasks[0], 21, [5, 6])),
                     PolicySnapshot.capture(ActorCritic(env.layout, idle_bias=50.0)),
                     first_episode=2)
    trajectory = LocalRollouts(lambda n: IABVectorEnv(n, config), config).run([job])[0]
    assert np.array_equal(trajectory.arrays["action"], np.zeros_like(
        trajectory.arrays["action"]))  # a policy that always idles, like the loop above
    assert all(np.array_equal(trajectory.arrays["obs"][t + 1], continuous[t])
               for t in range(4))


def test_bad_jobs_are_refused(setup) -> None:
    config, tasks, policy, _ = setup
    slots = tuple(task_slots(tasks[0], 1, [1, 2]))
    recurrent = PolicySnapshot.capture(ActorCritic(policy.layout, memory="gru"))
    for kwargs, fragment in (({"episodes": 0}, "episodes=0"),
                             ({"first_episode": -2}, "first_episode=-2"),
                             ({"policy": recurrent}, "recurrent"),
                             ({"trial": True}, "memoryless"),
                             ({"slots": ()}, "non-empty")):
        with pytest.raises(ValueError, match=fragment):
            RolloutJob(**{"job_id": 0, "slots": slots, "policy": policy, **kwargs})
    backend = LocalRollouts(lambda n: IABVectorEnv(n, config), config)
    job = RolloutJob(5, slots, policy)
    with pytest.raises(ValueError, match="job id 5 appears more than once"):
        backend.run([job, job])
    with pytest.raises(ValueError, match="has 3 envs; the jobs need 2"):
        run_jobs(IABVectorEnv(3, config), [job])
    with pytest.raises(ValueError, match="cannot run beside"):
        backend.run([job, RolloutJob(6, slots, policy, episodes=2)])
    broken = PolicySnapshot(policy.layout, policy.arch, {"nothing": np.zeros(1)})
    with pytest.raises(ValueError, match="does not fit its architecture"):
        backend.run([RolloutJob(7, slots, broken)])


def test_a_dead_shard_worker_is_replaced_and_the_jobs_rerun(setup) -> None:
    config = setup[0]
    jobs = mixed_jobs(config)
    expected = LocalRollouts(lambda n: IABVectorEnv(n, config), config).run(jobs)
    made: list[ShardedIABVectorEnv] = []

    def sharded(n: int) -> ShardedIABVectorEnv:
        made.append(ShardedIABVectorEnv(n, config, workers=2))
        return made[-1]

    backend = LocalRollouts(sharded, config)
    try:
        assert_same_trajectory(backend.run(jobs)[0], expected[0])  # sharded gives the same
        os.kill(made[0]._procs[1].pid, signal.SIGKILL)  # noqa: SLF001
        made[0]._procs[1].join(5)  # noqa: SLF001
        got = backend.run(jobs)
    finally:
        backend.close()
    assert len(made) == 2 and made[0]._closed  # noqa: SLF001 - replaced, old one closed
    for a, b in zip(got, expected):
        assert_same_trajectory(a, b)
        assert a.attempt == 2
    assert backend.stats.retries == len(jobs)
    assert backend.stats.jobs == 2 * len(jobs)
    assert "ShardWorkerError" in backend.stats.failures[0] or \
        "BrokenPipe" in backend.stats.failures[0]


def test_nothing_imports_ray_without_an_address(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    tiny = Path(__file__).parents[1] / "data" / "tiny_experiment.toml"
    code = ("import sys\n"
            "from agents.cli import main\n"
            f"assert main(['reproduce', '--quick', '--config', {str(tiny)!r}, '--out', "
            f"{str(tmp_path / 'run')!r}]) == 0\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'"
            " or m.endswith(('ray_pool', 'ray_worker'))))\n")
    root = Path(__file__).parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
