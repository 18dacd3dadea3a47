"""End to end over real DDS on loopback: fake Go1 <-UDP-> bridge <-ROS 2-> a stand-in policy node.

Each test gets its own fake robot, bridge and rclpy context in a module-private ROS domain. Every
way the target stream can go wrong must end in the damping command at the fake robot.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Imu, JointState, Joy
from std_msgs.msg import Bool, Float64MultiArray, UInt8

from dhal.deploy import topics
from dhal.deploy.go1.bridge import Go1Bridge
from dhal.deploy.go1.bridge_node import BridgeNode, spin_until
from dhal.deploy.nodes.common import make_executor
from dhal.deploy.go1.config import BridgeConfig
from dhal.deploy.go1.fake_robot import FakeGo1, FakeGo1Snapshot
from dhal.deploy.go1.joint_map import SDK_MOTOR_JOINTS
from dhal.deploy.go1.packets import MOTOR_MODE_SERVO, POS_STOP_F
from dhal.deploy.go1.remote import REMOTE_AXES, REMOTE_BUTTONS, RemoteState
from dhal.deploy.ros import qos
from dhal.deploy.topics import RobotMode
from dhal.envs.robots import go1

DOMAIN_ID = random.SystemRandom().randint(1, 100)
DEADLINE_S = 15.0
POSE = np.array(go1.DEFAULT_POSE)  # go1.JOINT_NAMES order
STUB_PROCESS = Path(__file__).with_name("policy_stub_process.py")


@pytest.fixture(scope="module", autouse=True)
def loopback_discovery():
    patch = pytest.MonkeyPatch()
    patch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    patch.delenv("ROS_STATIC_PEERS", raising=False)
    yield
    patch.undo()


class PolicyStub(Node):
    """Publishes what a policy node would (targets at 100 Hz, mode requests, e-stop) and records
    what the bridge publishes."""

    def __init__(self, context: Context):
        super().__init__("policy_stub", context=context)
        self.targets: list[float] | None = None
        self.modes: list[int] = []
        self.joint_states: JointState | None = None
        self.imu: Imu | None = None
        self.joy: Joy | None = None
        self.diagnostics: DiagnosticArray | None = None
        self._targets = self.create_publisher(Float64MultiArray, topics.JOINT_TARGETS.name, qos(topics.JOINT_TARGETS))
        self._mode = self.create_publisher(UInt8, topics.MODE_REQUEST.name, qos(topics.MODE_REQUEST))
        self._estop = self.create_publisher(Bool, topics.ESTOP.name, qos(topics.ESTOP))
        self.create_subscription(UInt8, topics.ROBOT_MODE.name, lambda m: self.modes.append(m.data), qos(topics.ROBOT_MODE))
        self.create_subscription(JointState, topics.JOINT_STATES.name, lambda m: setattr(self, "joint_states", m),
                                 qos(topics.JOINT_STATES))
        self.create_subscription(Imu, topics.IMU.name, lambda m: setattr(self, "imu", m), qos(topics.IMU))
        self.create_subscription(Joy, topics.JOY.name, lambda m: setattr(self, "joy", m), qos(topics.JOY))
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS.name, lambda m: setattr(self, "diagnostics", m),
                                 qos(topics.DIAGNOSTICS))
        self.create_timer(0.01, self._stream)

    def _stream(self) -> None:
        if self.targets is not None:
            self._targets.publish(Float64MultiArray(data=self.targets))

    def request(self, mode: RobotMode) -> None:
        self._mode.publish(UInt8(data=int(mode)))

    def estop(self, engaged: bool) -> None:
        self._estop.publish(Bool(data=engaged))

    def send_once(self, values: list[float]) -> None:
        self._targets.publish(Float64MultiArray(data=values))

    def diagnostic(self, name: str) -> dict[str, str]:
        assert self.diagnostics is not None
        for status in self.diagnostics.status:
            if status.name.endswith(name):
                return {"message": status.message, "level": str(status.level[0]),
                        **{kv.key: kv.value for kv in status.values}}
        raise KeyError(name)


class Stack:
    def __init__(self, fake: FakeGo1, bridge: Go1Bridge, stub: PolicyStub):
        self.fake, self.bridge, self.stub, self.config = fake, bridge, stub, bridge.config

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not condition():
            if time.monotonic() > deadline:
                events = "\n".join(e.text for e in self.bridge.safety.events)
                raise AssertionError(f"timed out after {DEADLINE_S} s waiting for {what}; bridge mode "
                                     f"{self.bridge.mode.name}, latched {self.bridge.safety.latched}, events:\n{events}")
            time.sleep(0.01)

    def targets(self, pose_in_go1_order: np.ndarray) -> list[float]:
        """A pose given in go1.JOINT_NAMES order, as the bridge's joint order expects it."""
        by_name = dict(zip(go1.JOINT_NAMES, pose_in_go1_order))
        return [float(by_name[n]) for n in self.config.joint_names]

    def all_motors(self, predicate: Callable[[dict[str, float]], bool]) -> bool:
        snapshot = self.fake.snapshot()
        return snapshot.last_command is not None and all(predicate(snapshot.command_for(n)) for n in SDK_MOTOR_JOINTS)

    def damped(self) -> bool:
        kd = self.config.gains.damping.kd
        return self.all_motors(lambda c: c["mode"] == MOTOR_MODE_SERVO and c["kp"] == 0.0 and c["kd"] == kd
                               and c["q"] == np.float32(POS_STOP_F) and c["dq"] == 0.0)

    def using(self, mode: RobotMode) -> bool:
        gains = self.config.gains.of(mode)
        return self.all_motors(lambda c: c["kp"] == gains.kp and c["kd"] == gains.kd)

    def activate(self, mode: RobotMode = RobotMode.ACTIVE_POLICY) -> None:
        self.stub.targets = self.targets(POSE)
        self.stub.request(mode)
        self.wait_for(lambda: self.using(mode), f"{mode.name} gains at the fake robot")

    def end_in_damping(self, fault: str) -> None:
        self.wait_for(self.damped, "the damping command at every motor of the fake robot")
        self.wait_for(lambda: self.stub.modes[-1:] == [RobotMode.DAMPING], "/go1/mode to report DAMPING")
        self.wait_for(lambda: self.stub.diagnostics is not None and fault in self.stub.diagnostic("mode")["message"],
                      f"/diagnostics to name the fault {fault!r}")


