"""The deploy chain in one process, without DDS: the real `PolicyController`, the Go1 bridge's own
safety (`BridgeSafety`) and the simulated Go1, stepped deterministically in simulated time.

Each physics step does what the two nodes do around the wire: the robot side measures and
publishes the IMU, then the joint states (and the ground-truth base pose at `ground_truth_hz`);
the policy node receives them and may publish a mode request, joint targets (the step index in
`layout.data_offset`) and its FSM state; the robot side takes those, runs its safety and PD, and
reports a changed robot mode. The MCAP log is written as the policy node writes its own (every
message it receives or publishes, each policy step, the ONNX and config attached) plus the robot
side's ground truth, so `dhal replay` can be tested on logs of known provenance. All messages of
one physics step carry its time as log time; the robot side applies what the policy node sends
`command_delay_steps` physics steps later (0: at once).
"""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dhal.deploy import topics
from dhal.deploy.controller import ControllerConfig, PolicyController, TickOutput
from dhal.deploy.go1.config import BridgeConfig
from dhal.deploy.go1.safety import BridgeSafety
from dhal.deploy.mcap_log import McapLogger
from dhal.deploy.runtime import OnnxPolicy
from dhal.deploy.safety_types import FsmState
from dhal.deploy.safety_config import SafetyConfig
from dhal.deploy.sim_robot import Measurement, SimulatedGo1
from dhal.envs.robots import go1

# The logger must never drop in a loop that runs faster than real time: this holds every message
# of a 10-minute run at 200 Hz several times over.
_LOG_QUEUE_SIZE = 1 << 22


@dataclass(frozen=True)
class ClosedLoopConfig:
    duration_s: float = 5.0
    # Stand up at once, start the policy after standing this long; None: stay in PASSIVE.
    auto_start_after_s: float | None = 1.0
    command: tuple[float, float, float] = (0.0, 0.0, 0.0)  # velocity command (vx, vy, yaw rate)
    dry_run: bool = False
    scene: str = "go1_skateboard"
    keyframe: str = "push"
    backend: str = "mujoco_batch"
    # Clock origin in epoch seconds, so that stamps round through float seconds as a ROS clock's do.
    start_time_s: float = 1_700_000_000.0
    ground_truth_hz: float | None = 50.0  # /sim/base_pose rate; None: no ground truth (a real robot's log)
    wire_joint_order: tuple[str, ...] | None = None  # JointState name order (default: the bridge's order)
    # Physics steps between the policy node publishing a target or mode request and the robot side
    # applying it; the sim node applies what arrived during a step at the next one, so 1 is realistic.
    command_delay_steps: int = 0
    bridge: BridgeConfig = field(default_factory=BridgeConfig)

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise ValueError(f"duration_s must be positive, got {self.duration_s}")
        if self.ground_truth_hz is not None and not self.ground_truth_hz > 0:
            raise ValueError(f"ground_truth_hz must be positive or None, got {self.ground_truth_hz}")
        if self.command_delay_steps < 0:
            raise ValueError(f"command_delay_steps must be >= 0, got {self.command_delay_steps}")
        if self.wire_joint_order is not None and sorted(self.wire_joint_order) != sorted(self.bridge.joint_names):
            raise ValueError(f"wire_joint_order {self.wire_joint_order} is not a permutation of "
                             f"{self.bridge.joint_names}")


@dataclass(frozen=True)
class ClosedLoopResult:
    log_path: Path
    policy_steps: int
    physics_steps: int
    fsm_states: tuple[str, ...]  # every FSM state the controller went through, in order
    final_robot_mode: topics.RobotMode


