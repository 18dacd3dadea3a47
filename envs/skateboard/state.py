"""Named, batched quantities of the Go1 + board, derived once per step from a backend snapshot.

`SceneIndices` resolves every name the task needs to indices once (with clear errors if the
model lacks one); `derive_state` turns a `SimState` into a `SkateState` of physical quantities.
Observation, reward and termination terms read `SkateState` and never index raw arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dhal.envs.backends.base import ModelInfo, SimState
from dhal.envs.math import quat_rotate_inverse, quat_to_rpy
from dhal.envs.robots import go1, skateboard


def _sensor_columns(info: ModelInfo, names: tuple[str, ...]) -> list[int]:
    info.require("sensor", names)
    cols: list[int] = []
    for name in names:
        start, dim = info.sensor_slices[name]
        cols.extend(range(start, start + dim))
    return cols


@dataclass(frozen=True)
class SceneIndices:
    root_qpos: int
    root_qvel: int
    board_qpos: int
    board_qvel: int
    joint_qpos: torch.Tensor | slice  # [12]; a slice where the indices are consecutive
    joint_qvel: torch.Tensor | slice
    actuators: torch.Tensor | slice  # [12] actuator ids in contract joint order
    foot_sites: torch.Tensor | slice  # [4]
    marker_sites: torch.Tensor | slice  # [4]
    mount_site: int
    trunk_body: int
    deck_body: int
    foot_touch: torch.Tensor | slice  # sensordata columns [4]
    wheel_touch: torch.Tensor | slice  # [4]
    collision_touch: torch.Tensor | slice  # [8]

    @staticmethod
    def resolve(info: ModelInfo, device: torch.device) -> SceneIndices:
        info.require("joint", (go1.ROOT_JOINT, skateboard.BOARD_ROOT_JOINT, *go1.JOINT_NAMES))
        info.require("site", (*go1.FOOT_SITES, *skateboard.MARKER_SITES, skateboard.FOOT_MOUNT_SITE))
        info.require("body", (go1.ROOT_BODY, skateboard.DECK_BODY))
        joint_of = {joint: act for act, joint in info.actuator_joint.items()}
        missing = [j for j in go1.JOINT_NAMES if j not in joint_of]
        if missing:
            raise KeyError(f"model has no actuator driving joints {missing}")

        def ids(values: list[int]) -> torch.Tensor | slice:
            # A run of consecutive indices becomes a slice: reading it is a view, not a gather.
            if values == list(range(values[0], values[0] + len(values))):
                return slice(values[0], values[0] + len(values))
            return torch.tensor(values, dtype=torch.long, device=device)

        return SceneIndices(
            root_qpos=info.joint_qpos_adr[go1.ROOT_JOINT],
            root_qvel=info.joint_qvel_adr[go1.ROOT_JOINT],
            board_qpos=info.joint_qpos_adr[skateboard.BOARD_ROOT_JOINT],
            board_qvel=info.joint_qvel_adr[skateboard.BOARD_ROOT_JOINT],
            joint_qpos=ids([info.joint_qpos_adr[j] for j in go1.JOINT_NAMES]),
            joint_qvel=ids([info.joint_qvel_adr[j] for j in go1.JOINT_NAMES]),
            actuators=ids([info.actuator_names.index(joint_of[j]) for j in go1.JOINT_NAMES]),
            foot_sites=ids([info.site_ids[s] for s in go1.FOOT_SITES]),
            marker_sites=ids([info.site_ids[s] for s in skateboard.MARKER_SITES]),
            mount_site=info.site_ids[skateboard.FOOT_MOUNT_SITE],
            trunk_body=info.body_ids[go1.ROOT_BODY],
            deck_body=info.body_ids[skateboard.DECK_BODY],
            foot_touch=ids(_sensor_columns(info, go1.FOOT_TOUCH_SENSORS)),
            wheel_touch=ids(_sensor_columns(info, skateboard.WHEEL_TOUCH_SENSORS)),
            collision_touch=ids(_sensor_columns(info, go1.COLLISION_TOUCH_SENSORS)),
        )


@dataclass
class SkateState:
    """Physical quantities of all envs at one instant. World frame unless the name says _b."""

    base_pos: torch.Tensor  # [N, 3]
    base_quat: torch.Tensor  # [N, 4]
    base_rpy: torch.Tensor  # [N, 3]
    base_lin_vel_b: torch.Tensor  # [N, 3]
    base_ang_vel_b: torch.Tensor  # [N, 3]
    projected_gravity: torch.Tensor  # [N, 3]
    joint_pos: torch.Tensor  # [N, 12]
    joint_vel: torch.Tensor  # [N, 12]
    joint_torque: torch.Tensor  # [N, 12]
    foot_pos: torch.Tensor  # [N, 4, 3]
    marker_pos: torch.Tensor  # [N, 4, 3]
    mount_pos: torch.Tensor  # [N, 3]
    deck_pos: torch.Tensor  # [N, 3]
    deck_quat: torch.Tensor  # [N, 4]
    deck_rpy: torch.Tensor  # [N, 3]
    deck_lin_vel_b: torch.Tensor  # [N, 3], in the deck frame
    foot_force: torch.Tensor  # [N, 4] normal force from the touch sensors
    wheel_force: torch.Tensor  # [N, 4]
    collision_force: torch.Tensor  # [N, 8] thighs and calves

    @property
    def attachment_error(self) -> torch.Tensor:
        return torch.linalg.vector_norm(self.foot_pos[:, 1] - self.mount_pos, dim=-1)


def derive_state(sim: SimState, idx: SceneIndices) -> SkateState:
    root_q = sim.qpos[:, idx.root_qpos : idx.root_qpos + 7]
    root_v = sim.qvel[:, idx.root_qvel : idx.root_qvel + 6]
    board_v = sim.qvel[:, idx.board_qvel : idx.board_qvel + 6]
    base_quat = root_q[:, 3:7]
    deck_quat = sim.xquat[:, idx.deck_body]
    n = base_quat.shape[0]
    # Batched over (base, deck) and (velocity, gravity): fewer, larger tensor ops per step.
    rpy = quat_to_rpy(torch.stack((base_quat, deck_quat), dim=1))
    gravity = torch.zeros(n, 3, device=sim.qpos.device)
    gravity[:, 2] = -1.0
    quats = torch.stack((base_quat, base_quat, deck_quat), dim=1)
    # MuJoCo free joints: linear velocity in the world frame, angular in the body frame.
    in_body = quat_rotate_inverse(quats, torch.stack((root_v[:, :3], gravity, board_v[:, :3]), dim=1))
    sites = sim.site_xpos
    return SkateState(
        base_pos=root_q[:, :3],
        base_quat=base_quat,
        base_rpy=rpy[:, 0],
        base_lin_vel_b=in_body[:, 0],
        base_ang_vel_b=root_v[:, 3:6],
        projected_gravity=in_body[:, 1],
        joint_pos=sim.qpos[:, idx.joint_qpos],
        joint_vel=sim.qvel[:, idx.joint_qvel],
        joint_torque=sim.actuator_force[:, idx.actuators],
        foot_pos=sites[:, idx.foot_sites],
        marker_pos=sites[:, idx.marker_sites],
        mount_pos=sites[:, idx.mount_site],
        deck_pos=sim.xpos[:, idx.deck_body],
        deck_quat=deck_quat,
        deck_rpy=rpy[:, 1],
        deck_lin_vel_b=in_body[:, 2],
        foot_force=sim.sensordata[:, idx.foot_touch],
        wheel_force=sim.sensordata[:, idx.wheel_touch],
        collision_force=sim.sensordata[:, idx.collision_touch],
    )
