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
