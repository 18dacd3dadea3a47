"""The policy's input on the robot, built by the environment's own code from measured signals.

`ObservationBuilder` runs `observations.frame_values`, `Contract.build_frame` and
`observations.push_frame` — the functions the simulator env uses — on a batch of one, fed from
joint states, the IMU, the command and a step clock instead of simulator arrays. Joint signals are
matched to the contract by name (`JointMapping`), never by position: the wrong joint order is the
classic deploy failure. Nothing here imports ROS; the node and the replay tool share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from dhal.envs.contract import Contract
from dhal.envs.math import quat_to_rpy
from dhal.envs.skateboard import clock, observations
from dhal.envs.skateboard.config import ClockConfig


class MessageError(ValueError):
    """A robot message that cannot be turned into signals (wrong joints, sizes, NaN)."""


@dataclass(frozen=True)
class RobotSignals:
    """One measurement in contract joint order (numpy, float64 as ROS sends it)."""

    joint_pos: np.ndarray  # [J]
    joint_vel: np.ndarray  # [J]
    base_quat_wxyz: np.ndarray  # [4]
    gyro: np.ndarray  # [3] trunk angular velocity, trunk frame

    @property
    def finite(self) -> bool:
        return bool(all(np.isfinite(v).all() for v in (self.joint_pos, self.joint_vel, self.base_quat_wxyz, self.gyro)))

    def roll_pitch(self) -> np.ndarray:
        """Trunk roll and pitch, by the same function the env's base_rp term uses."""
        return quat_to_rpy(torch.from_numpy(np.asarray(self.base_quat_wxyz, dtype=np.float64)))[:2].numpy()


class JointMapping:
    """Message joint order -> contract order, resolved by name once per distinct name list."""

    def __init__(self, contract_joints: Sequence[str]) -> None:
        self.joints = tuple(contract_joints)
        self._cache: dict[tuple[str, ...], np.ndarray] = {}

    def indices(self, names: Sequence[str]) -> np.ndarray:
        key = tuple(names)
        if key not in self._cache:
            missing = [j for j in self.joints if j not in key]
            duplicated = sorted({n for n in key if key.count(n) > 1})
            if missing or duplicated:
                raise MessageError(f"joint names {list(key)} do not cover the policy's joints: "
                                   f"missing {missing}" + (f", duplicated {duplicated}" if duplicated else ""))
            self._cache[key] = np.array([key.index(j) for j in self.joints])
        return self._cache[key]

    def reorder(self, names: Sequence[str], values: npt.ArrayLike, what: str) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        if array.size != len(names):
            raise MessageError(f"{what} has {array.size} values for {len(names)} joint names")
        return array[self.indices(names)]


def signals_from_messages(mapping: JointMapping, names: Sequence[str], position: npt.ArrayLike,
                          velocity: npt.ArrayLike, quat_xyzw: npt.ArrayLike, gyro: npt.ArrayLike) -> RobotSignals:
    """JointState (names, position, velocity) + Imu (orientation x,y,z,w as ROS sends it, angular
    velocity) -> signals, or a MessageError naming what is wrong."""
    quat = np.asarray(quat_xyzw, dtype=np.float64).reshape(-1)
    if quat.shape != (4,):
        raise MessageError(f"IMU orientation has {quat.size} values, expected x, y, z, w")
    x, y, z, w = (float(v) for v in quat)
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    if not np.isfinite(norm) or abs(norm - 1.0) > 0.05:
        raise MessageError(f"IMU orientation {quat.tolist()} is not a unit quaternion (norm {norm:.3f})")
    signals = RobotSignals(
        joint_pos=mapping.reorder(names, position, "JointState.position"),
        joint_vel=mapping.reorder(names, velocity, "JointState.velocity"),
        base_quat_wxyz=np.array([w, x, y, z]) / norm,
        gyro=np.asarray(gyro, dtype=np.float64),
    )
    if signals.gyro.shape != (3,):
        raise MessageError(f"IMU angular velocity has shape {signals.gyro.shape}, expected 3 values")
    if not signals.finite:
        raise MessageError("joint state or IMU contains NaN/Inf")
    return signals


class ObservationBuilder:
    """The history input [H*F] of consecutive policy steps. `start()` begins an episode: the next
    frame fills the whole history, the clock restarts at 0 and the last action is zero, exactly as
    an env reset does. The clock counts policy steps (step * control_dt), as in training."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.clock_cfg = ClockConfig(period_s=contract.clock_period, phase_input_threshold=contract.phase_input_threshold)
        self.default_pose = torch.tensor(contract.default_pose, dtype=torch.float32).unsqueeze(0)
        self.history = torch.zeros(1, contract.history_length, contract.frame_size)
        self.last_action = torch.zeros(1, contract.num_joints)
        self.step = 0
        self._refill = True

    def start(self) -> None:
        self.last_action.zero_()
        self.step = 0
        self._refill = True

    def build(self, signals: RobotSignals, command: npt.ArrayLike) -> np.ndarray:
        """The policy input for this step, float32 [H*F]. Call `record_action` after acting."""
        as_row = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float32)).unsqueeze(0)  # noqa: E731
        commands = as_row(command)
        if commands.shape[-1] != 3:
            raise ValueError(f"command has {commands.shape[-1]} values, expected (vx, vy, yaw rate)")
        time_s = torch.tensor([self.step * self.contract.control_dt])
        phase = clock.phase_input(clock.clock_phase(time_s, self.clock_cfg), commands, self.clock_cfg)
        proprio = observations.ProprioSignals(as_row(signals.base_quat_wxyz), as_row(signals.gyro),
                                              as_row(signals.joint_pos), as_row(signals.joint_vel))
        values = observations.frame_values(proprio, commands, self.last_action, phase, self.default_pose)
        frame = self.contract.build_frame(values)
        fresh = torch.tensor([True]) if self._refill else None
        self.history = observations.push_frame(self.history, frame, fresh)
        self._refill = False
        return self.history.reshape(-1).numpy().copy()

    def record_action(self, action: np.ndarray) -> None:
        """The action just taken becomes next frame's last action (clipped, as the env stores it)."""
        limit = self.contract.action_limit
        self.last_action = torch.as_tensor(np.asarray(action, dtype=np.float32)).reshape(1, -1).clamp(-limit, limit)
        self.step += 1
