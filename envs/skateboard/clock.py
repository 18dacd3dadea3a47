"""The push/glide phase clock and its low-pass gates (DHAL.md §1.9, with the filter normalised)."""

from __future__ import annotations

import math

import torch

from dhal.envs.skateboard.config import ClockConfig


def clock_phase(time_s: torch.Tensor, cfg: ClockConfig) -> torch.Tensor:
    """phi = sin(2 pi t / T), t measured from the episode start."""
    return torch.sin(2.0 * math.pi * time_s / cfg.period_s)


def is_still(commands: torch.Tensor, threshold: float) -> torch.Tensor:
    return torch.linalg.vector_norm(commands, dim=-1) < threshold


def phase_input(phase: torch.Tensor, commands: torch.Tensor, cfg: ClockConfig) -> torch.Tensor:
    """The policy's phase input: phi, zeroed while the command asks the robot to stand still."""
    return phase * (~is_still(commands, cfg.phase_input_threshold)).float()


def phase_indicators(phase: torch.Tensor, commands: torch.Tensor, cfg: ClockConfig) -> dict[str, torch.Tensor]:
    """Hard glide/push indicators [N]: push while phi >= threshold and moving, glide otherwise."""
    still = is_still(commands, cfg.still_threshold)
    push = (phase >= cfg.push_threshold) & ~still
    return {"glide": (~push).float(), "push": push.float()}


def updated_gates(gates: dict[str, torch.Tensor], indicators: dict[str, torch.Tensor],
                  cfg: ClockConfig) -> dict[str, torch.Tensor]:
    """c' = alpha * indicator + (1 - alpha) * c, which settles at exactly 1 (new tensors)."""
    return {name: gate * (1.0 - cfg.gate_alpha) + cfg.gate_alpha * indicators[name] for name, gate in gates.items()}
