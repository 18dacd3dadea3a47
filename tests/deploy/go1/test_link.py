"""The fake Go1 and the bridge's UDP link on loopback, without ROS."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import numpy as np
import pytest

from dhal.deploy.go1.bridge import Go1Bridge
from dhal.deploy.go1.config import BridgeConfig
from dhal.deploy.go1.fake_robot import FakeGo1
from dhal.deploy.go1.joint_map import SDK_MOTOR_JOINTS
from dhal.deploy.go1.packets import (
    LOW_STATE_LENGTH,
    MOTOR_MODE_SERVO,
    NUM_MOTORS,
    POS_STOP_F,
    LowState,
    MotorCommands,
    pack_low_cmd,
    pack_low_state,
    unpack_low_state,
)
from dhal.deploy.go1.transport import UdpLink
from dhal.deploy.topics import RobotMode
from dhal.envs.robots import go1

DEADLINE_S = 10.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE_S} s waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def fake():
    with FakeGo1() as robot:
        yield robot


@pytest.fixture
def client():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(DEADLINE_S)
    yield sock
    sock.close()


def servo(q: np.ndarray, kp: float, kd: float) -> MotorCommands:
    return MotorCommands(mode=np.full(NUM_MOTORS, MOTOR_MODE_SERVO, dtype=np.uint8), q=q, dq=np.zeros(NUM_MOTORS),
                         tau=np.zeros(NUM_MOTORS), kp=np.full(NUM_MOTORS, kp), kd=np.full(NUM_MOTORS, kd))


def test_fake_answers_each_valid_command_and_ignores_bad_crc(fake, client):
    packet = pack_low_cmd(MotorCommands.zero_torque())
    client.sendto(packet, fake.address)
    state = unpack_low_state(client.recvfrom(2048)[0])  # raises on a bad CRC
    assert state.tick > 0 and (state.motor_mode == MOTOR_MODE_SERVO).all()
    corrupted = bytearray(packet)
    corrupted[40] ^= 1
    client.sendto(bytes(corrupted), fake.address)
    client.sendto(packet[:100], fake.address)
    wait_for(lambda: fake.snapshot().bad_crc == 1 and fake.snapshot().bad_length == 1, "the bad packets to be counted")
    client.sendto(packet, fake.address)
    second = unpack_low_state(client.recvfrom(2048)[0])  # the next reply is for the good packet
    assert second.tick > state.tick and fake.snapshot().packets == 2


def test_fake_joints_track_a_pd_target_and_report_torque(fake, client):
    start = fake.snapshot().q
    target = start + 0.2
    for _ in range(500):  # one simulated second
        client.sendto(pack_low_cmd(servo(target, kp=40.0, kd=1.0)), fake.address)
        state = unpack_low_state(client.recvfrom(2048)[0])
    np.testing.assert_allclose(state.q, target, atol=0.01)
    hold = 40.0 * (target - state.q) - 1.0 * state.dq  # the motor's own PD torque at the last step
    np.testing.assert_allclose(state.tau_est, hold, atol=0.05)
    assert fake.snapshot().command_for("RL_calf_joint")["kp"] == 40.0


def test_link_keeps_the_newest_valid_state_and_counts_the_rest(client):
    link = UdpLink("127.0.0.1", client.getsockname()[1], "127.0.0.1", 0)
    try:
        good = pack_low_state(LowState(tick=1))
        newer = pack_low_state(LowState(tick=2))
        corrupted = bytearray(pack_low_state(LowState(tick=3)))
        corrupted[500] ^= 0x10
        for datagram in (good, newer, bytes(corrupted), newer[:-1]):
            client.sendto(datagram, link.local_address)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.sendto(good, link.local_address)
        latest: list[LowState] = []

        def all_counted() -> bool:
            state = link.receive_latest()
            if state is not None:
                latest.append(state)
            c = link.counters
            return c.received == 2 and c.crc_errors == 1 and c.wrong_length == 1 and c.foreign == 1

        wait_for(all_counted, "every datagram to be classified")
        assert latest[-1].tick == 2
        assert len(good) == LOW_STATE_LENGTH
    finally:
        link.close()


def test_bridge_starts_passive_tracks_a_stand_and_leaves_damping(fake):
    config = BridgeConfig(robot_host="127.0.0.1", robot_port=fake.address[1], local_host="127.0.0.1", local_port=0,
                          command_timeout_s=0.5)
    bridge = Go1Bridge(config)
    bridge.start()
    try:
        wait_for(lambda: fake.snapshot().packets >= 50, "50 commands at the fake")
        assert fake.snapshot().max_kp == 0.0
        stand = np.array(go1.DEFAULT_POSE) + 0.1
        bridge.request_mode(RobotMode.ACTIVE_STAND)

        def standing() -> bool:
            bridge.submit_target(stand)
            time.sleep(0.01)
            return bool(np.allclose(fake.snapshot().q, stand, atol=0.02))

        wait_for(standing, "the fake's joints to reach the stand targets")
        assert bridge.mode == RobotMode.ACTIVE_STAND
        assert fake.snapshot().command_for("FL_thigh_joint")["kp"] == config.gains.stand.kp
        assert bridge.latest_state() is not None and bridge.status().link.crc_errors == 0
    finally:
        bridge.stop()

    def damped() -> bool:
        commands = [fake.snapshot().command_for(name) for name in SDK_MOTOR_JOINTS]
        return all(c["kp"] == 0.0 and c["kd"] == config.gains.damping.kd and c["q"] == np.float32(POS_STOP_F)
                   for c in commands)

    wait_for(damped, "the bridge's exit packets to leave every motor damped")
