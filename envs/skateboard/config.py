"""Typed configuration of the DHAL skateboard task. Defaults reproduce DHAL (DHAL.md §1-§3, §8)
with its known bugs fixed; each fix is named where the value lives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dhal.envs.robots import go1


@dataclass(frozen=True)
class SimConfig:
    physics_dt: float = 0.005
    decimation: int = 4  # 50 Hz policy
    episode_length_s: float = 20.0


@dataclass(frozen=True)
class ActionConfig:
    scale: float = 0.25  # joint target = default pose + scale * action
    limit: float = 3.0  # the Beta policy's support [-3, 3]
    # Per-env delay drawn each step, in physics substeps' worth of seconds. DHAL's code holds the
    # previous target for 0-15 ms; the paper says 0-20 ms, which is what we use.
    delay_range_s: tuple[float, float] = (0.0, 0.02)


@dataclass(frozen=True)
class CommandConfig:
    lin_vel_x: tuple[float, float] = (-1.6, 1.6)
    ang_vel_yaw: tuple[float, float] = (-0.8, 0.8)
    lin_vel_deadzone: float = 0.2
    ang_vel_deadzone: float = 0.2
    resample_s: float = 10.0


@dataclass(frozen=True)
class ClockConfig:
    period_s: float = 4.0
    push_threshold: float = 0.5  # push while sin(2 pi t / T) >= this (and not still)
    still_threshold: float = 0.15  # |command| below this means "stand still on the board"
    phase_input_threshold: float = 0.1  # the phase input is zeroed for |command| below this
    # Low-pass gate c <- alpha * indicator + (1 - alpha) * c. DHAL uses 0.35 / 0.75 (weights sum
    # to 1.1, so the gate settles at 1.4) and runs it twice on reset steps; ours sums to 1, once.
    gate_alpha: float = 0.35


@dataclass(frozen=True)
class ObservationConfig:
    history_length: int = 20
    critic: Literal["full", "lean"] = "full"  # full = DHAL's 1630-d input; lean = no redundancy
    contact_history_length: int = 100  # steps of 4 foot contacts in the full critic input
    noise: bool = True
    noise_std: dict[str, float] = field(default_factory=dict)  # per-term overrides of DHAL's
    clip: float = 100.0
    foot_contact_force: float = 2.0  # N, foot contact threshold
    wheel_contact_force: float = 1.0  # N, wheel contact threshold


@dataclass(frozen=True)
class RewardTerm:
    group: str
    weight: float
    gate: Literal["glide", "push"] | None = None  # multiply by the low-pass phase gate


def dhal_reward_terms() -> dict[str, RewardTerm]:
    """DHAL.md §3 (paper Table IV weights). Names are functions in rewards.py."""
    glide, push, reg = "glide", "push", "sim2real"
    return {
        "feet_on_board": RewardTerm(glide, 0.3, "glide"),
        "contact_number": RewardTerm(glide, 0.3, "glide"),
        "feet_distance": RewardTerm(glide, 1.8, "glide"),
        "joint_pos_glide": RewardTerm(glide, 1.2, "glide"),
        "hip_pos_glide": RewardTerm(glide, 1.2, "glide"),
        "track_lin_vel": RewardTerm(push, 1.6, "push"),
        "track_ang_vel": RewardTerm(push, 0.8, "push"),
        "hip_pos_push": RewardTerm(push, 0.6, "push"),
        "orientation_push": RewardTerm(push, -2.0, "push"),
        "wheel_contact": RewardTerm(reg, 0.8),
        "board_body_height": RewardTerm(reg, 1.0),
        "joint_acc": RewardTerm(reg, -2.5e-7),
        "collisions": RewardTerm(reg, -1.0),
        "action_rate": RewardTerm(reg, -0.22),
        "delta_torques": RewardTerm(reg, -1e-7),
        "torques": RewardTerm(reg, -1e-5),
        "lin_vel_z": RewardTerm(reg, -0.1),
        "ang_vel_xy": RewardTerm(reg, -0.01),
        "base_orientation": RewardTerm(reg, -25.0),
    }


@dataclass(frozen=True)
class RewardConfig:
    terms: dict[str, RewardTerm] = field(default_factory=dhal_reward_terms)
    groups: tuple[str, ...] = ("glide", "push", "sim2real")  # order of the [N, G] reward tensor
    only_positive_groups: bool = True  # clip each group's per-step sum at 0, as DHAL does
    scale_by_dt: bool = True
    # Geometry thresholds of the glide terms (DHAL.md §3.3), in metres.
    marker_radius: float = 0.05  # a foot within this of its marker counts as "on its marker"
    on_board_radius: float = 0.06
    on_board_height: float = 0.02  # foot centre at most this far above its resting height
    on_ground_height: float = 0.02  # foot centre at most this above foot radius: on the ground
    feet_distance_sharpness: float = 3.0
    lin_vel_error_clip: tuple[float, float] = (0.2, 1.0)
    lin_vel_sigma: float = 0.5
    ang_vel_sigma: float = 0.2
    board_body_height: float = 0.15  # trunk above the FL mount when riding


@dataclass(frozen=True)
class TerminationConfig:
    max_base_tilt: float = 1.3  # |roll| or |pitch|, rad
    max_deck_tilt: float = 1.2
    max_yaw_difference: float = 0.8  # body vs deck yaw, wrapped (DHAL does not wrap it)
    max_attachment_error: float = 0.05  # FL foot off its mount by more than this: detached


@dataclass(frozen=True)
class ResetConfig:
    glide_fraction: float = 0.5  # share of resets in the glide pose (the rest: push pose)
    joint_noise: float = 0.0  # rad, uniform, added to the reset pose


@dataclass(frozen=True)
class RandomizationConfig:
    enabled: bool = True
    friction: tuple[float, float] = (0.6, 2.0)  # robot and board geoms
    wheel_friction: tuple[float, float] = (0.8, 1.2)
    payload_mass: tuple[float, float] = (0.0, 3.0)  # kg on the trunk
    payload_offset: tuple[float, float] = (-0.2, 0.2)  # m, per axis, where the payload sits
    kp_factor: tuple[float, float] = (0.8, 1.2)  # per joint, per env
    kd_factor: tuple[float, float] = (0.8, 1.2)
    deck_mass_factor: tuple[float, float] = (0.8, 1.2)
    truck_stiffness_factor: tuple[float, float] = (0.7, 1.3)
    push_interval_s: float = 8.0
    push_velocity: float = 0.5  # base xy velocity set to U(-v, v)


@dataclass(frozen=True)
class SkateboardConfig:
    sim: SimConfig = field(default_factory=SimConfig)
    action: ActionConfig = field(default_factory=ActionConfig)
    commands: CommandConfig = field(default_factory=CommandConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    observations: ObservationConfig = field(default_factory=ObservationConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    terminations: TerminationConfig = field(default_factory=TerminationConfig)
    reset: ResetConfig = field(default_factory=ResetConfig)
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    scene: str = "go1_skateboard"

    def __post_init__(self) -> None:
        unknown_groups = {t.group for t in self.rewards.terms.values()} - set(self.rewards.groups)
        if unknown_groups:
            raise ValueError(f"reward terms use groups {sorted(unknown_groups)} that are not in "
                             f"rewards.groups {self.rewards.groups}")
        if self.sim.decimation < 1:
            raise ValueError("sim.decimation must be >= 1")

    @property
    def control_dt(self) -> float:
        return self.sim.physics_dt * self.sim.decimation

    @property
    def num_actions(self) -> int:
        return len(go1.JOINT_NAMES)
