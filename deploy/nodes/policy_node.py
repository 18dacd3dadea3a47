"""The onboard policy node: robot state in, joint targets and a robot-mode request out, over rclpy.

All decisions live in `PolicyController` (and its `SafetyMachine`); this file wires topics to it,
publishes what it decides, and logs every input, output and policy step to one MCAP file on a
writer thread. Run it with `dhal deploy policy POLICY.onnx` (dry run unless --no-dry-run).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import numpy as np

from dhal.deploy import topics
from dhal.deploy.controller import ControllerConfig, PolicyController, TickOutput
from dhal.deploy.nodes import common
from dhal.deploy.nodes.configs import PolicyNodeConfig
from dhal.deploy.operator import parse_request
from dhal.deploy.runtime import OnnxPolicy
from dhal.deploy.safety_types import Fault, FsmState
from dhal.deploy.safety_config import SafetyConfig

NODE_NAME = "dhal_policy"


def safety_config(cfg: PolicyNodeConfig, policy: OnnxPolicy) -> SafetyConfig:
    from dhal.commands.env_options import parse_overrides

    overrides = parse_overrides(cfg.safety)
    overrides["dry_run"] = cfg.dry_run
    try:
        return SafetyConfig.for_contract(policy.contract, **overrides)
    except TypeError as error:
        raise ValueError(str(error)) from error


class PolicyNode:
    def __init__(self, cfg: PolicyNodeConfig, context: Any) -> None:
        from rclpy.node import Node

        self.cfg = cfg
        self.policy = OnnxPolicy(cfg.policy)
        digest = self.policy.metadata["dhal.contract_digest"]
        if cfg.expected_contract_digest is not None and digest != cfg.expected_contract_digest:
            raise ValueError(f"{cfg.policy} has contract {digest}, the robot side expects {cfg.expected_contract_digest}")
        self.policy.warm_up()
        self.controller = PolicyController(
            self.policy, safety_config(cfg, self.policy),
            ControllerConfig(state_period_s=1.0 / cfg.state_rate_hz, auto_start_after_s=cfg.auto_start_after_s))
        resolved = {**dataclasses.asdict(cfg), "safety_resolved": dataclasses.asdict(self.controller.safety.config)}
        self.log = common.open_log(
            cfg.log_dir, NODE_NAME,
            {**common.session_metadata(NODE_NAME, resolved),
             "policy": {"sha256": self.policy.sha256, "contract_digest": digest, "file": cfg.policy.name}},
            {"policy.onnx": cfg.policy.read_bytes(), "config.json": json.dumps(resolved, default=str).encode()})
        self.node = Node(NODE_NAME, context=context)
        self.io = common.TopicIO(self.node, self.log)
        self.clock = self.node.get_clock()
        self.io.subscribe(topics.JOINT_STATES, self._on_joint_state)
        self.io.subscribe(topics.IMU, self._on_imu)
        self.io.subscribe(topics.ESTOP, self._on_estop)
        self.io.subscribe(topics.CMD_VEL, self._on_cmd_vel)
        self.io.subscribe(topics.JOY, self._on_joy)
        self.io.subscribe(topics.OPERATOR, self._on_operator)
        self.io.subscribe(topics.ROBOT_MODE, self._on_robot_mode)
        self.pub_targets = self.io.publisher(topics.JOINT_TARGETS)
        self.pub_mode = self.io.publisher(topics.MODE_REQUEST)
        self.pub_fsm = self.io.publisher(topics.FSM_STATE)
        self.pub_diag = self.io.publisher(topics.DIAGNOSTICS)
        self._last_fsm: FsmState | None = None
        period = self.policy.contract.control_dt
        self.node.create_timer(period, self._on_watchdog)
        self.node.create_timer(1.0 / cfg.diagnostics_hz, self._on_diagnostics)
        self.node.get_logger().info(
            f"policy {cfg.policy.name} (contract {digest}), {'DRY RUN' if cfg.dry_run else 'LIVE'}, "
            f"{1 / period:.0f} Hz, triggered by joint states")

    # ---- callbacks --------------------------------------------------------------------------------------
    def _on_joint_state(self, msg: Any) -> None:
        from dhal.deploy.ros import stamp_ns

        self._apply(self.controller.on_joint_state(list(msg.name), msg.position, msg.velocity,
                                                   stamp_ns(msg.header.stamp) / 1e9, common.wall_s()))

    def _on_imu(self, msg: Any) -> None:
        from dhal.deploy.ros import stamp_ns

        q, w = msg.orientation, msg.angular_velocity
        self.controller.on_imu((q.x, q.y, q.z, q.w), (w.x, w.y, w.z), stamp_ns(msg.header.stamp) / 1e9)

    def _on_estop(self, msg: Any) -> None:
        self._apply(self.controller.on_estop(bool(msg.data), common.wall_s()))

    def _on_cmd_vel(self, msg: Any) -> None:
        self.controller.on_velocity_command(msg.linear.x, msg.linear.y, msg.angular.z)

    def _on_joy(self, msg: Any) -> None:
        try:
            self.controller.on_joy(list(msg.buttons), list(msg.axes), common.wall_s())
        except ValueError as error:
            self._apply(self.controller.fault(Fault.BAD_MESSAGE, f"/joy: {error}", common.wall_s()))

    def _on_operator(self, msg: Any) -> None:
        try:
            request = parse_request(msg.data)
        except ValueError as error:
            self.node.get_logger().error(str(error))
            return
        self.controller.request(request, common.wall_s())
        self._apply(self.controller.watchdog(common.wall_s()))

    def _on_robot_mode(self, msg: Any) -> None:
        self.controller.on_robot_mode(int(msg.data), common.wall_s())

    def _on_watchdog(self) -> None:
        self._apply(self.controller.watchdog(common.wall_s()))

    def _on_diagnostics(self) -> None:
        values = {"fsm_state": self.controller.safety.state.name, "reason": self.controller.safety.reason,
                  "dry_run": self.cfg.dry_run, "policy_steps": self.controller.steps,
                  "log_dropped": self.log.dropped if self.log else 0}
        for name, window in self.controller.timing.items():
            if window:
                values[f"{name[:-3]}_p50_ms"] = f"{np.percentile(window, 50):.3f}"
                values[f"{name[:-3]}_p99_ms"] = f"{np.percentile(window, 99):.3f}"
                values[f"{name[:-3]}_max_ms"] = f"{max(window):.3f}"
        level = 2 if self.controller.safety.state == FsmState.DAMPING else 0
        msg = common.diagnostic_array(self.clock.now().to_msg(), NODE_NAME, level, self.controller.safety.reason, values)
        self.io.publish(self.pub_diag, topics.DIAGNOSTICS, msg)

    def _apply(self, out: TickOutput | None) -> None:
        while self.controller.notices:
            self.node.get_logger().warning(self.controller.notices.pop(0))
        if out is None:
            return
        from std_msgs.msg import Float64MultiArray, UInt8

        if out.mode_request is not None:
            self.io.publish(self.pub_mode, topics.MODE_REQUEST, UInt8(data=int(out.mode_request)))
        if out.targets is not None:
            msg = Float64MultiArray(data=[float(x) for x in out.targets])
            # The step index rides in layout.data_offset, which the forward controller ignores, so
            # a log of the robot side can be joined with the policy steps (latency, replay).
            msg.layout.data_offset = out.record.step if out.record is not None else 0
            self.io.publish(self.pub_targets, topics.JOINT_TARGETS, msg)
        if out.command.state != self._last_fsm:
            self._last_fsm = out.command.state
            self.io.publish(self.pub_fsm, topics.FSM_STATE, UInt8(data=int(out.command.state)))
            # rclpy binds one severity to each call site, hence two calls.
            if out.command.state == FsmState.DAMPING:  # the reason starts with the state's name
                self.node.get_logger().warning(out.command.reason)
            else:
                self.node.get_logger().info(out.command.reason)
        if out.record is not None and self.log is not None:
            self.log.log_step(out.record, time.time_ns())

    def shutdown(self) -> None:
        """Leave the robot damped, never stiff, whatever stopped the node."""
        from std_msgs.msg import UInt8

        try:
            self.io.publish(self.pub_mode, topics.MODE_REQUEST, UInt8(data=int(topics.RobotMode.DAMPING)))
        finally:
            if self.log is not None:
                self.log.close()
            self.node.destroy_node()


def run(cfg: PolicyNodeConfig) -> str:
    context = common.init_context(cfg.domain_id)
    node = None
    try:
        node = PolicyNode(cfg, context)
        executor = common.make_executor(context, cfg.executor)
        executor.add_node(node.node)
        common.spin_until(executor, context, common.StopFlag(cfg.duration_s))
        state = node.controller.safety.state.name
        steps = node.controller.steps
        log = node.log.name if node.log is not None else "no log"
    finally:
        if node is not None:
            node.shutdown()
        context.try_shutdown()
    return f"policy node stopped in {state} after {steps} control ticks; log: {log}"
