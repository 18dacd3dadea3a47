"""The MuJoCo robot node: the simulated Go1 on its board behind the same topics as the Go1 bridge.

It publishes joint states and the IMU at the physics rate (200 Hz), takes joint targets and mode
requests, and puts the bridge's own safety (`BridgeSafety`: passive start, damping on stale
targets, e-stop, limits, torque clamp) between them and the motors, so the unchanged policy node
drives it exactly as it would drive the real robot: the sim-to-sim gate for deploy. It also
publishes the ground-truth base pose, which a real robot does not have.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import numpy as np

from dhal.deploy import topics
from dhal.deploy.go1.config import BridgeConfig
from dhal.deploy.go1.safety import BridgeSafety
from dhal.deploy.nodes import common
from dhal.deploy.nodes.configs import SimNodeConfig
from dhal.deploy.sim_robot import Measurement, SimulatedGo1
from dhal.envs.robots import go1

NODE_NAME = "dhal_sim"
MAX_LAG_S = 0.02  # behind the real-time schedule by more than this: resynchronise


class SimNode:
    def __init__(self, cfg: SimNodeConfig, context: Any) -> None:
        from rclpy.node import Node

        from dhal.commands.env_options import parse_overrides

        if cfg.realtime_factor <= 0:
            raise ValueError(f"realtime_factor must be positive, got {cfg.realtime_factor}")
        self.cfg = cfg
        self.robot = SimulatedGo1(cfg.scene, cfg.backend, cfg.keyframe)
        self.safety = BridgeSafety(BridgeConfig().with_overrides(parse_overrides(cfg.bridge)))
        self.names = list(self.safety.names)
        self._to_wire = np.array([go1.JOINT_NAMES.index(n) for n in self.names])  # sim order -> wire order
        self.node = Node(NODE_NAME, context=context)
        self.log = common.open_log(cfg.log_dir, NODE_NAME,
                                   common.session_metadata(NODE_NAME, {**dataclasses.asdict(cfg),
                                                                        "bridge": self.safety.config.to_dict()}),
                                   {"config.json": json.dumps(dataclasses.asdict(cfg), default=str).encode()})
        self.io = common.TopicIO(self.node, self.log)
        self.pub_joints = self.io.publisher(topics.JOINT_STATES)
        self.pub_imu = self.io.publisher(topics.IMU)
        self.pub_mode = self.io.publisher(topics.ROBOT_MODE)
        self.pub_truth = self.io.publisher(topics.SIM_BASE_POSE)
        self.io.subscribe(topics.JOINT_TARGETS, lambda m: self.safety.submit_target(list(m.data), self._now()))
        self.io.subscribe(topics.MODE_REQUEST, lambda m: self.safety.request_mode(int(m.data), self._now()))
        self.io.subscribe(topics.ESTOP, lambda m: self.safety.set_estop(bool(m.data), self._now()))
        self._published_mode: topics.RobotMode | None = None
        self._truth_every = max(1, round(1.0 / (cfg.ground_truth_hz * self.robot.physics_dt)))
        self._measurement: Measurement = self.robot.measure()
        self.steps = 0
        self.resyncs = 0
        self._start = time.monotonic()

    def _now(self) -> float:
        """The robot-side safety runs on simulated time: when this process stalls, the simulated
        robot stalls with it, and a target that waited in the queue is not stale to the robot."""
        return self.robot.time_s

    def next_due(self) -> float:
        """Wall time (monotonic) of the next physics step on the real-time schedule (absolute, no drift)."""
        return self._start + self.steps * self.robot.physics_dt / self.cfg.realtime_factor

    def keep_pace(self) -> None:
        """A simulator cannot catch up faster than real time without starving its subscriptions;
        after a stall, restart the schedule from now (and count it) instead of bursting."""
        if time.monotonic() - self.next_due() > MAX_LAG_S:
            self.resyncs += 1
            self._start = time.monotonic() - self.steps * self.robot.physics_dt / self.cfg.realtime_factor

    def step(self) -> None:
        now = self._now()
        m = self._measurement  # what was published after the previous step: nothing moved since
        self.robot.step_under(self.safety, m, self._to_wire, now)
        self.steps += 1
        self._measurement = self.robot.measure()
        self._publish_state(self._measurement)
        if self.safety.mode != self._published_mode:
            from std_msgs.msg import UInt8

            self._published_mode = self.safety.mode
            self.io.publish(self.pub_mode, topics.ROBOT_MODE, UInt8(data=int(self.safety.mode)))
            self.node.get_logger().info(f"robot mode {self.safety.mode.name}"
                                        + (f" ({self.safety.latched})" if self.safety.latched else ""))

    def _publish_state(self, m: Measurement) -> None:
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import Imu, JointState

        stamp = self.node.get_clock().now().to_msg()
        joints = JointState(name=self.names, position=m.joint_pos[self._to_wire].tolist(),
                            velocity=m.joint_vel[self._to_wire].tolist(), effort=m.joint_torque[self._to_wire].tolist())
        joints.header.stamp = stamp
        imu = Imu()
        imu.header.stamp, imu.header.frame_id = stamp, go1.IMU_SITE
        w, x, y, z = m.imu_quat_wxyz
        imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w = float(x), float(y), float(z), float(w)
        imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = (float(v) for v in m.imu_gyro)
        imu.linear_acceleration.x, imu.linear_acceleration.y, imu.linear_acceleration.z = (float(v) for v in m.imu_acc)
        # IMU first: the policy node acts on joint states and needs the matching orientation.
        self.io.publish(self.pub_imu, topics.IMU, imu)
        self.io.publish(self.pub_joints, topics.JOINT_STATES, joints)
        if self.steps % self._truth_every == 0:
            odom = Odometry()
            odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, "world", "trunk"
            p = odom.pose.pose
            p.position.x, p.position.y, p.position.z = (float(v) for v in m.base_pos)
            w, x, y, z = m.base_quat_wxyz
            p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = float(x), float(y), float(z), float(w)
            t = odom.twist.twist
            t.linear.x, t.linear.y, t.linear.z = (float(v) for v in m.base_lin_vel)
            t.angular.x, t.angular.y, t.angular.z = (float(v) for v in m.base_ang_vel_b)
            self.io.publish(self.pub_truth, topics.SIM_BASE_POSE, odom)

    def shutdown(self) -> None:
        if self.log is not None:
            self.log.close()
        self.node.destroy_node()


def run(cfg: SimNodeConfig) -> str:
    context = common.init_context(cfg.domain_id)
    node = None
    try:
        node = SimNode(cfg, context)
        executor = common.make_executor(context, cfg.executor)
        executor.add_node(node.node)
        stop = common.StopFlag(cfg.duration_s)
        import rclpy

        # One physics step and at most one callback per turn, so targets are taken between steps.
        while rclpy.ok(context=context) and not stop:
            executor.spin_once(timeout_sec=min(max(node.next_due() - time.monotonic(), 0.0), 0.01))
            node.keep_pace()
            if time.monotonic() >= node.next_due():
                node.step()
        summary = (f"sim node stopped after {node.steps} physics steps ({node.steps * node.robot.physics_dt:.1f} s, "
                   f"{node.resyncs} resyncs after stalls), robot mode {node.safety.mode.name}; "
                   f"log: {node.log.name if node.log else 'no log'}")
    finally:
        if node is not None:
            node.shutdown()
        context.try_shutdown()
    return summary
