"""CounterEnv: a `BatchedEnv` in plain torch whose observations count steps.

Shared by the adapter and CLI tests (loaded by file path: the tests are not a package).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dhal.envs.api import StepResult


class CounterEnv:
    """Observations count steps, so any stale or aliased observation shows up as a wrong number.

    - "actor" [N, 2]: (global step count, episode step count); "critic" [N, 3]: actor + env index.
    - Episodes are truncated after `max_episode_length` steps; an env terminates when its first
      action exceeds `fail_above`.
    - Like a simulator writing into preallocated buffers, it updates one observation buffer in
      place and hands that same buffer out, which is exactly what the adapters must survive.
    """

    def __init__(
        self, num_envs: int = 4, max_episode_length: int = 5, fail_above: float = 2.5, num_actions: int = 3
    ) -> None:
        self.num_envs = num_envs
        self.num_actions = num_actions
        self.device = torch.device("cpu")
        self.step_dt = 0.02
        self.max_episode_length = max_episode_length
        self.observation_sizes = {"actor": 2, "critic": 3}
        self.action_low = -3.0
        self.action_high = 3.0
        self.reward_group_names = ("glide", "push")
        self.cfg: dict[str, Any] = {"decimation": 4}
        self.fail_above = fail_above
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long)
        self.global_step = 0
        self.closed = False
        self._obs_buffer = {name: torch.zeros(num_envs, size) for name, size in self.observation_sizes.items()}
        self._write_observations()

    def _write_observations(self) -> None:
        actor = self._obs_buffer["actor"]
        actor[:, 0] = float(self.global_step)
        actor[:, 1] = self.episode_length_buf.float()
        self._obs_buffer["critic"][:, :2] = actor
        self._obs_buffer["critic"][:, 2] = torch.arange(self.num_envs, dtype=torch.float32)

    def reset(self, env_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if env_ids is None:
            env_ids = torch.arange(self.num_envs)
        self.episode_length_buf[env_ids] = 0
        self._write_observations()
        return self._obs_buffer

    def observations(self) -> dict[str, torch.Tensor]:
        return self._obs_buffer

    def step(self, actions: torch.Tensor) -> StepResult:
        assert actions.shape == (self.num_envs, self.num_actions), actions.shape
        self.global_step += 1
        self.episode_length_buf += 1
        terminated = actions[:, 0] > self.fail_above
        truncated = (self.episode_length_buf >= self.max_episode_length) & ~terminated
        done = terminated | truncated
        self._write_observations()
        final_observations = {name: value.clone() for name, value in self._obs_buffer.items()}
        next_state = self.episode_length_buf.float().unsqueeze(-1)
        reward_groups = torch.stack([torch.full((self.num_envs,), 0.25), actions[:, 1].clamp(0, 1)], dim=-1)
        if bool(done.any()):
            self.reset(done.nonzero().squeeze(-1))
        extras = {
            "reward_groups": reward_groups,
            "reward_group_names": self.reward_group_names,
            "time_outs": truncated.clone(),
            "dynamics_targets": {"next_state": next_state, "next_contacts": torch.zeros(self.num_envs, 4)},
            "log": {"/counter/global_step": float(self.global_step)},
            "final_observations": final_observations,
            "metrics": {"episode_step": next_state.squeeze(-1), "actions": actions.clone()},
        }
        return StepResult(self._obs_buffer, reward_groups.sum(-1), terminated, truncated, extras)

    def render(self, env_id: int = 0, width: int = 640, height: int = 480) -> np.ndarray:
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        frame[..., 0] = (self.global_step * 10) % 256
        return frame

    def close(self) -> None:
        self.closed = True
