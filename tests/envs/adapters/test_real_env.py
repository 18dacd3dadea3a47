"""Both adapters on the real skateboard env, a few steps with 4 envs."""

from __future__ import annotations

import torch
from rsl_rl.runners import OnPolicyRunner
from tensordict import TensorDict

from dhal.envs.adapters import GymnasiumVectorEnv, RslRlVecEnv

NUM_ENVS = 4
STEPS = 5


def test_rsl_rl_adapter_steps_the_real_env(real_make_env):
    vec_env = RslRlVecEnv(real_make_env(num_envs=NUM_ENVS))
    try:
        obs = vec_env.get_observations()
        assert isinstance(obs, TensorDict) and obs.batch_size == torch.Size([NUM_ENVS])
        for _ in range(STEPS):
            actions = torch.zeros(NUM_ENVS, vec_env.num_actions, device=vec_env.device)
            obs, rewards, dones, extras = vec_env.step(actions)
            assert rewards.shape == (NUM_ENVS,) and dones.shape == (NUM_ENVS,)
            assert torch.isfinite(rewards).all()
            assert extras["time_outs"].shape == (NUM_ENVS,)
            assert all(torch.isfinite(value).all() for value in obs.values())
    finally:
        vec_env.close()


def test_gymnasium_adapter_steps_the_real_env(real_make_env):
    vec_env = GymnasiumVectorEnv(real_make_env(num_envs=NUM_ENVS))
    try:
        obs, _ = vec_env.reset()
        assert vec_env.observation_space.contains({k: v.cpu().numpy() for k, v in obs.items()})
        vec_env.action_space.seed(0)
        for _ in range(STEPS):
            obs, rewards, terminated, truncated, infos = vec_env.step(vec_env.action_space.sample())
            assert rewards.shape == (NUM_ENVS,)
            assert terminated.dtype == torch.bool and truncated.dtype == torch.bool
            assert all(f"_{key}" in infos for key in infos if not key.startswith("_"))
    finally:
        vec_env.close()


def test_on_policy_runner_runs_an_iteration_on_the_real_env(real_make_env, tmp_path):
    vec_env = RslRlVecEnv(real_make_env(num_envs=NUM_ENVS))
    groups = list(vec_env.unwrapped.observation_sizes)
    train_cfg = {
        "num_steps_per_env": 4,
        "save_interval": 1,
        "obs_groups": {"actor": groups, "critic": groups},
        "algorithm": {"class_name": "PPO", "num_learning_epochs": 1, "num_mini_batches": 1},
        "actor": {
            "class_name": "MLPModel",
            "hidden_dims": [32],
            "distribution_cfg": {"class_name": "BetaDistribution", "action_range": [-3.0, 3.0]},
        },
        "critic": {"class_name": "MLPModel", "hidden_dims": [32]},
    }
    try:
        runner = OnPolicyRunner(vec_env, train_cfg, log_dir=str(tmp_path), device="cpu")
        runner.learn(num_learning_iterations=1, init_at_random_ep_len=True)
        assert (tmp_path / "model_0.pt").exists()
    finally:
        vec_env.close()
