"""Gymnasium faces: env checker, registration, spaces."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

import bridge  # noqa: F401  (registers the environments)
from bridge.fallback.env import IABEnv, IABVectorEnv


def test_check_env_passes(small_config):
    check_env(IABEnv(small_config), skip_render_check=True)


def test_gymnasium_make_and_make_vec():
    env = gym.make("IABMeta/Fallback-v0", config={"topology": {"n_ue": 5}})
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["action_mask"].shape == (40, 29)
    vec = gym.make_vec("IABMeta/Fallback-v0", num_envs=3, vectorization_mode="vector_entry_point")
    obs, info = vec.reset(seed=0)
    assert obs.shape == (3, env.observation_space.shape[0])
    assert info["action_mask"].shape == (3, 40, 29)


def test_vector_and_single_spaces_agree(small_config):
    vec = IABVectorEnv(5, small_config)
    single = IABEnv(small_config)
    assert vec.single_observation_space == single.observation_space
    assert vec.single_action_space == single.action_space


def test_set_tasks_pins_the_deployment_across_episodes(small_config):
    from bridge.tasks import TaskDistribution

    dist = TaskDistribution.for_config(small_config)
    tasks = dist.sample("test", seed=1, n=2)
    vec = IABVectorEnv(2, small_config)
    vec.set_tasks(tasks, [5, 6])
    vec.reset(seed=0)
    first = [i.to_dict() for i in vec.instances]
    assert [i.n_ue for i in vec.instances] == [t.n_ue for t in tasks]
    for _ in range(small_config.dynamics.episode_frames + 2):
        vec.step(np.zeros((2, vec.layout.action_size), dtype=np.int64))
    vec.reset()
    assert [i.to_dict() for i in vec.instances] == first


def test_episode_option_starts_episode_k_directly(small_config):
    """reset(options={"episode": k}) gives the episode that k seedless resets reach."""
    frames = small_config.dynamics.episode_frames
    idle = np.zeros((3, IABVectorEnv(1, small_config).layout.action_size), dtype=np.int64)

    def first_frames(env: IABVectorEnv, obs: np.ndarray) -> list[np.ndarray]:
        out = [obs]
        for _ in range(5):
            obs, *_ = env.step(idle)
            out.append(obs)
        return out

    walked = IABVectorEnv(3, small_config)
    walked.reset(seed=[11, 12, 13])
    for _ in range(2):
        for _ in range(frames):
            walked.step(idle)
        obs, _ = walked.reset()
    expected = first_frames(walked, obs)

    direct = IABVectorEnv(3, small_config)
    obs, _ = direct.reset(seed=[11, 12, 13], options={"episode": 2})
    assert all(np.array_equal(a, b) for a, b in zip(first_frames(direct, obs), expected))
    # per environment: only the middle one at episode 2
    obs, _ = direct.reset(seed=[11, 12, 13], options={"episode": [0, 2, 0]})
    got = first_frames(direct, obs)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(got, expected))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(got, expected))


def test_repinning_the_same_deployments_reuses_them(small_config):
    from bridge.tasks import TaskDistribution

    tasks = TaskDistribution.for_config(small_config).sample("train", seed=3, n=2)
    env = IABVectorEnv(2, small_config)
    env.reset(seed=[1, 2], options={"tasks": tasks, "instance_seeds": [7, 8]})
    core, instances = env.core, env.instances
    env.reset(seed=[3, 4], options={"tasks": tasks, "instance_seeds": [7, 8], "episode": 1})
    assert env.core is core and all(a is b for a, b in zip(env.instances, instances))
    env.reset(seed=[3, 4], options={"tasks": tasks, "instance_seeds": [7, 9]})
    assert env.core is not core and env.instances[0] is instances[0]


def test_bad_reset_options_are_refused(small_config):
    import pytest

    env = IABVectorEnv(2, small_config)
    for options, fragment in (({"episode": -1}, "episode=-1"),
                              ({"episode": [0]}, "1 entries for 2"),
                              ({"episode": 1.5}, "episode=1.5"),
                              ({"epsiode": 1}, "['epsiode'] are unknown")):
        with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
            env.reset(seed=0, options=options)