def make_stack(request: pytest.FixtureRequest, **overrides: object) -> Stack:
    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID, signal_handler_options=SignalHandlerOptions.NO)
    fake = FakeGo1(initial_pose=POSE + 0.01 * np.arange(len(POSE))).start()
    settings: dict[str, object] = dict(robot_host="127.0.0.1", robot_port=fake.address[1], local_host="127.0.0.1",
                                       local_port=0, diagnostics_rate_hz=20.0,
                                       # generous watchdogs: two busy shared cores must not trip them
                                       command_timeout_s=0.3, state_timeout_s=0.3)
    settings.update(overrides)
    bridge = Go1Bridge(BridgeConfig(**settings))  # type: ignore[arg-type]
    bridge_node = BridgeNode(bridge, context=context)
    stub = PolicyStub(context)
    executor = make_executor(context, bridge.config.executor)
    executor.add_node(bridge_node)
    executor.add_node(stub)
    stop = threading.Event()
    spinner = threading.Thread(target=spin_until, args=(executor, stop), daemon=True)
    bridge.start()
    spinner.start()

    def teardown() -> None:
        stop.set()
        spinner.join()
        bridge.stop()
        executor.shutdown()
        stub.destroy_node()
        bridge_node.destroy_node()
        context.try_shutdown()
        fake.stop()

    request.addfinalizer(teardown)
    return Stack(fake, bridge, stub)


@pytest.fixture
def stack(request) -> Stack:
    return make_stack(request)


def test_state_topics_and_targets_are_mapped_by_joint_name(request):
    order = tuple(reversed(go1.JOINT_NAMES))  # not the SDK's order: only names can line them up
    s = make_stack(request, joint_names=order)
    w, x, y, z = 0.9, 0.1, -0.2, 0.3
    norm = float(np.linalg.norm([w, x, y, z]))
    s.fake.set_imu((w / norm, x / norm, y / norm, z / norm), (0.1, -0.2, 0.3), (0.5, 0.0, 9.7))
    s.fake.set_remote(RemoteState.with_pressed("A", "L2", lx=0.5, ly=-0.25))
    # earlier messages carry the fake's defaults: wait for the injected IMU reading and remote input
    s.wait_for(lambda: s.stub.joint_states is not None and s.stub.imu is not None and s.stub.joy is not None
               and s.stub.imu.orientation.w != 1.0 and any(s.stub.joy.buttons), "joint states, IMU and joy")

    msg, imu, joy = s.stub.joint_states, s.stub.imu, s.stub.joy
    assert msg is not None and imu is not None and joy is not None
    assert tuple(msg.name) == order
    fake_q = dict(zip(SDK_MOTOR_JOINTS, s.fake.snapshot().q))  # passive and frictional: the legs stay put
    for name, position in zip(msg.name, msg.position):
        assert position == pytest.approx(fake_q[name], abs=1e-5), name
    assert len(msg.velocity) == len(msg.effort) == 12

    assert imu.header.frame_id == s.config.imu_frame_id
    assert (imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w) == pytest.approx(
        (x / norm, y / norm, z / norm, w / norm), abs=1e-6)
    assert (imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z) == pytest.approx((0.1, -0.2, 0.3))
    assert imu.linear_acceleration.z == pytest.approx(9.7)

    assert [REMOTE_BUTTONS[i] for i, b in enumerate(joy.buttons) if b] == ["L2", "A"]
    assert joy.axes[REMOTE_AXES.index("lx")] == 0.5 and joy.axes[REMOTE_AXES.index("ly")] == -0.25

    targets = [fake_q[name] + 0.02 * (i + 1) for i, name in enumerate(order)]  # distinct per joint
    s.stub.targets = targets
    s.stub.request(RobotMode.ACTIVE_STAND)
    s.wait_for(lambda: s.using(RobotMode.ACTIVE_STAND), "stand gains at the fake")
    snapshot = s.fake.snapshot()
    for name, target in zip(order, targets):
        assert snapshot.command_for(name)["q"] == pytest.approx(target, abs=1e-6), name


