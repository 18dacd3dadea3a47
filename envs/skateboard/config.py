"""Typed configuration of the DHAL skateboard task. Defaults reproduce DHAL (DHAL.md §1-§3, §8)
with its known bugs fixed; each fix is named where the value lives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from dhal.envs.backends.base import Refresh
from dhal.envs.robots import go1


@dataclass(frozen=True)
class SimConfig:
    physics_dt: float = 0.005
    decimation: int = 4  # 50 Hz policy
    episode_length_s: float = 20.0
    # torch.compile the task's per-step functions (derived state, the step's transition, the
    # restart, observations) and MuJoCo Warp's per-step data check. None: on CUDA devices, where
    # it lifts env/raw from 0.76-0.79 to 0.84-0.85 at 4,096-8,192 envs on an H200 for about 20 s of
    # compiling in a fresh process (BENCHMARKS.md); on the CPU compiling takes minutes and the
    # physics dominates a step.
    compile: bool | None = None
    # What a reset recomputes (backends.base.Refresh): "positions" skips the all-worlds forward
    # on a GPU (the physics is the same), and sensors/torques of just-reset envs read 0 until
    # their first step.
    reset_refresh: Refresh = "positions"
    # Restart finished envs with a mask, without a host synchronisation (every step,
    # whether or not an env finished) instead of asking which finished. None: on CUDA devices,
    # where asking would stall the launch queue; on the CPU asking is free. Pairs with
    # reset_refresh="positions": with "forward" every step would run Warp's all-worlds forward.
    queue_resets: bool | None = None
    # Steps between the env's check-ins with the host: divergence and contact-buffer overflow,
    # non-finite actions, the episode log. None: every step on the CPU, where checking is free;
    # every CUDA_CHECK_EVERY steps on CUDA devices, so the steps between queue their work behind
    # the physics without waiting for it. Between check-ins an env that diverged gets zeroed
    # outputs and ends its episode at the next check; non-finite actions are replaced by zeros
    # and raised at the next check.
    check_every: int | None = None
    # MuJoCo Warp's fixed-size buffers: contacts per world on average and constraint rows per
    # world (None: the backend's defaults, sized for this scene). A WarpCapacityError names the
    # value to set. The CPU backend sizes its buffers itself and ignores both.
    nconmax: int | None = None
    njmax: int | None = None
    # MuJoCo Warp 4.0 computes the velocity term of the FL foot's tie to the deck (a connect
    # equality) from the previous substep's body velocities; True recomputes them before each
    # substep, so the physics follows MuJoCo C (and the CPU backend) to about 1e-4 in qvel instead
    # of a few 1e-3 (backends/warp_programs.py). Two small kernels per substep, 1.5 % of the env's
    # throughput at 4,096 envs on an H200: off by default, as raw Warp stepping, the baseline the
    # env is measured against, has the same stale velocities (BENCHMARKS.md). The CPU backend is
    # MuJoCo C and ignores it.
    fresh_constraint_velocities: bool = False

    def __post_init__(self) -> None:
        for name in ("check_every", "nconmax", "njmax"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"sim.{name} must be >= 1 (or None), got {value}")


# +6-8 % env throughput at 4,096-8,192 envs on an H200 over a check-in every step
# (BENCHMARKS.md); 10 steps are 0.2 s at 50 Hz, how late a divergence or bad action is reported.
CUDA_CHECK_EVERY = 10


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
class RandomizationCurriculum:
    """Widens every randomisation range (and the action delay range) with training progress: at
    scale s each range is nominal + s * (bound - nominal) at both ends, and the push speed is
    s * push_velocity. s ramps linearly from `start_scale` to 1 over `ramp_steps` control steps
    of the env; while it ramps, every env's parameters are redrawn every `update_interval_steps`.
    DHAL has no curriculum (DHAL.md §8), hence off by default."""

    enabled: bool = False
    start_scale: float = 0.0
    ramp_steps: int = 24 * 1500  # DHAL's 24 steps per iteration, over 1500 iterations
    update_interval_steps: int = 24 * 50

    def __post_init__(self) -> None:
        if not 0.0 <= self.start_scale <= 1.0:
            raise ValueError(f"randomization.curriculum.start_scale must be in [0, 1], got {self.start_scale}")
        if self.ramp_steps < 1 or self.update_interval_steps < 1:
            raise ValueError("randomization.curriculum.ramp_steps and update_interval_steps must be >= 1, got "
                             f"{self.ramp_steps} and {self.update_interval_steps}")


# The value each randomised quantity has in the unrandomised scene (DomainParams.nominal): the
# centre a curriculum widens the ranges from.
NOMINAL_RANDOMIZATION: dict[str, float] = {
    "friction": 1.0, "wheel_friction": 1.0, "payload_mass": 0.0, "payload_offset": 0.0, "kp_factor": 1.0,
    "kd_factor": 1.0, "deck_mass_factor": 1.0, "truck_stiffness_factor": 1.0, "truck_damping_factor": 1.0,
    "wheel_rolling_resistance": 0.0,
}
# Ranges whose values must be positive (factors, friction) or at least zero (masses, resistance).
_POSITIVE_RANGES = ("friction", "wheel_friction", "kp_factor", "kd_factor", "deck_mass_factor",
                    "truck_stiffness_factor", "truck_damping_factor")
_NON_NEGATIVE_RANGES = ("payload_mass", "wheel_rolling_resistance")


@dataclass(frozen=True)
class RandomizationConfig:
    """Per-env physics ranges, each U(low, high), drawn when the env is built (and at curriculum
    updates). Defaults: DHAL's values (DHAL.md §8) where DHAL randomises, and board ranges of our
    own where it does not (DHAL's board is not randomised). Observation noise levels live in
    `observations.noise_std` and the command delay range in `action.delay_range_s`."""

    enabled: bool = True
    friction: tuple[float, float] = (0.6, 2.0)  # robot and board geoms
    wheel_friction: tuple[float, float] = (0.8, 1.2)
    payload_mass: tuple[float, float] = (0.0, 3.0)  # kg on the trunk
    payload_offset: tuple[float, float] = (-0.2, 0.2)  # m, per axis, where the payload sits
    kp_factor: tuple[float, float] = (0.8, 1.2)  # per joint, per env
    kd_factor: tuple[float, float] = (0.8, 1.2)
    deck_mass_factor: tuple[float, float] = (0.8, 1.2)
    truck_stiffness_factor: tuple[float, float] = (0.7, 1.3)
    truck_damping_factor: tuple[float, float] = (0.7, 1.3)  # the bushings' damping, both trucks
    # Rolling-resistance coefficient C_rr of the wheels (drag force / normal load). Urethane on
    # smooth concrete is ~0.005-0.01; the scene's wheels roll free (0).
    wheel_rolling_resistance: tuple[float, float] = (0.0, 0.02)
    push_interval_s: float = 8.0
    push_velocity: float = 0.5  # base xy velocity set to U(-v, v)
    curriculum: RandomizationCurriculum = field(default_factory=RandomizationCurriculum)

    def __post_init__(self) -> None:
        for name in NOMINAL_RANDOMIZATION:
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"randomization.{name}: low {low} is above high {high}")
            if name in _POSITIVE_RANGES and low <= 0.0:
                raise ValueError(f"randomization.{name} must stay above 0, got ({low}, {high})")
            if name in _NON_NEGATIVE_RANGES and low < 0.0:
                raise ValueError(f"randomization.{name} must not be negative, got ({low}, {high})")
        if self.push_interval_s <= 0.0 or self.push_velocity < 0.0:
            raise ValueError(f"randomization.push_interval_s must be > 0 and push_velocity >= 0, got "
                             f"{self.push_interval_s} and {self.push_velocity}")


def dhal_randomization() -> RandomizationConfig:
    """Exactly what DHAL randomises (DHAL.md §8): the board's own parameters stay nominal."""
    board = ("deck_mass_factor", "truck_stiffness_factor", "truck_damping_factor", "wheel_rolling_resistance")
    nominal: dict[str, Any] = {name: (NOMINAL_RANDOMIZATION[name],) * 2 for name in board}
    return RandomizationConfig(**nominal)


# The geoms dhal.assets.terrain writes for each terrain kind; the task checks its scene has them.
TERRAIN_GEOMS: dict[str, tuple[str, ...]] = {
    "flat": (),
    "slope": ("terrain_slope_up", "terrain_slope_top", "terrain_slope_down"),
    "step": ("terrain_step",),
    "uneven": ("terrain_uneven",),
}


@dataclass(frozen=True)
class TerrainConfig:
    """Ground ahead of the start (the robot starts at x = 0 on flat ground and rides along +x).
    flat: the floor only. slope: a hill, an incline of `slope_deg` over `slope_length` (horizontal),
    a plateau, and the same decline back to the floor. step: a raised block `step_height` high and
    `step_length` long (a step up, then down). uneven: a height field of random bumps up to
    `uneven_amplitude`, on a `uneven_cell` grid, drawn from `seed`. The scene is generated from
    these values by dhal.assets.terrain."""

    kind: Literal["flat", "slope", "step", "uneven"] = "flat"
    start_x: float = 1.5  # m ahead of the start where the terrain begins
    width: float = 6.0  # m across (y), centred on the start line
    slope_deg: float = 5.0
    slope_length: float = 3.0
    plateau_length: float = 2.0
    step_height: float = 0.02  # below the 0.03 m wheel radius: a board can roll up it
    step_length: float = 3.0
    uneven_amplitude: float = 0.02
    uneven_cell: float = 0.1
    uneven_length: float = 8.0
    seed: int = 0

    def __post_init__(self) -> None:
        positive = ("width", "slope_length", "step_length", "step_height", "uneven_amplitude", "uneven_cell",
                    "uneven_length")
        bad = [name for name in positive if getattr(self, name) <= 0]
        if bad or self.plateau_length < 0 or self.start_x < 0:
            raise ValueError(f"terrain sizes must be > 0 ({', '.join(bad) or 'start_x/plateau_length >= 0'})")
        if not 0 < self.slope_deg < 45:
            raise ValueError(f"terrain.slope_deg must be in (0, 45), got {self.slope_deg}")


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
    terrain: TerrainConfig = field(default_factory=TerrainConfig)

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
