"""A `BatchedEnv` seen as an rsl-rl 5.x `VecEnv`, so `OnPolicyRunner` can train on it unchanged."""

from __future__ import annotations

from typing import Any

import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from dhal.envs.api import BatchedEnv

# StepResult.extras entries handed to the learner as they are. rsl-rl itself reads only "log";
# the DHAL learner reads the reward groups and the dynamics targets of its auxiliary loss.
PASSED_THROUGH_EXTRAS: tuple[str, ...] = (
    "reward_groups",
    "reward_group_names",
    "dynamics_targets",
    "log",
)


class RslRlVecEnv(VecEnv):
    """rsl-rl's view of a batched env: TensorDict observations and `dones = terminated | truncated`.

    rsl-rl never calls reset, so the env is reset once here and is ready when the runner starts.
    """

    def __init__(self, env: BatchedEnv) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.num_actions = env.num_actions
        self.max_episode_length = env.max_episode_length
        self.device = env.device
        self.cfg = env.cfg
        self._observations = self._as_tensordict(env.reset())

    @property
    def episode_length_buf(self) -> torch.Tensor:
        return self.env.episode_length_buf

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        # The runner assigns random lengths here (init_at_random_ep_len) to desynchronise the
        # episodes; they must reach the env, which owns the clock.
        self.env.episode_length_buf = value.to(device=self.device, dtype=torch.long)

    @property
    def unwrapped(self) -> BatchedEnv:
        return self.env

    def get_observations(self) -> TensorDict:
        return self._observations

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict[str, Any]]:
        result = self.env.step(actions.to(self.device))
        self._observations = self._as_tensordict(result.observations)
        dones = result.terminated | result.truncated
        extras: dict[str, Any] = {"time_outs": result.truncated.clone()}
        for key in PASSED_THROUGH_EXTRAS:
            if key in result.extras:
                extras[key] = result.extras[key]
        return self._observations, result.reward.clone(), dones, extras

    def close(self) -> None:
        self.env.close()

    def _as_tensordict(self, observations: dict[str, torch.Tensor]) -> TensorDict:
        # PPO keeps a reference to the observations it acted on until the next step; cloning here
        # means an env that reuses its buffers can never overwrite them (LEARNER.md 1.3: o_{t+1}
        # silently replaced o_t in storage). Each step builds a new TensorDict, never updated.
        groups = {name: value.clone() for name, value in observations.items()}
        return TensorDict(groups, batch_size=[self.num_envs], device=self.device)
