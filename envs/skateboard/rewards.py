"""DHAL's reward terms as pure functions of a `RewardContext` (DHAL.md §3).

Each term returns an unweighted [N] tensor. Weights, groups (glide / push / sim2real) and phase
gates come from `RewardConfig`; `compute_rewards` applies them. Fixes against the official code:
the RR foot's offset bug is gone (markers sit at the resting foot height, so no per-foot shift),
and gates use a normalised low-pass filter (see ClockConfig).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from dhal.envs.robots import go1
from dhal.envs.skateboard.config import RewardConfig
from dhal.envs.skateboard.state import SkateState

FR, FL, RR, RL = (go1.LEGS.index(leg) for leg in ("FR", "FL", "RR", "RL"))
PUSHING_FEET = (FR, RR)  # the feet that leave the board to push
FREE_FEET = (FR, RR, RL)  # every foot but the attached FL


@dataclass
class RewardContext:
    state: SkateState
    cfg: RewardConfig
    commands: torch.Tensor  # [N, 3] vx, vy, yaw rate
    actions: torch.Tensor  # [N, 12]
    last_actions: torch.Tensor
    last_joint_vel: torch.Tensor
    last_torques: torch.Tensor
    wheel_contact: torch.Tensor  # [N, 4] bool, filtered
    default_pose: torch.Tensor  # [12]
    glide_pose: torch.Tensor  # [12]
    dt: float


# ---- foot geometry helpers --------------------------------------------------------------------
def marker_distance(ctx: RewardContext) -> torch.Tensor:
    """[N, 4] distance of each foot centre to its marker on the deck."""
    return torch.linalg.vector_norm(ctx.state.marker_pos - ctx.state.foot_pos, dim=-1)


def feet_on_board_mask(ctx: RewardContext) -> torch.Tensor:
    """[N, 4] foot near its marker and resting at the marker's height (i.e. on the deck)."""
    s = ctx.state
    near = marker_distance(ctx) < ctx.cfg.on_board_radius
    level = (s.foot_pos[..., 2] - s.marker_pos[..., 2]).abs() < ctx.cfg.on_board_height
    return near & level


def feet_on_ground_mask(ctx: RewardContext) -> torch.Tensor:
    return ctx.state.foot_pos[..., 2] < go1.FOOT_RADIUS + ctx.cfg.on_ground_height


# ---- glide group ----------------------------------------------------------------------------
def feet_on_board(ctx: RewardContext) -> torch.Tensor:
    return (marker_distance(ctx) < ctx.cfg.marker_radius).float().sum(-1)


def contact_number(ctx: RewardContext) -> torch.Tensor:
    on_board = feet_on_board_mask(ctx)
    on_ground = feet_on_ground_mask(ctx)
    pushing = list(PUSHING_FEET)
    bonus = on_board.float().sum(-1) + 4.0 * on_board.all(-1).float()
    penalty = (~on_board[:, pushing]).float().sum(-1) + on_ground[:, pushing].float().sum(-1)
    return 2.0 * bonus - penalty


def feet_distance(ctx: RewardContext) -> torch.Tensor:
    total = marker_distance(ctx)[:, list(FREE_FEET)].sum(-1)
    return torch.exp(-ctx.cfg.feet_distance_sharpness * total)


def joint_pos_glide(ctx: RewardContext) -> torch.Tensor:
    return torch.exp(-(ctx.state.joint_pos - ctx.glide_pose).square().sum(-1))


def hip_pos_glide(ctx: RewardContext) -> torch.Tensor:
    hips = list(go1.HIP_INDICES)
    return torch.exp(-(ctx.state.joint_pos[:, hips] - ctx.glide_pose[hips]).square().sum(-1))


# ---- push group -----------------------------------------------------------------------------
def track_lin_vel(ctx: RewardContext) -> torch.Tensor:
    low, high = ctx.cfg.lin_vel_error_clip
    error = (ctx.commands[:, :2] - ctx.state.base_lin_vel_b[:, :2]).abs().clamp(low, high)
    return torch.exp(-error.square().sum(-1) / ctx.cfg.lin_vel_sigma)


