"""Observation terms: the actor's frame values and the two privileged critic inputs.

The actor frame is assembled by `Contract.build_frame` from `frame_values`; this module only says
what each term *is*. The critic input comes in two variants (ObservationConfig.critic):
- "full": DHAL's 1630-d input in DHAL's order (DHAL.md §2.3), kept for reproduction.
- "lean": the same information without DHAL's redundant blocks (a flat-ground "height scan" of 187
  copies of one number, 19 past noisy frames, world-frame duplicates), plus board parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dhal.envs.contract import Contract
from dhal.envs.math import quat_rotate_inverse, quat_to_rpy
from dhal.envs.robots import go1
from dhal.envs.skateboard.rewards import PUSHING
from dhal.envs.skateboard.state import SkateState

HEIGHT_SCAN_POINTS = 17 * 11
HEIGHT_SCAN_OFFSET = 0.3  # DHAL's clip(z_base - 0.3 - ground, +-1)


@dataclass
class DomainParams:
    """Per-env randomised physical parameters, as the privileged critic sees them."""

    payload_mass: torch.Tensor  # [N] kg
    payload_offset: torch.Tensor  # [N, 3] m, trunk frame
    friction: torch.Tensor  # [N]
    wheel_friction: torch.Tensor  # [N]
    kp_factor: torch.Tensor  # [N, 12]
    kd_factor: torch.Tensor  # [N, 12]
    deck_mass_factor: torch.Tensor  # [N]
    truck_stiffness_factor: torch.Tensor  # [N]

    @staticmethod
    def nominal(n: int, device: torch.device) -> DomainParams:
        one = torch.ones(n, device=device)
        return DomainParams(
            payload_mass=torch.zeros(n, device=device),
            payload_offset=torch.zeros(n, 3, device=device),
            friction=one.clone(),
            wheel_friction=one.clone(),
            kp_factor=torch.ones(n, len(go1.JOINT_NAMES), device=device),
            kd_factor=torch.ones(n, len(go1.JOINT_NAMES), device=device),
            deck_mass_factor=one.clone(),
            truck_stiffness_factor=one.clone(),
        )


@dataclass
class ProprioSignals:
    """What the robot measures about itself, in contract joint order: the same four signals come
    from the simulator's state here and from JointState/Imu messages on the robot (deploy/)."""

    base_quat: torch.Tensor  # [N, 4] w, x, y, z: trunk orientation (the IMU's)
    base_ang_vel_b: torch.Tensor  # [N, 3] trunk angular velocity in the trunk frame (the gyro)
    joint_pos: torch.Tensor  # [N, 12]
    joint_vel: torch.Tensor  # [N, 12]


