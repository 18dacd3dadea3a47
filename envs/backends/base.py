"""The simulator-backend interface: the only way the task layer talks to physics.

A backend owns N copies of one MJCF model and exposes their state as torch tensors. Task code
(envs/skateboard) never imports mujoco; it resolves names to indices once through `ModelInfo`
and then works on batched tensors. Backends: `mujoco_batch` (CPU, mujoco.batch) and, later,
`mujoco_warp` (GPU). Both must satisfy `Simulator`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal, Mapping, Protocol, runtime_checkable

import torch


# What set_state recomputes after writing the state: "forward" everything (as mj_forward), or
# "positions" only (bodies, sites), with sensors and actuator forces of those envs reading 0 until
# the next step. The second is the cheap reset on a GPU, where Warp's forward runs every world.
Refresh = Literal["forward", "positions"]


def check_refresh(refresh: str) -> None:
    """Refuse a `refresh` that is not a `Refresh`, before a backend touches any state."""
    if refresh not in typing.get_args(Refresh):
        raise ValueError(f"refresh must be one of {typing.get_args(Refresh)}, got {refresh!r}")


def env_mask(env_ids: object, num_envs: int) -> torch.Tensor | None:
    """`env_ids` when it is a bool mask over the envs (the `set_state` form with rows for every
    env), None when it is ids; ValueError for a mask of the wrong shape."""
    if not (isinstance(env_ids, torch.Tensor) and env_ids.dtype == torch.bool):
        return None
    if tuple(env_ids.shape) != (num_envs,):
        raise ValueError(f"an env mask must have shape ({num_envs},), got {tuple(env_ids.shape)}")
    return env_ids


class SimulatorCapacityError(RuntimeError):
    """A fixed-size simulator buffer overflowed, so the physics of the step is wrong.
    `overrides` maps task-config keys (e.g. "sim.njmax") to values that would fit."""

    def __init__(self, message: str, overrides: dict[str, int] | None = None) -> None:
        super().__init__(message)
        self.overrides = dict(overrides or {})


class SimulationDiverged(RuntimeError):
    """Physics produced NaN/Inf or an unstable state in some environments, or a fault of the
    backend's (MuJoCo Warp's EPA horizon) left their physics untrustworthy."""

    def __init__(self, env_ids: list[int], message: str) -> None:
        super().__init__(f"simulation diverged in envs {env_ids}: {message}")
        self.env_ids = env_ids


@dataclass(frozen=True)
class ModelInfo:
    """Names and sizes of the compiled model, resolved once. Pure data: no simulator handles."""

    nq: int
    nv: int
    nu: int
    nsensordata: int
    physics_dt: float
    joint_qpos_adr: dict[str, int]
    joint_qvel_adr: dict[str, int]
    actuator_names: tuple[str, ...]
    actuator_joint: dict[str, str]  # actuator name -> the joint it drives
    sensor_slices: dict[str, tuple[int, int]]  # name -> (start, dim) in sensordata
    site_ids: dict[str, int]
    body_ids: dict[str, int]
    geom_ids: dict[str, int]
    equality_ids: dict[str, int]
    keyframes: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> qpos [nq]

    def require(self, kind: str, names: tuple[str, ...] | list[str]) -> None:
        """Raise a clear error naming every missing `kind` (joint, site, body, ...) in the model."""
        tables: dict[str, Mapping[str, object]] = {
            "joint": self.joint_qpos_adr,
            "actuator": dict.fromkeys(self.actuator_names),
            "sensor": self.sensor_slices,
            "site": self.site_ids,
            "body": self.body_ids,
            "geom": self.geom_ids,
            "equality": self.equality_ids,
            "keyframe": self.keyframes,
        }
        table = tables[kind]
        missing = [n for n in names if n not in table]
        if missing:
            raise KeyError(f"model has no {kind} named {missing}; it has {sorted(table)}")


@dataclass
class SimState:
    """A fresh float32 snapshot of all environments, taken after a step or a reset."""

    qpos: torch.Tensor  # [N, nq]
    qvel: torch.Tensor  # [N, nv]
    sensordata: torch.Tensor  # [N, nsensordata]
    site_xpos: torch.Tensor  # [N, nsite, 3] world frame
    xpos: torch.Tensor  # [N, nbody, 3] world frame
    xquat: torch.Tensor  # [N, nbody, 4] (w, x, y, z)
    actuator_force: torch.Tensor  # [N, nu]


@runtime_checkable
class Simulator(Protocol):
    """N environments of one model. All tensors live on `device`; env_ids are int64 tensors."""

    info: ModelInfo
    num_envs: int
    device: torch.device

    def step(self, ctrl: torch.Tensor, nsteps: int = 1, update_derived: bool = True, check: bool = True) -> None:
        """Write ctrl [N, nu] and advance every environment by nsteps physics steps. Pass
        update_derived=False for all but the last call of a control step: derived fields
        (sites, bodies, sensors) are then only guaranteed current after the last call.
        With check=False, divergence and buffer overflows are reported by the next `check()`
        instead of here (diverged envs may read NaN until then)."""
        ...

    def check(self) -> None:
        """Raise what the steps and resets since the last check found: `SimulationDiverged`
        (those envs are back at the model defaults) or a backend's capacity error. On a GPU this
        is the host synchronisation, so a caller can queue more work before paying for it."""
        ...

    def unchecked_divergence(self) -> torch.Tensor:
        """[N] bool on `device`: the envs that a step or reset since the last `check()` found
        diverged (their data is garbage until the check resets it). Never waits for the device."""
        ...

    def read(self) -> SimState:
        """Snapshot of the current state; derived fields (sites, bodies, sensors) are current."""
        ...

    def set_state(
        self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor, ctrl: torch.Tensor | None = None,
        check: bool = True, refresh: Refresh = "forward",
    ) -> None:
        """Reset the given envs to (qpos, qvel), clearing warm-starts. `env_ids` are int64 ids with
        rows [n, ...], or a bool mask [N] with rows for every env (only masked rows are written;
        on a GPU a mask needs no host synchronisation). With `ctrl` [n, nu], the
        controls are set and each delayed actuator's control history is filled with them, so
        a delay applies these controls, not zeros, right after the reset. check=False defers
        problems to the next `check()`, as for `step`; `refresh` says what is recomputed
        (`Refresh`). The next step's physics is the same either way."""
        ...

    def set_qvel(self, env_ids: torch.Tensor, qvel: torch.Tensor) -> None:
        """Overwrite velocities of the given envs (pushes) without touching positions."""
        ...

    def model_field(self, name: str) -> torch.Tensor:
        """Per-env writable view [N, ...] of an MjModel field, e.g. 'geom_friction'."""
        ...

    def nominal_field(self, name: str) -> torch.Tensor:
        """The compiled model's value of a field [...] (never randomised)."""
        ...

    def commit_model(self) -> None:
        """Recompute constants that depend on edited model fields (mass, inertia, ...)."""
        ...

    def set_equality_active(self, name: str, env_ids: torch.Tensor, active: bool) -> None:
        """Switch an equality constraint (e.g. the foot attachment) on or off per env."""
        ...

    def warning_counts(self) -> dict[str, int]:
        """MuJoCo warnings raised so far, by warning name (only non-zero entries)."""
        ...
