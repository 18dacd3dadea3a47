"""The hardware chain without hardware: a fake Go1 on loopback UDP, the Go1 bridge process and the
unchanged policy node process over DDS. The policy stands the robot up and drives it; when the
policy process dies, the bridge's own watchdog leaves the motors damped, never stiff."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip("rclpy")

from dhal.deploy.gains import ModeGains  # noqa: E402
from dhal.deploy.go1.config import BridgeConfig  # noqa: E402
from dhal.deploy.go1.fake_robot import FakeGo1  # noqa: E402
from dhal.deploy.go1.joint_map import SDK_MOTOR_JOINTS  # noqa: E402

DEADLINE_S = 60.0
# What happens is tested here, not how fast: a loaded 2-core machine stalls processes for longer
# than the robot's 25/50 ms watchdogs allow, so both sides' timeouts are relaxed.
LENIENT_BRIDGE = ["--command-timeout-s", "0.5", "--state-timeout-s", "0.5"]
LENIENT_POLICY = ["--safety", "state_timeout_s=1.0", "max_inference_s=0.2", "max_consecutive_overruns=10"]


def wait_for(condition: Callable[[], bool], what: str, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        for p in processes:
            assert p.poll() is None, f"a process exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def gains_at_robot(fake: FakeGo1) -> set[tuple[float, float]]:
    snapshot = fake.snapshot()
    if snapshot.packets == 0:
        return set()
    return {(float(snapshot.command_for(n)["kp"]), float(snapshot.command_for(n)["kd"])) for n in SDK_MOTOR_JOINTS}


def test_policy_node_drives_the_fake_go1_through_the_bridge_and_its_death_damps(exported_policy, tmp_path):
    gains: ModeGains = BridgeConfig().gains
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "MUJOCO_GL": "egl",
           "ROS_DOMAIN_ID": str(random.SystemRandom().randint(161, 200))}
    with FakeGo1() as fake:
        bridge = subprocess.Popen(
            [sys.executable, "-m", "dhal.cli", "deploy", "go1-bridge", "--robot-host", "127.0.0.1",
             "--robot-port", str(fake.address[1]), "--local-host", "127.0.0.1", "--local-port", "0", *LENIENT_BRIDGE],
            env=env, stdout=(tmp_path / "bridge.out").open("w"), stderr=subprocess.STDOUT)
        policy = subprocess.Popen(
            [sys.executable, "-m", "dhal.cli", "deploy", "policy", str(exported_policy), "--no-dry-run",
             "--auto-start-after-s", "0.3", "--log-dir", str(tmp_path / "logs"), *LENIENT_POLICY],
            env=env, stdout=(tmp_path / "policy.out").open("w"), stderr=subprocess.STDOUT)
        try:
            assert gains_at_robot(fake) <= {(0.0, 0.0)}  # passive until asked
            stand = (gains.stand.kp, gains.stand.kd)
            riding = (gains.policy.kp, gains.policy.kd)
            wait_for(lambda: gains_at_robot(fake) == {stand}, "the stand gains at the robot", [bridge, policy])
            wait_for(lambda: gains_at_robot(fake) == {riding}, "the policy gains at the robot", [bridge, policy])
            targets = np.array([fake.snapshot().command_for(n)["q"] for n in SDK_MOTOR_JOINTS])
            assert np.isfinite(targets).all() and np.abs(targets).max() < 3.0
            policy.kill()  # a dead policy process: no more targets
            damping = (0.0, gains.damping.kd)
            wait_for(lambda: gains_at_robot(fake) == {damping}, "damping after the policy died", [bridge])
            bridge.send_signal(signal.SIGINT)
            assert bridge.wait(timeout=DEADLINE_S) == 0
        finally:
            for process in (bridge, policy):
                if process.poll() is None:
                    process.kill()
                    process.wait()
    assert "no fresh joint target" in (tmp_path / "bridge.out").read_text()