def frame_values(
    signals: ProprioSignals,
    commands: torch.Tensor,
    last_action: torch.Tensor,
    phase_input: torch.Tensor,
    default_pose: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The actor frame's terms in physical units (Contract applies scales and noise). Used by the
    env and, unchanged, by the deploy observation builder."""
    quat = signals.base_quat
    down = torch.zeros(quat.shape[0], 3, dtype=quat.dtype, device=quat.device)
    down[:, 2] = -1.0
    return {
        "base_rp": quat_to_rpy(quat)[:, :2],
        "base_ang_vel": signals.base_ang_vel_b,
        "projected_gravity": quat_rotate_inverse(quat, down),
        "command": commands,
        "joint_pos": signals.joint_pos - default_pose,
        "joint_vel": signals.joint_vel,
        "last_action": last_action,
        "phase": phase_input.unsqueeze(-1),
    }


def push_frame(history: torch.Tensor, frame: torch.Tensor, fresh: torch.Tensor | None) -> torch.Tensor:
    """The history [N, H, F] (oldest first) after adding `frame` [N, F]: shifted in for every env,
    or, with `fresh` ([N] bool, fresh episodes), every slot of those envs set to the frame and the
    other envs left as they are. Always a new tensor."""
    if fresh is None:
        return torch.cat((history[:, 1:], frame.unsqueeze(1)), dim=1)
    return torch.where(fresh[:, None, None], frame.unsqueeze(1).expand_as(history), history)


@dataclass
class Observed:
    clean_frame: torch.Tensor  # [N, F] without noise: what the dynamics model predicts
    history: torch.Tensor  # [N, H, F] noisy frames, newest last: the actor's input
    privileged: torch.Tensor  # [N, P] the critic's input


def observe(
    contract: Contract,
    critic: str,
    s: SkateState,
    *,
    commands: torch.Tensor,
    last_action: torch.Tensor,
    phase_input: torch.Tensor,
    default_pose: torch.Tensor,
    noise: torch.Tensor | None,
    domain: DomainParams,
    contact_history: torch.Tensor,
    foot_contact: torch.Tensor,
    wheel_contact: torch.Tensor,
    history: torch.Tensor,
    fresh: torch.Tensor | None,
) -> Observed:
    """Every observation of one state, as a pure function of tensors (so the env can compile it:
    SimConfig.compile). `noise` is a standard-normal draw [N, F] for the frame (None: no noise);
    `history` and `fresh` as for `push_frame`."""
    signals = ProprioSignals(s.base_quat, s.base_ang_vel_b, s.joint_pos, s.joint_vel)
    values = frame_values(signals, commands, last_action, phase_input, default_pose)
    if noise is None:
        noisy = clean = contract.build_frame(values)
    else:
        noisy, clean = contract.build_frames(values, noise=noise)
    history = push_frame(history, noisy, fresh)
    if critic == "full":
        privileged = full_privileged(s, clean, domain, contact_history, history[:, :-1], PUSHING)
    else:
        privileged = lean_privileged(s, clean, domain, foot_contact, wheel_contact)
    return Observed(clean, history, privileged)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _common_privileged(s: SkateState, clean_frame: torch.Tensor, params: DomainParams) -> tuple[torch.Tensor, ...]:
    """The blocks both critic variants start with: the clean frame, the body velocity and the
    randomised robot parameters (payload, friction, motor strength)."""
    return (
        clean_frame,
        s.base_lin_vel_b * 2.0,
        params.payload_mass.unsqueeze(-1),
        params.payload_offset,
        params.friction.unsqueeze(-1),
        params.kp_factor - 1.0,
        params.kd_factor - 1.0,
    )


def full_privileged(
    s: SkateState,
    clean_frame: torch.Tensor,
    params: DomainParams,
    contact_history: torch.Tensor,
    noisy_past_frames: torch.Tensor,
    pushing_feet: slice,
) -> torch.Tensor:
    """DHAL's 1630-d critic input (for a 20-frame history and 100-step contact history)."""
    n = s.base_pos.shape[0]
    heights = (s.base_pos[:, 2:3] - HEIGHT_SCAN_OFFSET).clamp(-1.0, 1.0).expand(n, HEIGHT_SCAN_POINTS)
    ground_proj = s.foot_pos.clone()
    ground_proj[:, pushing_feet, 2] = 0.0
    base = s.base_pos.unsqueeze(1)
    return torch.cat(
        (
            *_common_privileged(s, clean_frame, params),
            _flat(contact_history),
            heights,
            _flat(s.marker_pos - s.foot_pos) * 0.1,
            _flat(ground_proj - s.foot_pos) * 0.1,
            _flat(s.marker_pos - base) * 0.1,
            _flat(s.foot_pos - base) * 0.1,
            s.deck_rpy,
            _flat(noisy_past_frames),
        ),
        dim=-1,
    )


def lean_privileged(
    s: SkateState,
    clean_frame: torch.Tensor,
    params: DomainParams,
    foot_contact: torch.Tensor,
    wheel_contact: torch.Tensor,
) -> torch.Tensor:
    """Clean frame plus what the actor cannot sense, in body or deck frames, without duplicates."""
    n = s.base_pos.shape[0]

    def in_frame(quat: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        q = quat.unsqueeze(1).expand(n, vectors.shape[1], 4)
        return _flat(quat_rotate_inverse(q, vectors))

    return torch.cat(
        (
            *_common_privileged(s, clean_frame, params),
            foot_contact.float(),
            wheel_contact.float(),
            s.base_pos[:, 2:3],
            in_frame(s.deck_quat, s.marker_pos - s.foot_pos),
            in_frame(s.base_quat, s.foot_pos - s.base_pos.unsqueeze(1)),
            s.deck_rpy,
            s.deck_lin_vel_b,
            (params.deck_mass_factor - 1.0).unsqueeze(-1),
            (params.truck_stiffness_factor - 1.0).unsqueeze(-1),
            params.wheel_friction.unsqueeze(-1),
        ),
        dim=-1,
    )


def privileged_size(variant: str, frame_size: int, history_length: int, contact_history_length: int) -> int:
    n = len(go1.JOINT_NAMES)
    common = frame_size + 3 + 4 + 1 + 2 * n
    if variant == "full":
        return common + 4 * contact_history_length + HEIGHT_SCAN_POINTS + 4 * 12 + 3 + (history_length - 1) * frame_size
    if variant == "lean":
        return common + 4 + 4 + 1 + 12 + 12 + 3 + 3 + 3
    raise ValueError(f"unknown critic observation variant {variant!r}; choose 'full' or 'lean'")
