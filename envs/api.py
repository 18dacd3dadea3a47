"""What every batched environment of this project offers, whatever its task or backend.

The adapters (rsl-rl VecEnv, gymnasium VectorEnv), the CLI and the learner depend only on this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


@dataclass
class StepResult:
    """One control step of all environments. Every tensor is freshly allocated (never a view of
    an internal buffer), because learners keep references to what `step` returns."""

    observations: dict[str, torch.Tensor]  # group name -> [N, D]; already reset where done
    reward: torch.Tensor  # [N] float, total over groups
    terminated: torch.Tensor  # [N] bool, failure (fall, detachment, ...)
    truncated: torch.Tensor  # [N] bool, episode time limit reached
    extras: dict[str, Any] = field(default_factory=dict)
    # extras keys set by the skateboard task:
    #   "reward_groups": [N, G] per-group reward, "reward_group_names": tuple[str, ...]
    #   "time_outs": [N] bool (== truncated), "dynamics_targets": {"next_state": [N, S],
    #   "next_contacts": [N, C]} taken before done envs were reset, "log": dict[str, float]
    #   (at a check-in, about the episodes ended since the last one, if any), "final_observations":
    #   {group: [N, D]} before done envs were reset (when resets are queued, every step),
    #   "terminations": {reason: [N] bool} (why each env terminated this step), "metrics":
    #   {name: [N] or [N, k]} physical quantities before resets (board speed, contacts, ...)


@runtime_checkable
class BatchedEnv(Protocol):
    num_envs: int
    num_actions: int
    device: torch.device
    step_dt: float
    max_episode_length: int
    episode_length_buf: torch.Tensor  # [N] int64; learners may overwrite it to desync clocks
    observation_sizes: dict[str, int]  # group name -> D
    action_low: float
    action_high: float
    reward_group_names: tuple[str, ...]
    cfg: Any

    def reset(self, env_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]: ...

    def observations(self) -> dict[str, torch.Tensor]: ...

    def step(self, actions: torch.Tensor) -> StepResult: ...

    def render(self, env_id: int = 0, width: int = 640, height: int = 480) -> np.ndarray: ...

    def close(self) -> None: ...
