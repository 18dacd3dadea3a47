"""A simulated Go1 on its board for the deploy side: one world on a simulator backend, driven the
way the real robot's motors are (per joint: position target, kp, kd) and measured the way the
real robot is measured (joint encoders, the IMU's quaternion, gyro and accelerometer).

The physics goes through the same `Simulator` backend and scene as training, so the MuJoCo robot
node is a sim-to-sim check of the deploy chain, not of a second model. Nothing here imports mujoco.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dhal.deploy.go1.packets import MOTOR_MODE_SERVO
from dhal.deploy.go1.safety import BridgeSafety, JointFeedback
from dhal.envs.backends import make_simulator
from dhal.envs.registry import scene_path
from dhal.envs.robots import go1


SIM_MOTOR_TEMPERATURE_C = 35  # the simulated motors never heat up


@dataclass(frozen=True)
class Measurement:
    """One sample of what the robot's sensors report, in go1.JOINT_NAMES order, plus the
    simulator's ground truth (which a real robot does not have)."""

    joint_pos: np.ndarray  # [12]
    joint_vel: np.ndarray  # [12]
    joint_torque: np.ndarray  # [12] the actuators' output torque (the motors' tauEst)
    imu_quat_wxyz: np.ndarray  # [4]
    imu_gyro: np.ndarray  # [3]
    imu_acc: np.ndarray  # [3]
    base_pos: np.ndarray  # [3] world frame (ground truth)
    base_quat_wxyz: np.ndarray  # [4] (ground truth)
    base_lin_vel: np.ndarray  # [3] world frame (ground truth)
    base_ang_vel_b: np.ndarray  # [3] body frame (ground truth)


