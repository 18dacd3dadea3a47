"""DHAL's reward terms as pure functions of a `RewardContext` (DHAL.md §3).

Each term returns an unweighted [N] tensor. Weights, groups (glide / push / sim2real) and phase
gates come from `RewardConfig`; `compute_rewards` applies them. Fixes against the official code:
the RR foot's offset bug is gone (markers sit at the resting foot height, so no per-foot shift),
and gates use a normalised low-pass filter (see ClockConfig).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from dhal.envs.packing import zero_rows
from dhal.envs.robots import go1
from dhal.envs.skateboard.config import RewardConfig
from dhal.envs.skateboard.state import SkateState

FR, FL, RR, RL = (go1.LEGS.index(leg) for leg in ("FR", "FL", "RR", "RL"))
PUSHING_FEET = (FR, RR)  # the feet that leave the board to push
FREE_FEET = (FR, RR, RL)  # every foot but the attached FL

# The same index sets as basic slices: slicing is a view, where indexing with a list allocates an
# index tensor and a copy on every call (this runs every step).
HIPS = slice(go1.HIP_INDICES[0], None, go1.HIP_INDICES[1] - go1.HIP_INDICES[0])
PUSHING = slice(FR, None, RR - FR)
assert tuple(range(len(go1.JOINT_NAMES)))[HIPS] == go1.HIP_INDICES
assert tuple(range(len(go1.LEGS)))[PUSHING] == PUSHING_FEET


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
    _marker_distance: torch.Tensor | None = field(default=None, repr=False)

    @property
    def marker_distance(self) -> torch.Tensor:
        """[N, 4] distance of each foot centre to its marker (shared by three glide terms).
        Memoised by hand: functools.cached_property takes a lock torch.compile cannot trace."""
        if self._marker_distance is None:
            self._marker_distance = torch.linalg.vector_norm(self.state.marker_pos - self.state.foot_pos, dim=-1)
        return self._marker_distance


# ---- foot geometry helpers --------------------------------------------------------------------
def marker_distance(ctx: RewardContext) -> torch.Tensor:
    """[N, 4] distance of each foot centre to its marker on the deck."""
    return ctx.marker_distance


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
    on_board = feet_on_board_mask(ctx).float()
    on_ground = feet_on_ground_mask(ctx)[:, PUSHING].float()
    bonus = on_board.sum(-1) + 4.0 * on_board.prod(-1)
    penalty = (1.0 - on_board[:, PUSHING]).sum(-1) + on_ground.sum(-1)
    return 2.0 * bonus - penalty


def feet_distance(ctx: RewardContext) -> torch.Tensor:
    distance = marker_distance(ctx)
    total = distance.sum(-1) - distance[:, FL]  # every foot but the attached FL
    return torch.exp(-ctx.cfg.feet_distance_sharpness * total)


def joint_pos_glide(ctx: RewardContext) -> torch.Tensor:
    return torch.exp(-(ctx.state.joint_pos - ctx.glide_pose).square().sum(-1))


def hip_pos_glide(ctx: RewardContext) -> torch.Tensor:
    return torch.exp(-(ctx.state.joint_pos[:, HIPS] - ctx.glide_pose[HIPS]).square().sum(-1))


# ---- push group -----------------------------------------------------------------------------
def track_lin_vel(ctx: RewardContext) -> torch.Tensor:
    low, high = ctx.cfg.lin_vel_error_clip
    error = (ctx.commands[:, :2] - ctx.state.base_lin_vel_b[:, :2]).abs().clamp(low, high)
    return torch.exp(-error.square().sum(-1) / ctx.cfg.lin_vel_sigma)


def track_ang_vel(ctx: RewardContext) -> torch.Tensor:
    error = ctx.commands[:, 2] - ctx.state.base_ang_vel_b[:, 2]
    return torch.exp(-error.square() / ctx.cfg.ang_vel_sigma)


def hip_pos_push(ctx: RewardContext) -> torch.Tensor:
    return torch.exp(-(ctx.state.joint_pos[:, HIPS] - ctx.default_pose[HIPS]).square().sum(-1))


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
    term_values: torch.Tensor  # [N, T] weighted, gated, dt-scaled, in `term_names` order
    term_names: tuple[str, ...]
    total: torch.Tensor  # [N] the groups' sum; a field, so a compiled step computes it in its graph

    @classmethod
    def of(cls, groups: torch.Tensor, term_values: torch.Tensor, term_names: tuple[str, ...]) -> RewardBreakdown:
        return cls(groups=groups, term_values=term_values, term_names=term_names, total=groups.sum(-1))

    @property
    def terms(self) -> dict[str, torch.Tensor]:
        return {name: self.term_values[:, i] for i, name in enumerate(self.term_names)}


class RewardTable:
    """The configured terms as one weight vector, gate index and term-to-group matrix, so a
    step costs one stack and one matrix product instead of a loop of small tensor ops."""

    def __init__(self, cfg: RewardConfig, dt: float, device: torch.device | str = "cpu") -> None:
        check_reward_config(cfg)
        self.cfg = cfg
        self.term_names = tuple(cfg.terms)
        self.functions = [REWARD_FUNCTIONS[name] for name in self.term_names]
        self.gate_names = tuple(sorted({t.gate for t in cfg.terms.values() if t.gate is not None}))
        step_scale = dt if cfg.scale_by_dt else 1.0
        terms = [cfg.terms[name] for name in self.term_names]
        self.weights = torch.tensor([t.weight * step_scale for t in terms], device=device)
        ungated = len(self.gate_names)  # the column of ones
        self.gate_index = torch.tensor(
            [ungated if t.gate is None else self.gate_names.index(t.gate) for t in terms], device=device)
        self.group_matrix = torch.zeros(len(terms), len(cfg.groups), device=device)
        for i, t in enumerate(terms):
            self.group_matrix[i, cfg.groups.index(t.group)] = 1.0

    def compute(self, ctx: RewardContext, gates: dict[str, torch.Tensor],
                zeroed: torch.Tensor | None = None) -> RewardBreakdown:
        """The step's rewards. `zeroed` [N] bool: envs that earn nothing (their state may be NaN):
        their term values are 0 before grouping, so their groups and total are 0 too."""
        values = torch.stack([fn(ctx) for fn in self.functions], dim=-1)
        ones = torch.ones_like(values[:, 0])
        gate_table = torch.stack([gates[name] for name in self.gate_names] + [ones], dim=-1)
        term_values = values * self.weights * gate_table[:, self.gate_index]
        if zeroed is not None:
            term_values = zero_rows(term_values, zeroed)
        groups = term_values @ self.group_matrix
        if self.cfg.only_positive_groups:
            groups = groups.clamp(min=0.0)
        return RewardBreakdown.of(groups, term_values, self.term_names)


def compute_rewards(ctx: RewardContext, gates: dict[str, torch.Tensor]) -> RewardBreakdown:
    """One-off evaluation; a task builds its `RewardTable` once and calls `compute` each step."""
    return RewardTable(ctx.cfg, ctx.dt, ctx.actions.device).compute(ctx, gates)
