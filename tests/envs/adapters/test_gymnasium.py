"""GymnasiumVectorEnv against gymnasium 1.x's vector conventions, on the counter env."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from dhal.envs.adapters import GymnasiumVectorEnv


def as_numpy(observations: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {name: value.numpy() for name, value in observations.items()}


def test_declares_same_step_autoreset_and_torch_spaces(counter_env):
    vec_env = GymnasiumVectorEnv(counter_env)
    assert isinstance(vec_env, VectorEnv)
    assert vec_env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert isinstance(vec_env.single_observation_space, spaces.Dict)
    assert {name: box.shape for name, box in vec_env.single_observation_space.items()} == {
        "actor": (2,),
        "critic": (3,),
    }
    assert vec_env.single_action_space == spaces.Box(-3.0, 3.0, (3,), np.float32)
    assert vec_env.action_space.shape == (4, 3)
    assert vec_env.observation_space["critic"].shape == (4, 3)


def test_reset_and_step_outputs_lie_in_the_spaces(counter_env):
    vec_env = GymnasiumVectorEnv(counter_env)
    obs, infos = vec_env.reset()
    assert infos == {}
    assert vec_env.observation_space.contains(as_numpy(obs))
    for _ in range(3):
        obs, rewards, terminated, truncated, _ = vec_env.step(vec_env.action_space.sample())
        assert vec_env.observation_space.contains(as_numpy(obs))
        assert rewards.shape == (4,) and rewards.dtype == torch.float32
        assert terminated.dtype == torch.bool and truncated.dtype == torch.bool
        assert all(value.device == counter_env.device for value in obs.values())
    sampled = vec_env.single_observation_space.sample()
    assert vec_env.single_observation_space.contains(sampled)


def test_reset_mask_resets_only_the_masked_envs(counter_env):
    vec_env = GymnasiumVectorEnv(counter_env)
    vec_env.reset()
    for _ in range(3):
        vec_env.step(torch.zeros(4, 3))
    obs, _ = vec_env.reset(options={"reset_mask": np.array([True, False, True, False])})
    assert obs["actor"][:, 1].tolist() == [0.0, 3.0, 0.0, 3.0]
    with pytest.raises(ValueError, match="reset_mask"):
        vec_env.reset(options={"reset_mask": np.ones(3, dtype=bool)})


def test_autoreset_happens_in_the_same_step_with_final_obs(make_counter_env):
    vec_env = GymnasiumVectorEnv(make_counter_env(num_envs=4, max_episode_length=3))
    vec_env.reset()
    actions = torch.zeros(4, 3)
    actions[1, 0] = 3.0  # env 1 fails on the first step
    obs, _, terminated, truncated, infos = vec_env.step(actions)
    assert terminated.tolist() == [False, True, False, False]
    assert infos["_final_obs"].tolist() == [False, True, False, False]
    assert obs["actor"][1, 1] == 0, "the failed env already starts its next episode"
    assert infos["final_obs"]["actor"][1, 1] == 1

    _, _, terminated, truncated, infos = vec_env.step(torch.zeros(4, 3))
    assert not (terminated | truncated).any()
    assert "final_obs" not in infos, "like SyncVectorEnv, only steps that end an episode carry it"

    obs, _, terminated, truncated, infos = vec_env.step(torch.zeros(4, 3))
    assert truncated.tolist() == [True, False, True, True]
    assert obs["actor"][:, 1].tolist() == [0.0, 2.0, 0.0, 0.0]
    assert infos["_final_obs"].tolist() == [True, False, True, True]
    assert infos["final_obs"]["actor"][:, 1].tolist() == [3.0, 2.0, 3.0, 3.0]


def test_infos_pair_every_per_env_entry_with_a_mask(counter_env):
    vec_env = GymnasiumVectorEnv(counter_env)
    vec_env.reset()
    _, _, _, _, infos = vec_env.step(torch.zeros(4, 3))
    entries = [key for key in infos if not key.startswith("_")]
    assert {"reward_groups", "time_outs", "dynamics_targets", "metrics"} <= set(entries)
    for key in entries:
        mask = infos[f"_{key}"]
        assert mask.dtype == torch.bool and mask.shape == (4,)
    assert infos["dynamics_targets"]["next_state"].shape == (4, 1)
    # Batch-level values are not per env, so they are not infos.
    assert "log" not in infos and "reward_group_names" not in infos
    assert vec_env.last_batch_extras["reward_group_names"] == ("glide", "push")
    assert vec_env.reward_group_names == ("glide", "push")


def test_returned_data_is_not_reused(counter_env):
    """gymnasium.utils.env_checker.check_returned_data_not_reused, for the vector API."""
    vec_env = GymnasiumVectorEnv(counter_env)
    reset_obs, _ = vec_env.reset()
    first, *_ = vec_env.step(torch.zeros(4, 3))
    second, *_ = vec_env.step(torch.zeros(4, 3))
    assert torch.all(reset_obs["actor"][:, 0] == 0)
    assert torch.all(first["actor"][:, 0] == 1)
    assert all(first[name].data_ptr() != second[name].data_ptr() for name in first)


def test_steps_are_deterministic_for_equal_actions(make_counter_env):
    """gymnasium.utils.env_checker.check_step_determinism, for the vector API."""
    runs = []
    for _ in range(2):
        vec_env = GymnasiumVectorEnv(make_counter_env())
        vec_env.reset()
        vec_env.action_space.seed(5)
        runs.append([vec_env.step(vec_env.action_space.sample()) for _ in range(6)])
    for (obs_a, rew_a, term_a, trunc_a, _), (obs_b, rew_b, term_b, trunc_b, _) in zip(*runs):
        assert all(torch.equal(obs_a[name], obs_b[name]) for name in obs_a)
        assert torch.equal(rew_a, rew_b) and torch.equal(term_a, term_b) and torch.equal(trunc_a, trunc_b)


def test_reset_seed_reaches_an_env_that_can_be_seeded(counter_env):
    seeds: list[int] = []
    counter_env.seed = seeds.append  # type: ignore[attr-defined]
    vec_env = GymnasiumVectorEnv(counter_env)
    vec_env.reset(seed=11)
    first_sample = vec_env.action_space.sample()
    vec_env.reset(seed=11)
    assert seeds == [11, 11]
    assert np.array_equal(first_sample, vec_env.action_space.sample())


def test_reset_seed_warns_when_the_env_cannot_be_seeded(counter_env):
    with pytest.warns(UserWarning, match="no seed"):
        GymnasiumVectorEnv(counter_env).reset(seed=1)


def test_render_and_close(counter_env):
    assert GymnasiumVectorEnv(counter_env).render() is None
    vec_env = GymnasiumVectorEnv(counter_env, render_mode="rgb_array", render_env_ids=(0, 2), render_size=(64, 48))
    frames = vec_env.render()
    assert frames is not None and len(frames) == 2 and frames[0].shape == (48, 64, 3)
    vec_env.close()
    assert vec_env.closed and counter_env.closed
