"""Episode terminations as pure functions of the state (DHAL.md §1.7, yaw difference wrapped)."""

from __future__ import annotations

import torch

from dhal.envs.math import wrap_to_pi
from dhal.envs.skateboard.config import TerminationConfig
from dhal.envs.skateboard.state import SkateState


def base_tilted(s: SkateState, cfg: TerminationConfig) -> torch.Tensor:
    return (s.base_rpy[:, :2].abs() > cfg.max_base_tilt).any(-1)


def deck_tilted(s: SkateState, cfg: TerminationConfig) -> torch.Tensor:
    return (s.deck_rpy[:, :2].abs() > cfg.max_deck_tilt).any(-1)


def yaw_mismatch(s: SkateState, cfg: TerminationConfig) -> torch.Tensor:
    return wrap_to_pi(s.base_rpy[:, 2] - s.deck_rpy[:, 2]).abs() > cfg.max_yaw_difference


def detached(s: SkateState, cfg: TerminationConfig) -> torch.Tensor:
    return s.attachment_error > cfg.max_attachment_error


def non_finite(s: SkateState, cfg: TerminationConfig) -> torch.Tensor:
    return ~(torch.isfinite(s.base_pos).all(-1) & torch.isfinite(s.joint_vel).all(-1))


TERMINATIONS = {fn.__name__: fn for fn in (base_tilted, deck_tilted, yaw_mismatch, detached, non_finite)}


def check_terminations(s: SkateState, cfg: TerminationConfig) -> dict[str, torch.Tensor]:
    """Each reason's [N] bool mask; an env terminates if any is set."""
    return {name: fn(s, cfg) for name, fn in TERMINATIONS.items()}
