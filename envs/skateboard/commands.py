"""Velocity commands (vx, vy, yaw rate) with DHAL's dead zones and periodic resampling."""

from __future__ import annotations

import torch

from dhal.envs.skateboard.config import CommandConfig


def commands_from_uniforms(uniforms: torch.Tensor, cfg: CommandConfig) -> torch.Tensor:
    """[n, 3] commands from [n, 2] U(0, 1) draws (vx, yaw rate). vy is always 0; small |vx| and
    |yaw rate| are zeroed (dead zones). A pure function, so a compiled step can hold it while the
    env draws the numbers."""
    vx = cfg.lin_vel_x[0] + (cfg.lin_vel_x[1] - cfg.lin_vel_x[0]) * uniforms[:, 0]
    yaw = cfg.ang_vel_yaw[0] + (cfg.ang_vel_yaw[1] - cfg.ang_vel_yaw[0]) * uniforms[:, 1]
    vx = torch.where(vx.abs() <= cfg.lin_vel_deadzone, 0.0, vx)
    yaw = torch.where(yaw.abs() <= cfg.ang_vel_deadzone, 0.0, yaw)
    return torch.stack((vx, torch.zeros_like(vx), yaw), dim=-1)


def resample_due(episode_steps: torch.Tensor, resample_steps: int) -> torch.Tensor:
    """[N] bool: envs whose command is resampled at this step (every `resample_steps`)."""
    return (episode_steps % resample_steps == 0) & (episode_steps > 0)
