"""The Go1 bridge process: `Go1Bridge` (UDP, 500 Hz) behind the same ROS 2 topics as the MuJoCo node.

Publishes /joint_states (names in contract order, effort = tauEst) and /imu/data at 200 Hz, /joy
(the Go1 remote, `remote.REMOTE_AXES`/`REMOTE_BUTTONS` order) at 50 Hz, /go1/mode on every change
(transient local) and /diagnostics at 1 Hz; subscribes joint targets, /go1/mode_request and
/estop. Run it as `dhal deploy go1-bridge` or through `main(argv)`:

    main(["--config", "bridge.json", "--max-mode", "DAMPING"])

`--config` loads a JSON object of `BridgeConfig` fields; every field also has a flag (tyro), and
flags win over the file.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

import rclpy
import tyro
from rclpy.context import Context
from rclpy.executors import Executor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from dhal.deploy import topics
from dhal.deploy.go1.bridge import BridgeStatus, Go1Bridge
from dhal.deploy.go1.config import BridgeConfig
from dhal.deploy.go1.packets import MOTOR_MODE_SERVO
from dhal.deploy.go1.safety import ACTIVE_MODES
from dhal.deploy.nodes.common import make_executor
from dhal.deploy.ros import message_class, qos, to_stamp
from dhal.deploy.topics import RobotMode

NODE_NAME = "go1_bridge"
HARDWARE_ID = "go1"
_SPIN_TIMEOUT_S = 0.1  # spin_once timeout: how quickly a stop request is noticed


_TOPICS = (topics.JOINT_STATES, topics.IMU, topics.JOY, topics.ROBOT_MODE, topics.DIAGNOSTICS, topics.JOINT_TARGETS,
           topics.MODE_REQUEST, topics.ESTOP)


class BridgeNode(Node):
    """The ROS side of a running `Go1Bridge`: timers publish its state, callbacks feed its safety."""

    def __init__(self, bridge: Go1Bridge, context: Context | None = None):
        super().__init__(NODE_NAME, context=context)
        self.bridge = bridge
        config = bridge.config
        self._types = {t.name: message_class(t) for t in _TOPICS}
        self._joint_states = self._publisher(topics.JOINT_STATES)
        self._imu = self._publisher(topics.IMU)
        self._joy = self._publisher(topics.JOY)
        self._mode = self._publisher(topics.ROBOT_MODE)
        self._diagnostics = self._publisher(topics.DIAGNOSTICS)
        self.create_subscription(self._types[topics.JOINT_TARGETS.name], topics.JOINT_TARGETS.name,
                                 lambda msg: bridge.submit_target(msg.data), qos(topics.JOINT_TARGETS))
        self.create_subscription(self._types[topics.MODE_REQUEST.name], topics.MODE_REQUEST.name,
                                 lambda msg: bridge.request_mode(msg.data), qos(topics.MODE_REQUEST))
        self.create_subscription(self._types[topics.ESTOP.name], topics.ESTOP.name,
                                 lambda msg: bridge.set_estop(bool(msg.data)), qos(topics.ESTOP))
        self._published_sequence = 0
        self._published_mode: RobotMode | None = None
        self.create_timer(1.0 / config.state_rate_hz, self._publish_state)
        self.create_timer(1.0 / config.joy_rate_hz, self._publish_joy)
        self.create_timer(1.0 / config.diagnostics_rate_hz, self._publish_diagnostics)
        self._publish_mode()

    def _publisher(self, topic: topics.Topic) -> Any:
        return self.create_publisher(self._types[topic.name], topic.name, qos(topic))

    # ---- timers -------------------------------------------------------------------------------------------
    def _publish_state(self) -> None:
        self._log_events()
        self._publish_mode()
        snapshot = self.bridge.latest_state()
        if snapshot is None or snapshot.sequence == self._published_sequence:
            return
        self._published_sequence = snapshot.sequence
        stamp = to_stamp(snapshot.wall_time_ns)
        joints = self._types[topics.JOINT_STATES.name]()
        joints.header.stamp = stamp
        joints.name = list(self.bridge.config.joint_names)
        joints.position = snapshot.q.tolist()
        joints.velocity = snapshot.dq.tolist()
        joints.effort = snapshot.tau_est.tolist()
        self._joint_states.publish(joints)
        imu = self._types[topics.IMU.name]()
        imu.header.stamp = stamp
        imu.header.frame_id = self.bridge.config.imu_frame_id
        w, x, y, z = snapshot.quaternion_wxyz
        imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w = x, y, z, w
        imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = snapshot.gyroscope
        imu.linear_acceleration.x, imu.linear_acceleration.y, imu.linear_acceleration.z = snapshot.accelerometer
        self._imu.publish(imu)

    def _publish_joy(self) -> None:
        snapshot = self.bridge.latest_state()
        if snapshot is None:
            return
        joy = self._types[topics.JOY.name]()
        joy.header.stamp = to_stamp(snapshot.wall_time_ns)
        joy.axes = [float(a) for a in snapshot.remote.axes]
        joy.buttons = [int(b) for b in snapshot.remote.buttons]
        self._joy.publish(joy)

    def _publish_mode(self) -> None:
        mode = self.bridge.mode
        if mode != self._published_mode:
            self._published_mode = mode
            self._mode.publish(self._types[topics.ROBOT_MODE.name](data=int(mode)))

    def _publish_diagnostics(self) -> None:
        self._log_events()
        array = self._types[topics.DIAGNOSTICS.name]()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = diagnostic_statuses(self.bridge.status(), self.bridge.config)
        self._diagnostics.publish(array)

    def _log_events(self) -> None:
        # One call site per severity: rclpy refuses a call site whose severity changes.
        logger = self.get_logger()
        for event in self.bridge.drain_events():
            if event.level == "error":
                logger.error(event.text)
            elif event.level == "warn":
                logger.warning(event.text)
            else:
                logger.info(event.text)


def diagnostic_statuses(status: BridgeStatus, config: BridgeConfig) -> list[Any]:
    """DiagnosticStatus entries: mode, watchdog, motors, loop (levels OK/WARN/ERROR)."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    ok, warn, error = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR

    def entry(name: str, level: bytes, message: str, values: dict[str, object]) -> DiagnosticStatus:
        return DiagnosticStatus(level=level, name=f"{NODE_NAME}: {name}", message=message, hardware_id=HARDWARE_ID,
                                values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])

    def ms(seconds: float | None) -> str:
        return "never" if seconds is None else f"{seconds * 1e3:.1f}"

    s, link, loop, snapshot = status.safety, status.link, status.loop, status.snapshot
    fault = str(s.latched) if s.latched else ""
    if s.latched or s.estop:
        mode_level, mode_text = error, f"{s.mode.name}, latched: {fault or 'e-stop engaged'}"
    elif s.pending is not None:
        mode_level, mode_text = warn, f"{s.mode.name}, {s.pending.name} waiting for {s.waiting_for}"
    else:
        mode_level, mode_text = ok, s.mode.name
    statuses = [entry("mode", mode_level, mode_text, {
        "mode": s.mode.name, "pending": s.pending.name if s.pending else "", "waiting_for": s.waiting_for,
        "latched_fault": fault, "estop": s.estop, "max_mode": config.max_mode.name,
    })]
    counters = s.counters
    stale = s.latched is not None and s.latched.kind.name.startswith("STALE")
    statuses.append(entry("watchdog", error if stale else ok, f"latched: {fault}" if stale else "ok", {
        "target_age_ms": ms(s.target_age_s), "state_age_ms": ms(s.state_age_s),
        "command_timeout_ms": ms(config.command_timeout_s), "state_timeout_ms": ms(config.state_timeout_s),
        "targets_received": counters.targets_received, "targets_rejected": counters.targets_rejected,
        "targets_clamped": counters.targets_clamped, "torque_limited_ticks": counters.torque_limited_ticks,
        "entry_refusals": counters.entry_refusals,
        "fault_counts": ", ".join(f"{k}={v}" for k, v in sorted(counters.faults.items())),
    }))
    if snapshot is None:
        statuses.append(entry("motors", warn, "no LowState received yet", {}))
    else:
        hottest = int(snapshot.temperature.max())
        mismatched = [n for n, m in zip(config.joint_names, snapshot.motor_mode) if int(m) != MOTOR_MODE_SERVO]
        if hottest > config.motor_temperature_limit_c or s.mode_mismatch_run > 0:
            level = error
        elif hottest > config.motor_temperature_warn_c:
            level = warn
        else:
            level = ok
        message = f"hottest {hottest} C" + (f", unexpected mode on {', '.join(mismatched)}" if mismatched else "")
        values: dict[str, object] = {f"{n} temperature_c": int(t) for n, t in zip(config.joint_names, snapshot.temperature)}
        values.update({f"{n} motor_mode": f"{int(m):#04x}" for n, m in zip(config.joint_names, snapshot.motor_mode)})
        values.update({"power_w": f"{s.power_w:.1f}", "power_limit_w": f"{config.power_limit_w:.0f}",
                       "power_protect_count": s.power_count})
        statuses.append(entry("motors", level, message, values))
    link_bad = link.crc_errors + link.wrong_length + link.foreign + link.send_errors
    no_state = s.state_age_s is None or s.state_age_s > config.state_timeout_s
    loop_level = warn if (no_state or link_bad or loop.tick_errors) else ok
    loop_text = ("no LowState from the robot" if no_state else f"{loop.rate_hz:.0f} Hz")
    statuses.append(entry("loop", loop_level, loop_text, {
        "rate_hz": f"{loop.rate_hz:.1f}", "period_p50_ms": f"{loop.period_p50_ms:.2f}",
        "period_p99_ms": f"{loop.period_p99_ms:.2f}", "period_max_ms": f"{loop.period_max_ms:.2f}",
        "tick_p99_ms": f"{loop.tick_p99_ms:.3f}", "overruns": loop.overruns, "skipped_periods": loop.skipped_periods,
        "tick_errors": loop.tick_errors, "packets_sent": link.sent, "states_received": link.received,
        "crc_errors": link.crc_errors, "wrong_length": link.wrong_length, "foreign_datagrams": link.foreign,
        "send_errors": link.send_errors, "active": s.mode in ACTIVE_MODES,
    }))
    return statuses


