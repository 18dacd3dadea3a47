"""Velocity commands (vx, vy, yaw rate) with DHAL's dead zones and periodic resampling."""

from __future__ import annotations

import torch

from dhal.envs.skateboard.config import CommandConfig


def sample_commands(n: int, cfg: CommandConfig, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """[n, 3] commands. vy is always 0; small |vx| and |yaw rate| are zeroed (dead zones)."""

    def uniform(bounds: tuple[float, float]) -> torch.Tensor:
        u = torch.rand(n, generator=generator, device=device)
        return bounds[0] + (bounds[1] - bounds[0]) * u

    vx = uniform(cfg.lin_vel_x)
    yaw = uniform(cfg.ang_vel_yaw)
    vx = torch.where(vx.abs() <= cfg.lin_vel_deadzone, torch.zeros_like(vx), vx)
    yaw = torch.where(yaw.abs() <= cfg.ang_vel_deadzone, torch.zeros_like(yaw), yaw)
    return torch.stack((vx, torch.zeros_like(vx), yaw), dim=-1)


def resample_due(episode_steps: torch.Tensor, resample_steps: int) -> torch.Tensor:
    """[N] bool: envs whose command is resampled at this step (every `resample_steps`)."""
    return (episode_steps % resample_steps == 0) & (episode_steps > 0)