def test_start_is_never_stiff_then_stand_and_policy_use_their_gains(stack):
    stack.stub.targets = stack.targets(POSE)  # targets flowing, but nothing requested
    stack.wait_for(lambda: stack.fake.snapshot().packets >= 200, "200 commands at the fake robot")
    first: FakeGo1Snapshot = stack.fake.snapshot()
    assert first.max_kp == 0.0
    assert stack.all_motors(lambda c: c["kd"] == 0.0 and c["q"] == np.float32(POS_STOP_F))
    stack.wait_for(lambda: len(stack.stub.modes) > 0, "the first /go1/mode report")
    assert stack.stub.modes[:1] == [RobotMode.PASSIVE]
    stack.activate(RobotMode.ACTIVE_STAND)
    stack.activate(RobotMode.ACTIVE_POLICY)
    # The gains reach the fake over UDP; the mode report comes over ROS and may trail them.
    stack.wait_for(lambda: stack.stub.modes[-1:] == [RobotMode.ACTIVE_POLICY], "/go1/mode to report ACTIVE_POLICY")


def test_stale_targets_end_in_damping_until_acknowledged(stack):
    stack.activate()
    stack.stub.targets = None  # the policy node is alive but stops publishing
    stack.end_in_damping("no fresh joint target")
    assert stack.stub.diagnostic("watchdog")["level"] == "2"
    # Acknowledge, and see the latch clear on /diagnostics before asking again: the mode request topic
    # keeps one sample, so an active request published right behind the acknowledgement replaces it.
    stack.stub.request(RobotMode.DAMPING)
    stack.wait_for(lambda: stack.stub.diagnostic("mode")["latched_fault"] == "", "the acknowledgement on /diagnostics")
    stack.activate()


def test_dead_policy_process_ends_in_damping(request):
    s = make_stack(request)
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    targets = ",".join(repr(v) for v in s.targets(POSE))
    process = subprocess.Popen(
        [sys.executable, str(STUB_PROCESS), "--domain-id", str(DOMAIN_ID), "--mode", str(int(RobotMode.ACTIVE_POLICY)),
         f"--targets={targets}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        s.wait_for(lambda: s.using(RobotMode.ACTIVE_POLICY) or process.poll() is not None,
                   "the policy process to bring the fake robot to policy gains")
        assert process.poll() is None, process.communicate()
        process.kill()
        process.wait(timeout=DEADLINE_S)
        s.end_in_damping("no fresh joint target")
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=DEADLINE_S)


def test_estop_ends_in_damping_while_targets_keep_coming(stack):
    stack.activate()
    stack.stub.estop(True)
    stack.end_in_damping("e-stop")
    stack.stub.estop(False)
    stack.wait_for(lambda: not stack.bridge.safety.estop, "the e-stop release to reach the bridge")
    stack.stub.request(RobotMode.PASSIVE)
    stack.wait_for(lambda: stack.all_motors(lambda c: c["kd"] == 0.0), "the acknowledged PASSIVE command")
    stack.activate()


@pytest.mark.parametrize("joint, value, fault", [
    ("FR_hip_joint", 3.0, "far outside the position limits"),
    ("RL_calf_joint", float("nan"), "invalid joint target"),
    (None, 0.0, "invalid joint target"),  # eleven values instead of twelve
])
def test_out_of_range_and_malformed_targets_end_in_damping(stack, joint, value, fault):
    stack.activate()
    bad = list(stack.targets(POSE))
    if joint is None:
        bad = bad[:11]
    else:
        bad[stack.config.joint_names.index(joint)] = value
    stack.stub.targets = bad
    stack.end_in_damping(fault)
    assert stack.bridge.status().loop.tick_errors == 0
    ticks = stack.bridge.status().loop.ticks
    stack.wait_for(lambda: stack.bridge.status().loop.ticks > ticks + 100, "the bridge loop to keep running")


def test_hot_motor_ends_in_damping_with_a_diagnostic(stack):
    stack.activate()
    stack.fake.set_temperature("RR_calf_joint", stack.config.motor_temperature_limit_c + 5)
    stack.end_in_damping("motor over temperature")
    motors = stack.stub.diagnostic("motors")
    assert motors["level"] == "2" and motors["RR_calf_joint temperature_c"] == str(stack.config.motor_temperature_limit_c + 5)