def spin_until(executor: Executor, stop: threading.Event) -> None:
    """spin_once in a loop (never spin() in a thread: EventsExecutor can hang on shutdown, DEPLOY.md §2)."""
    while not stop.is_set() and executor.context.ok():
        executor.spin_once(timeout_sec=_SPIN_TIMEOUT_S)


def parse_config(argv: Sequence[str]) -> BridgeConfig:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=str, default=None, help="JSON object of BridgeConfig fields")
    known, rest = pre.parse_known_args(list(argv))
    base = BridgeConfig.from_json(known.config) if known.config else BridgeConfig()
    return tyro.cli(BridgeConfig, default=base, args=rest, prog="dhal deploy go1-bridge",
                    description="Go1 low-level UDP <-> ROS 2 bridge with its own safety (docs/bringup.md). "
                                "--config FILE.json loads fields from JSON; flags override it.")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        config = parse_config(args)
    except (KeyError, ValueError, OSError) as error:
        print(f"go1-bridge: error: {error}", file=sys.stderr)
        return 2
    try:
        bridge = Go1Bridge(config)
    except OSError as error:
        print(f"go1-bridge: error: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Our handlers, not rclpy's: a signal must stop the loop through bridge.stop(), which damps.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = BridgeNode(bridge, context=context)
    executor = make_executor(context, config.executor)
    executor.add_node(node)
    node.get_logger().info(f"bridge to {config.robot_host}:{config.robot_port} from local port "
                           f"{bridge.link.local_address[1]}, max mode {config.max_mode.name}; config {config.to_dict()}")
    try:
        bridge.start()
        spin_until(executor, stop)
    finally:
        bridge.stop()  # damping packets before anything else goes away
        node._log_events()  # what latched since the last timer (a fault's reason among them)
        node.get_logger().info("stopped: damping sent")
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