class SimulatedGo1:
    def __init__(self, scene: str = "go1_skateboard", backend: str = "mujoco_batch", keyframe: str = "push") -> None:
        self.sim = make_simulator(backend, scene_path(scene), 1, device="cpu")
        info = self.sim.info
        info.require("joint", go1.JOINT_NAMES)
        info.require("sensor", (go1.IMU_QUAT_SENSOR, go1.IMU_GYRO_SENSOR, go1.IMU_ACC_SENSOR))
        info.require("keyframe", (keyframe,))
        by_joint = {joint: i for i, joint in enumerate(info.actuator_joint[a] for a in info.actuator_names)}
        self.actuators = torch.tensor([by_joint[j] for j in go1.JOINT_NAMES])
        self.qpos_ids = torch.tensor([info.joint_qpos_adr[j] for j in go1.JOINT_NAMES])
        self.qvel_ids = torch.tensor([info.joint_qvel_adr[j] for j in go1.JOINT_NAMES])
        self.root_qpos = info.joint_qpos_adr[go1.ROOT_JOINT]
        self.root_qvel = info.joint_qvel_adr[go1.ROOT_JOINT]
        self.sensors = {name: slice(start, start + dim) for name, (start, dim) in info.sensor_slices.items()}
        self.physics_dt = info.physics_dt
        self._gain = self.sim.model_field("actuator_gainprm")
        self._bias = self.sim.model_field("actuator_biasprm")
        self._ctrl = torch.zeros(1, info.nu)
        self.reset(keyframe)

    def reset(self, keyframe: str = "push") -> None:
        """The keyframe's pose at rest, with the motors off (kp = kd = 0)."""
        qpos = self.sim.info.keyframes[keyframe].unsqueeze(0)
        self._ctrl[:, self.actuators] = qpos[:, self.qpos_ids].to(self._ctrl.dtype)
        self.sim.set_state(torch.tensor([0]), qpos, torch.zeros(1, self.sim.info.nv), ctrl=self._ctrl.clone())
        zeros = np.zeros(len(go1.JOINT_NAMES))
        self.set_gains(zeros, zeros)
        self.time_s = 0.0

    def set_gains(self, kp: np.ndarray, kd: np.ndarray) -> None:
        """Position actuators: force = kp (ctrl - q) - kd qdot, i.e. gain kp and bias (0, -kp, -kd)."""
        kp_t = torch.as_tensor(np.asarray(kp, dtype=np.float64)).to(self._gain.dtype)
        kd_t = torch.as_tensor(np.asarray(kd, dtype=np.float64)).to(self._bias.dtype)
        if kp_t.shape != (len(go1.JOINT_NAMES),) or kd_t.shape != kp_t.shape or not bool((kp_t >= 0).all() & (kd_t >= 0).all()):
            raise ValueError(f"kp and kd must be {len(go1.JOINT_NAMES)} non-negative values each")
        self._gain[0, self.actuators, 0] = kp_t
        self._bias[0, self.actuators, 1] = -kp_t
        self._bias[0, self.actuators, 2] = -kd_t

    def step(self, targets: np.ndarray | None = None, kp: np.ndarray | None = None, kd: np.ndarray | None = None) -> None:
        """One physics step. Arguments given replace the motors' targets and gains (joint order of
        go1.JOINT_NAMES); targets are ignored by joints whose kp is 0."""
        if kp is not None or kd is not None:
            if kp is None or kd is None:
                raise ValueError("give kp and kd together")
            self.set_gains(kp, kd)
        if targets is not None:
            targets = np.asarray(targets, dtype=np.float64)
            if targets.shape != (len(go1.JOINT_NAMES),) or not np.isfinite(targets).all():
                raise ValueError(f"targets must be {len(go1.JOINT_NAMES)} finite values, got {targets}")
            self._ctrl[0, self.actuators] = torch.from_numpy(targets).to(self._ctrl.dtype)
        self.sim.step(self._ctrl)
        self.time_s += self.physics_dt

    def step_under(self, bridge: BridgeSafety, m: Measurement, to_bridge: np.ndarray, now_s: float) -> None:
        """One physics step commanded by the Go1 bridge's safety layer, as the real motors are:
        it is given `m` (this robot's latest measurement) as motor feedback in its own joint order
        (`to_bridge[i]`: the go1.JOINT_NAMES index of its joint i), and its command's targets and
        gains drive the step. Joints it gives kp = 0 get no position term."""
        n = len(to_bridge)
        bridge.update_feedback(JointFeedback(
            q=m.joint_pos[to_bridge], dq=m.joint_vel[to_bridge], tau_est=m.joint_torque[to_bridge],
            temperature=np.full(n, SIM_MOTOR_TEMPERATURE_C), motor_mode=np.full(n, MOTOR_MODE_SERVO)), now_s)
        command = bridge.command(now_s)
        q_target = np.where(command.kp > 0, command.q, m.joint_pos[to_bridge])
        back = np.argsort(to_bridge)
        self.step(q_target[back], command.kp[back], command.kd[back])

    def measure(self) -> Measurement:
        state = self.sim.read()
        qpos, qvel, sensors = state.qpos[0].double(), state.qvel[0].double(), state.sensordata[0].double()
        root_q = qpos[self.root_qpos:self.root_qpos + 7]
        root_v = qvel[self.root_qvel:self.root_qvel + 6]

        def sensor(name: str) -> np.ndarray:
            return sensors[self.sensors[name]].numpy().copy()

        return Measurement(
            joint_pos=qpos[self.qpos_ids].numpy().copy(),
            joint_vel=qvel[self.qvel_ids].numpy().copy(),
            joint_torque=state.actuator_force[0, self.actuators].double().numpy().copy(),
            imu_quat_wxyz=sensor(go1.IMU_QUAT_SENSOR),
            imu_gyro=sensor(go1.IMU_GYRO_SENSOR),
            imu_acc=sensor(go1.IMU_ACC_SENSOR),
            base_pos=root_q[:3].numpy().copy(),
            base_quat_wxyz=root_q[3:].numpy().copy(),
            base_lin_vel=root_v[:3].numpy().copy(),
            base_ang_vel_b=root_v[3:].numpy().copy(),
        )

    # ---- kinematic placement and rendering (the replay tool) ---------------------------------------

    def set_pose(self, joint_pos: np.ndarray, base_pos: np.ndarray, base_quat_wxyz: np.ndarray,
                 joint_vel: np.ndarray | None = None, base_lin_vel: np.ndarray | None = None,
                 base_ang_vel_b: np.ndarray | None = None, keyframe: str = "push", carry_board: bool = False) -> None:
        """Place the robot: the keyframe's qpos with these joints (go1.JOINT_NAMES order) and base pose
        (world frame), velocities zero unless given (base linear in the world frame, angular in the
        body frame, as `measure` reports them). The motors' targets become `joint_pos`; the gains stay.

        carry_board: the board is not part of a robot's log, so for pictures it is put back under the
        foot tied to it (translation that meets the tie, and the trunk's heading), where there is a tie.
        """
        from dhal.envs.robots import skateboard

        info = self.sim.info
        qpos = info.keyframes[keyframe].clone().double()
        qvel = torch.zeros(info.nv, dtype=torch.float64)
        joints = np.asarray(joint_pos, dtype=np.float64)
        quat = np.asarray(base_quat_wxyz, dtype=np.float64)
        if joints.shape != (len(go1.JOINT_NAMES),) or np.shape(base_pos) != (3,) or quat.shape != (4,):
            raise ValueError(f"set_pose needs {len(go1.JOINT_NAMES)} joint positions, a base position [3] and a "
                             f"quaternion [4]; got {joints.shape}, {np.shape(base_pos)}, {quat.shape}")
        qpos[self.qpos_ids] = torch.from_numpy(joints)
        qpos[self.root_qpos:self.root_qpos + 3] = torch.as_tensor(np.asarray(base_pos, dtype=np.float64))
        qpos[self.root_qpos + 3:self.root_qpos + 7] = torch.from_numpy(quat / np.linalg.norm(quat))
        for ids, values in ((self.qvel_ids, joint_vel),
                            (torch.arange(self.root_qvel, self.root_qvel + 3), base_lin_vel),
                            (torch.arange(self.root_qvel + 3, self.root_qvel + 6), base_ang_vel_b)):
            if values is not None:
                qvel[ids] = torch.as_tensor(np.asarray(values, dtype=np.float64))
        self._ctrl[0, self.actuators] = torch.from_numpy(joints).to(self._ctrl.dtype)
        self.sim.set_state(torch.tensor([0]), qpos.unsqueeze(0), qvel.unsqueeze(0), ctrl=self._ctrl.clone())
        tied = skateboard.FOOT_MOUNT_SITE in info.site_ids and skateboard.BOARD_ROOT_JOINT in info.joint_qpos_adr
        if carry_board and tied:
            self._carry_board(qpos, qvel, keyframe, quat)

    def _carry_board(self, qpos: torch.Tensor, qvel: torch.Tensor, keyframe: str, base_quat_wxyz: np.ndarray) -> None:
        from dhal.envs.robots import skateboard

        info = self.sim.info
        board = info.joint_qpos_adr[skateboard.BOARD_ROOT_JOINT]
        placed = self.sim.read()  # the board still at the keyframe's pose, the robot where asked
        key_board_pos = qpos[board:board + 3].numpy().copy()
        key_board_rot = _rotation(qpos[board + 3:board + 7].numpy())
        mount = placed.site_xpos[0, info.site_ids[skateboard.FOOT_MOUNT_SITE]].double().numpy()
        foot = placed.site_xpos[0, info.site_ids[go1.FOOT_SITES[go1.LEGS.index("FL")]]].double().numpy()
        mount_in_board = key_board_rot.T @ (mount - key_board_pos)
        key_trunk_quat = info.keyframes[keyframe][self.root_qpos + 3:self.root_qpos + 7].double().numpy()
        turn = _yaw_rotation(base_quat_wxyz) @ _yaw_rotation(key_trunk_quat).T
        board_rot = turn @ key_board_rot
        qpos[board:board + 3] = torch.from_numpy(foot - board_rot @ mount_in_board)
        qpos[board + 3:board + 7] = torch.from_numpy(_quaternion(board_rot))
        self.sim.set_state(torch.tensor([0]), qpos.unsqueeze(0), qvel.unsqueeze(0), ctrl=self._ctrl.clone())

    def render(self, width: int = 640, height: int = 480, camera: str | int = -1) -> np.ndarray:
        """An (height, width, 3) uint8 image of the current state; camera -1 follows the trunk."""
        render = getattr(self.sim, "render", None)
        if render is None:
            raise NotImplementedError(f"the {type(self.sim).__name__} backend cannot render images")
        image: np.ndarray = render(0, width, height, camera)
        return image


def _rotation(quat_wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(quat_wxyz, dtype=np.float64) / np.linalg.norm(quat_wxyz)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _yaw_rotation(quat_wxyz: np.ndarray) -> np.ndarray:
    rotation = _rotation(quat_wxyz)
    yaw = np.arctan2(rotation[1, 0], rotation[0, 0])
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _quaternion(rotation: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (w, x, y, z), w >= 0."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = np.empty(4)
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q
