"""RslRlVecEnv against rsl-rl's own expectations, on the counter env and (when it exists) the real one."""

from __future__ import annotations

import copy

import torch
from rsl_rl.env import VecEnv
from rsl_rl.runners import OnPolicyRunner
from tensordict import TensorDict

from dhal.envs.adapters import RslRlVecEnv

NUM_STEPS_PER_ENV = 6

# The smallest 5.x config that exercises the whole runner: two groups, MLPs, one minibatch.
TINY_TRAIN_CFG = {
    "num_steps_per_env": NUM_STEPS_PER_ENV,
    "save_interval": 1,
    "obs_groups": {"actor": ["actor"], "critic": ["actor", "critic"]},
    "algorithm": {
        "class_name": "PPO",
        "num_learning_epochs": 1,
        "num_mini_batches": 1,
        "learning_rate": 1e-3,
    },
    "actor": {
        "class_name": "MLPModel",
        "hidden_dims": [16, 16],
        "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 1.0},
    },
    "critic": {"class_name": "MLPModel", "hidden_dims": [16, 16]},
}


def test_exposes_the_vec_env_contract(counter_env):
    vec_env = RslRlVecEnv(counter_env)
    assert isinstance(vec_env, VecEnv)
    assert vec_env.num_envs == counter_env.num_envs
    assert vec_env.num_actions == counter_env.num_actions
    assert vec_env.max_episode_length == counter_env.max_episode_length
    assert vec_env.device == counter_env.device
    assert vec_env.cfg is counter_env.cfg
    assert vec_env.unwrapped is counter_env


def test_observations_are_a_tensordict_ready_after_construction(counter_env):
    counter_env.global_step = 7
    obs = RslRlVecEnv(counter_env).get_observations()
    assert isinstance(obs, TensorDict)
    assert obs.batch_size == torch.Size([counter_env.num_envs])
    assert set(obs.keys()) == {"actor", "critic"}
    assert obs["critic"].shape == (counter_env.num_envs, 3)
    assert torch.all(obs["actor"][:, 0] == 7)


def test_step_returns_dones_time_outs_and_the_learner_extras(make_counter_env):
    env = make_counter_env(num_envs=4, max_episode_length=2)
    vec_env = RslRlVecEnv(env)
    fail_env_0 = torch.zeros(4, env.num_actions)
    fail_env_0[0, 0] = 3.0
    vec_env.step(fail_env_0)
    obs, rewards, dones, extras = vec_env.step(fail_env_0)
    # Env 0 failed; the others hit the time limit on this second step.
    assert dones.tolist() == [True, True, True, True]
    assert extras["time_outs"].tolist() == [False, True, True, True]
    assert rewards.shape == (4,) and rewards.dtype == torch.float32
    assert extras["reward_groups"].shape == (4, 2)
    assert extras["reward_group_names"] == ("glide", "push")
    assert extras["dynamics_targets"]["next_state"].shape == (4, 1)
    assert "/counter/global_step" in extras["log"]
    assert torch.all(obs["actor"][:, 1] == 0), "done envs must already be reset"


def test_returned_observations_are_never_updated_afterwards(counter_env):
    vec_env = RslRlVecEnv(counter_env)
    actions = torch.zeros(counter_env.num_envs, counter_env.num_actions)
    first = vec_env.get_observations()
    after_one, *_ = vec_env.step(actions)
    vec_env.step(actions)
    assert torch.all(first["actor"][:, 0] == 0)
    assert torch.all(after_one["actor"][:, 0] == 1)


def test_episode_length_buf_assignment_reaches_the_env(counter_env):
    vec_env = RslRlVecEnv(counter_env)
    vec_env.episode_length_buf = torch.tensor([0, 1, 2, 3], dtype=torch.int32)
    assert counter_env.episode_length_buf.dtype == torch.long
    assert counter_env.episode_length_buf.tolist() == [0, 1, 2, 3]
    assert vec_env.episode_length_buf is counter_env.episode_length_buf


def test_on_policy_runner_trains_and_stores_unaliased_observations(make_counter_env, tmp_path):
    env = make_counter_env(num_envs=8, max_episode_length=4)
    runner = OnPolicyRunner(RslRlVecEnv(env), copy.deepcopy(TINY_TRAIN_CFG), log_dir=str(tmp_path), device="cpu")
    runner.learn(num_learning_iterations=2, init_at_random_ep_len=True)

    # Storage keeps the second iteration. Transition t holds the observation the policy acted
    # on, global step NUM_STEPS_PER_ENV + t; an aliased buffer would store the next one.
    stored_step = runner.alg.storage.observations["actor"][..., 0]
    expected = torch.arange(NUM_STEPS_PER_ENV, 2 * NUM_STEPS_PER_ENV, dtype=torch.float32)
    assert torch.equal(stored_step, expected.unsqueeze(1).expand(-1, env.num_envs))
    assert (tmp_path / "model_1.pt").exists()