class ClosedLoop:
    """One run: build it, adjust `controller`, `bridge` or `robot` if a test needs to, then `run`."""

    def __init__(self, policy_path: str | Path, cfg: ClosedLoopConfig = ClosedLoopConfig()) -> None:
        self.cfg = cfg
        self.policy_path = Path(policy_path)
        self.policy = OnnxPolicy(self.policy_path)
        self.robot = SimulatedGo1(cfg.scene, cfg.backend, cfg.keyframe)
        self.controller = PolicyController(
            self.policy, SafetyConfig.for_contract(self.policy.contract, dry_run=cfg.dry_run),
            # The loop sees the robot from its first state, at rest: stand up without waiting.
            ControllerConfig(state_period_s=self.robot.physics_dt, auto_start_after_s=cfg.auto_start_after_s,
                             settle_time_s=0.0))
        self.controller.on_velocity_command(*cfg.command)
        self.bridge = BridgeSafety(cfg.bridge)
        self.bridge_names = list(cfg.bridge.joint_names)
        self.wire_names = list(cfg.wire_joint_order or cfg.bridge.joint_names)
        self._sim_to_bridge = np.array([go1.JOINT_NAMES.index(n) for n in self.bridge_names])
        self._sim_to_wire = np.array([go1.JOINT_NAMES.index(n) for n in self.wire_names])
        self._in_flight: deque[tuple[int, Callable[[float], None]]] = deque()  # (physics step due, delivery)

    def run(self, log_path: str | Path) -> ClosedLoopResult:
        cfg = self.cfg
        dt_ns = round(self.robot.physics_dt * 1e9)
        start_ns = round(cfg.start_time_s * 1e9)
        steps = round(cfg.duration_s * 1e9 / dt_ns)
        truth_every = (None if cfg.ground_truth_hz is None
                       else max(1, round(1.0 / (cfg.ground_truth_hz * self.robot.physics_dt))))
        config = {**dataclasses.asdict(cfg), "policy": str(self.policy_path), "bridge": cfg.bridge.to_dict()}
        metadata = {
            "session": {"node": "dhal_closed_loop", "physics_dt": repr(self.robot.physics_dt)},
            "config": {"json": json.dumps(config, sort_keys=True, default=str)},
            "policy": {"sha256": self.policy.sha256, "contract_digest": self.policy.metadata["dhal.contract_digest"],
                       "file": self.policy_path.name},
        }
        attachments = {"policy.onnx": self.policy_path.read_bytes(),
                       "config.json": json.dumps(config, default=str).encode()}
        states = [self.controller.safety.state.name]
        published_fsm: FsmState | None = None
        reported_mode: topics.RobotMode | None = None
        with McapLogger(log_path, metadata=metadata, attachments=attachments, topics=topics.ALL_TOPICS,
                        queue_size=_LOG_QUEUE_SIZE) as log:
            for i in range(steps):
                now_ns = start_ns + i * dt_ns
                now_s = now_ns / 1e9
                measured = self.robot.measure()
                self._receive_state(log, measured, now_ns, with_truth=truth_every is not None and i % truth_every == 0)
                output = self.controller.on_joint_state(
                    self.wire_names, measured.joint_pos[self._sim_to_wire], measured.joint_vel[self._sim_to_wire],
                    now_s, now_s)
                if output is not None:
                    fsm_changed = output.command.state != published_fsm
                    if fsm_changed:
                        published_fsm = output.command.state
                        states.append(published_fsm.name)
                    self._publish(log, output, now_ns, fsm_changed, due_step=i + cfg.command_delay_steps)
                while self._in_flight and self._in_flight[0][0] <= i:
                    self._in_flight.popleft()[1](now_s)
                self._step_robot(measured, now_s)
                if self.bridge.mode != reported_mode:
                    reported_mode = self.bridge.mode
                    log.log_message(topics.ROBOT_MODE, _uint8(int(reported_mode)), now_ns)
                    self.controller.on_robot_mode(int(reported_mode), now_s)
            dropped = log.dropped
        if dropped:
            raise RuntimeError(f"the closed loop's log {log_path} dropped {dropped} messages")
        return ClosedLoopResult(log_path=Path(log_path), policy_steps=self.controller.steps, physics_steps=steps,
                                fsm_states=tuple(_dedupe(states)), final_robot_mode=self.bridge.mode)

    def _receive_state(self, log: McapLogger, m: Measurement, now_ns: int, with_truth: bool) -> None:
        """The robot side publishes the IMU, then the joint states; the policy node logs both on receipt."""
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import Imu, JointState

        from dhal.deploy.ros import to_stamp

        stamp = to_stamp(now_ns)
        imu = Imu()
        imu.header.stamp, imu.header.frame_id = stamp, go1.IMU_SITE
        w, x, y, z = (float(v) for v in m.imu_quat_wxyz)
        imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w = x, y, z, w
        imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = (float(v) for v in m.imu_gyro)
        imu.linear_acceleration.x, imu.linear_acceleration.y, imu.linear_acceleration.z = (float(v) for v in m.imu_acc)
        log.log_message(topics.IMU, imu, now_ns)
        self.controller.on_imu((x, y, z, w), m.imu_gyro, now_ns / 1e9)
        joints = JointState(name=self.wire_names, position=m.joint_pos[self._sim_to_wire].tolist(),
                            velocity=m.joint_vel[self._sim_to_wire].tolist(),
                            effort=m.joint_torque[self._sim_to_wire].tolist())
        joints.header.stamp = stamp
        log.log_message(topics.JOINT_STATES, joints, now_ns)
        if with_truth:
            odom = Odometry()
            odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, "world", go1.ROOT_BODY
            pose = odom.pose.pose
            pose.position.x, pose.position.y, pose.position.z = (float(v) for v in m.base_pos)
            w, x, y, z = (float(v) for v in m.base_quat_wxyz)
            pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = x, y, z, w
            twist = odom.twist.twist
            twist.linear.x, twist.linear.y, twist.linear.z = (float(v) for v in m.base_lin_vel)
            twist.angular.x, twist.angular.y, twist.angular.z = (float(v) for v in m.base_ang_vel_b)
            log.log_message(topics.SIM_BASE_POSE, odom, now_ns)

    def _publish(self, log: McapLogger, out: TickOutput, now_ns: int, fsm_changed: bool, due_step: int) -> None:
        """What the policy node's `_apply` publishes and logs, in its order; the bridge receives it
        at physics step `due_step`."""
        from std_msgs.msg import Float64MultiArray

        if out.mode_request is not None:
            mode = int(out.mode_request)
            log.log_message(topics.MODE_REQUEST, _uint8(mode), now_ns)
            self._in_flight.append((due_step, lambda t: self.bridge.request_mode(mode, t)))
        if out.targets is not None:
            msg = Float64MultiArray(data=[float(x) for x in out.targets])
            msg.layout.data_offset = out.record.step if out.record is not None else 0
            log.log_message(topics.JOINT_TARGETS, msg, now_ns)
            target = list(msg.data)
            self._in_flight.append((due_step, lambda t: self.bridge.submit_target(target, t)))
        if fsm_changed:
            log.log_message(topics.FSM_STATE, _uint8(int(out.command.state)), now_ns)
        if out.record is not None:
            log.log_step(out.record, now_ns)

    def _step_robot(self, m: Measurement, now_s: float) -> None:
        """The MuJoCo robot node's step: feedback -> BridgeSafety.command -> PD in the simulator."""
        self.robot.step_under(self.bridge, m, self._sim_to_bridge, now_s)


def _uint8(value: int) -> Any:
    from std_msgs.msg import UInt8

    return UInt8(data=value)


def _dedupe(names: list[str]) -> list[str]:
    return [name for i, name in enumerate(names) if i == 0 or names[i - 1] != name]


def run_closed_loop(policy_path: str | Path, log_path: str | Path,
                    cfg: ClosedLoopConfig = ClosedLoopConfig()) -> ClosedLoopResult:
    return ClosedLoop(policy_path, cfg).run(log_path)
