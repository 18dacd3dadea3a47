"""The deploy nodes over real DDS on loopback, in an isolated ROS domain: the MuJoCo robot node
and the unchanged policy node run as separate processes; faults sent over the wire end in damping
at both ends; a malformed message is a logged fault, never a crash; both write readable logs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from dhal.deploy import topics  # noqa: E402
from dhal.deploy.log_read import read_log  # noqa: E402
from dhal.deploy.ros import qos  # noqa: E402
from dhal.deploy.safety_types import FsmState  # noqa: E402
from dhal.deploy.topics import RobotMode  # noqa: E402

DOMAIN = random.Random(os.getpid()).randint(110, 160)
DHAL = [sys.executable, "-m", "dhal.cli"]
# These tests check what happens, not how fast: on a loaded 2-core machine the processes stall
# for hundreds of ms, which the robot's 25/50 ms watchdogs would (rightly) treat as faults.
# Latency and jitter are measured by `dhal bench deploy`, not asserted here.
LENIENT_POLICY = ["--safety", "state_timeout_s=1.0", "max_inference_s=0.2", "max_consecutive_overruns=10"]
LENIENT_SIM = ["--bridge", "command_timeout_s=1.0", "state_timeout_s=1.0"]
RECORD_DEPTH = 1000


def environment() -> dict[str, str]:
    return {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1"}


class Observer:
    """A node in the test process: records /dhal/fsm_state and /go1/mode, publishes what tests send."""

    def __init__(self) -> None:
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool, String, UInt8

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN)
        self.node = rclpy.create_node("dhal_test_observer", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.fsm: list[int] = []
        self.robot_modes: list[int] = []
        # A deep reader history: the tests spin only while they wait, and every transition between
        # two waits must still arrive (with the topics' depth a burst of states kept only the last).
        self.node.create_subscription(UInt8, topics.FSM_STATE.name, lambda m: self.fsm.append(m.data),
                                      qos(topics.FSM_STATE, depth=RECORD_DEPTH))
        self.node.create_subscription(UInt8, topics.ROBOT_MODE.name, lambda m: self.robot_modes.append(m.data),
                                      qos(topics.ROBOT_MODE, depth=RECORD_DEPTH))
        from diagnostic_msgs.msg import DiagnosticArray

        self.diagnostics: dict[str, dict[str, str]] = {}
        self.node.create_subscription(
            DiagnosticArray, topics.DIAGNOSTICS.name,
            lambda m: self.diagnostics.update({st.name: {kv.key: kv.value for kv in st.values} for st in m.status}),
            qos(topics.DIAGNOSTICS))
        self.estop = self.node.create_publisher(Bool, topics.ESTOP.name, qos(topics.ESTOP))
        self.operator = self.node.create_publisher(String, topics.OPERATOR.name, qos(topics.OPERATOR))
        self.joints = self.node.create_publisher(JointState, topics.JOINT_STATES.name, qos(topics.JOINT_STATES))

    def wait_for(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; fsm {self.fsm}, robot {self.robot_modes}"
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.node.destroy_node()
        self.context.try_shutdown()


def start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(DHAL + args, env=environment(), stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    return int(process.returncode)


@pytest.fixture
def rig(exported_policy, tmp_path) -> Iterator[tuple[Observer, dict[str, subprocess.Popen], Path]]:
    logs = tmp_path / "logs"
    processes = {
        "sim": start(["deploy", "sim", "--log-dir", str(logs), *LENIENT_SIM], tmp_path / "sim.out"),
        "policy": start(["deploy", "policy", str(exported_policy), "--no-dry-run", "--auto-start-after-s", "0.3",
                         "--log-dir", str(logs), *LENIENT_POLICY], tmp_path / "policy.out"),
    }
    observer = Observer()
    try:
        yield observer, processes, tmp_path
    finally:
        observer.close()
        for process in processes.values():
            if process.poll() is None:
                process.kill()


def output(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.out").read_text()


def test_policy_node_drives_the_sim_node_then_an_estop_damps_both(rig):
    observer, processes, tmp_path = rig
    observer.wait_for(lambda: FsmState.POLICY in observer.fsm, 60, "the policy to start")
    observer.wait_for(lambda: RobotMode.ACTIVE_POLICY in observer.robot_modes, 10, "the robot to take policy targets")
    timing = {"loop_period_p50_ms", "inference_p99_ms", "state_age_max_ms"}
    observer.wait_for(lambda: timing <= set(observer.diagnostics.get("dhal_policy", {})), 5, "timing diagnostics")
    time.sleep(1.0)  # a second of riding, at 50 Hz
    observer.estop.publish(rclpy_bool(True))
    observer.wait_for(lambda: observer.fsm[-1] == FsmState.DAMPING, 5, "the policy node to damp")
    observer.wait_for(lambda: observer.robot_modes[-1] == RobotMode.DAMPING, 5, "the robot to damp")
    assert stop(processes["policy"]) == 0, output(tmp_path, "policy")
    assert stop(processes["sim"]) == 0, output(tmp_path, "sim")
    policy_log = read_log(next((tmp_path / "logs").glob("dhal_policy_*.mcap")))
    steps = policy_log.steps
    riding = steps.fsm_state == FsmState.POLICY
    assert riding.sum() >= 25 and policy_log.attachments["policy.onnx"]
    assert np.isfinite(steps.action[riding]).all() and steps.observation.shape[1] == 960
    sim_log = read_log(next((tmp_path / "logs").glob("dhal_sim_*.mcap")))
    commands = sim_log.topics[topics.JOINT_TARGETS.name]
    assert len(commands) >= 25 and len(sim_log.topics[topics.SIM_BASE_POSE.name]) > 0
    # Every command is traceable to the state it answers (what `dhal bench deploy` measures).
    from dhal.commands.bench_deploy import measure

    numbers = measure(next((tmp_path / "logs").glob("dhal_policy_*.mcap")), next((tmp_path / "logs").glob("dhal_sim_*.mcap")))
    latency = numbers["state_to_command_latency_ms"]
    assert latency["count"] == len(commands) and 0 < latency["p50"] < 1000


def test_malformed_joint_state_is_a_logged_fault_not_a_crash(rig):
    from sensor_msgs.msg import JointState

    observer, processes, tmp_path = rig
    observer.wait_for(lambda: FsmState.STAND in observer.fsm or FsmState.POLICY in observer.fsm, 60, "standing")
    bad = JointState(name=["FR_hip_joint"] * 12, position=[0.0] * 12, velocity=[0.0] * 12)
    for _ in range(5):
        observer.joints.publish(bad)
        observer.executor.spin_once(timeout_sec=0.01)
    observer.wait_for(lambda: observer.fsm[-1] == FsmState.DAMPING, 5, "damping after a malformed message")
    assert processes["policy"].poll() is None  # still running
    assert stop(processes["policy"]) == 0
    assert "duplicated" in output(tmp_path, "policy") or "do not cover" in output(tmp_path, "policy")


def test_a_dead_robot_side_is_caught_by_the_policy_watchdog(rig):
    observer, processes, tmp_path = rig
    observer.wait_for(lambda: FsmState.STAND in observer.fsm or FsmState.POLICY in observer.fsm, 60, "standing")
    processes["sim"].kill()
    observer.wait_for(lambda: observer.fsm[-1] == FsmState.DAMPING, 5, "damping after the robot side died")
    assert stop(processes["policy"]) == 0
    # Whichever watchdog sees it first: no state (age) or, in POLICY, no action (no state to act on).
    text = output(tmp_path, "policy")
    assert "robot state age" in text or "no policy action" in text


def rclpy_bool(value: bool):
    from std_msgs.msg import Bool

    return Bool(data=value)


def test_operator_requests_from_the_command_line_damp_and_reset(rig):
    observer, processes, tmp_path = rig
    observer.wait_for(lambda: FsmState.STAND in observer.fsm or FsmState.POLICY in observer.fsm, 60, "standing")

    def request(*args: str) -> str:
        done = subprocess.run(DHAL + ["deploy", *args, "--wait-s", "5"], env=environment(),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    sent = request("cmd-vel", "--vx", "1.0", "--yaw-rate", "0.3")
    assert "1 subscriber" in sent and "NOT acknowledged" not in sent, sent
    time.sleep(0.5)  # a few policy steps with the command
    assert "1 subscriber" in request("request", "damp")
    observer.wait_for(lambda: observer.fsm[-1] == FsmState.DAMPING, 10, "damping on request")
    request("request", "reset")
    # PASSIVE, and with --auto-start-after-s straight on to standing up (and, on a slow machine
    # where the request tool takes seconds to return, on to POLICY) again.
    observer.wait_for(lambda: observer.fsm[-1] != FsmState.DAMPING, 10, "leaving damping after the reset")
    last_damping = max(i for i, state in enumerate(observer.fsm) if state == FsmState.DAMPING)
    assert observer.fsm[last_damping + 1] in (FsmState.PASSIVE, FsmState.STAND_UP), observer.fsm  # never to POLICY
    assert stop(processes["policy"]) == 0
    commands = read_log(next((tmp_path / "logs").glob("dhal_policy_*.mcap"))).steps.command
    assert np.allclose(commands[-1], [1.0, 0.0, 0.3])  # held since it was sent


def test_a_request_nobody_hears_says_so():
    from dhal.commands.deploy import RequestConfig, run_request

    said = run_request(RequestConfig("damp", domain_id=DOMAIN + 60, wait_s=0.3))  # a domain with no node
    assert said == "sent damp to 0 subscriber(s)"