def track_ang_vel(ctx: RewardContext) -> torch.Tensor:
    error = ctx.commands[:, 2] - ctx.state.base_ang_vel_b[:, 2]
    return torch.exp(-error.square() / ctx.cfg.ang_vel_sigma)


def hip_pos_push(ctx: RewardContext) -> torch.Tensor:
    hips = list(go1.HIP_INDICES)
    return torch.exp(-(ctx.state.joint_pos[:, hips] - ctx.default_pose[hips]).square().sum(-1))


def orientation_push(ctx: RewardContext) -> torch.Tensor:
    return ctx.state.projected_gravity[:, :2].square().sum(-1)


# ---- sim2real group -------------------------------------------------------------------------
def wheel_contact(ctx: RewardContext) -> torch.Tensor:
    return ctx.wheel_contact.all(-1).float()


def board_body_height(ctx: RewardContext) -> torch.Tensor:
    height = ctx.state.base_pos[:, 2] - ctx.state.mount_pos[:, 2]
    return torch.exp(-4.0 * (height - ctx.cfg.board_body_height).abs())


def joint_acc(ctx: RewardContext) -> torch.Tensor:
    delta = (ctx.last_joint_vel - ctx.state.joint_vel).clamp(-10.0, 10.0)
    return (delta / ctx.dt).square().sum(-1)


def collisions(ctx: RewardContext) -> torch.Tensor:
    return (ctx.state.collision_force > 0.1).float().sum(-1)


def action_rate(ctx: RewardContext) -> torch.Tensor:
    return torch.linalg.vector_norm(ctx.actions - ctx.last_actions, dim=-1)


def delta_torques(ctx: RewardContext) -> torch.Tensor:
    return (ctx.state.joint_torque - ctx.last_torques).square().sum(-1)


def torques(ctx: RewardContext) -> torch.Tensor:
    return ctx.state.joint_torque.square().sum(-1)


def lin_vel_z(ctx: RewardContext) -> torch.Tensor:
    return ctx.state.base_lin_vel_b[:, 2].clamp(-1.5, 1.5).square()


def ang_vel_xy(ctx: RewardContext) -> torch.Tensor:
    return ctx.state.base_ang_vel_b[:, :2].clamp(-1.0, 1.0).square().sum(-1)


def base_orientation(ctx: RewardContext) -> torch.Tensor:
    return ctx.state.projected_gravity[:, :2].square().sum(-1)


REWARD_FUNCTIONS: dict[str, Callable[[RewardContext], torch.Tensor]] = {
    fn.__name__: fn
    for fn in (
        feet_on_board, contact_number, feet_distance, joint_pos_glide, hip_pos_glide,
        track_lin_vel, track_ang_vel, hip_pos_push, orientation_push,
        wheel_contact, board_body_height, joint_acc, collisions, action_rate,
        delta_torques, torques, lin_vel_z, ang_vel_xy, base_orientation,
    )
}


def check_reward_config(cfg: RewardConfig) -> None:
    unknown = sorted(set(cfg.terms) - set(REWARD_FUNCTIONS))
    if unknown:
        raise KeyError(f"unknown reward terms {unknown}; available: {sorted(REWARD_FUNCTIONS)}")


@dataclass
class RewardBreakdown:
    groups: torch.Tensor  # [N, G] after the per-group clip
    terms: dict[str, torch.Tensor]  # weighted, gated, dt-scaled [N] per term

    @property
    def total(self) -> torch.Tensor:
        return self.groups.sum(-1)


def compute_rewards(ctx: RewardContext, gates: dict[str, torch.Tensor]) -> RewardBreakdown:
    cfg = ctx.cfg
    step_scale = ctx.dt if cfg.scale_by_dt else 1.0
    groups = torch.zeros(ctx.actions.shape[0], len(cfg.groups), device=ctx.actions.device)
    terms: dict[str, torch.Tensor] = {}
    for name, term in cfg.terms.items():
        value = REWARD_FUNCTIONS[name](ctx) * (term.weight * step_scale)
        if term.gate is not None:
            value = value * gates[term.gate]
        terms[name] = value
        groups[:, cfg.groups.index(term.group)] += value
    if cfg.only_positive_groups:
        groups = groups.clamp(min=0.0)
    return RewardBreakdown(groups=groups, terms=terms)
