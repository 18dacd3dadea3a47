"""Go1 packet layouts, fixed-point fields and the SDK CRC, against bytes the real SDK produced."""

from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dhal.deploy.go1 import packets
from dhal.deploy.go1.packets import (
    LOW_CMD_LENGTH,
    LOW_STATE_LENGTH,
    MOTOR_MODE_SERVO,
    NUM_MOTORS,
    LowState,
    MotorCommands,
    PacketError,
    pack_low_cmd,
    pack_low_state,
    sdk_crc32,
    unpack_low_cmd,
    unpack_low_state,
)
from dhal.deploy.go1.remote import REMOTE_AXES, REMOTE_BUTTONS, RemoteState, decode_remote, encode_remote

# Sent by unitree_legged_sdk 3.8.20231105 (PyPI wheel, robot_interface.UDP.SetSend/Send on loopback)
# for SDK_GOLDEN_INPUTS below; the other 8 motor slots as InitCmdData leaves them.
SDK_GOLDEN_LOW_CMD = bytes.fromhex(
    "feefff000000000000000000000000000000000000000aae47e13d000000bf8001000510000000000000000000000000"
    "000acdcc4c3e000000bf8001200511000000000000000000000000000a9a99993e000000bf8001400513000000000000"
    "000000000000000acdcccc3e000000bf8001600514000000000000000000000000000a0000003f000000bf8001800516"
    "000000000000000000000000000a9a99193f000000bf8001a00518000000000000000000000000000a3333333f000000"
    "bf8001c00519000000000000000000000000000acdcc4c3f000000bf8001e0051b000000000000000000000000000a66"
    "66663f000000bf800100061c000000000000000000000000000a0000803f000000bf800120061e000000000000000000"
    "000000000acdcc8c3f000000bf8001400620000000000000000000000000000a9a99993f000000bf8001600621000000"
    "000000000000000000000ab9d2ff4e00007a460000000000000000000000000000000000000ab9d2ff4e00007a460000"
    "000000000000000000000000000000000ab9d2ff4e00007a460000000000000000000000000000000000000ab9d2ff4e"
    "00007a460000000000000000000000000000000000000ab9d2ff4e00007a460000000000000000000000000000000000"
    "000ab9d2ff4e00007a460000000000000000000000000000000000000ab9d2ff4e00007a460000000000000000000000"
    "000000000000000ab9d2ff4e00007a460000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000008b41a116"
)


def sdk_golden_inputs() -> MotorCommands:
    motors = np.arange(NUM_MOTORS)
    q = 0.1 * (motors + 1)
    q[0] = 0.11
    return MotorCommands(mode=np.full(NUM_MOTORS, MOTOR_MODE_SERVO, dtype=np.uint8), q=q, dq=np.full(NUM_MOTORS, -0.5),
                         tau=np.full(NUM_MOTORS, 1.5), kp=40.0 + motors, kd=1.0 + motors / 10)


def reference_crc(packet: bytes) -> int:
    """The SDK's crc32 written out as its bit loop (free-dog-sdk ucl/common.py genCrc)."""
    crc = 0xFFFFFFFF
    words = (len(packet) >> 2) - 1
    for word in struct.unpack(f"<{words}I", packet[: words * 4]):
        for bit in range(32):
            top = (crc >> 31) & 1
            crc = (crc << 1) & 0xFFFFFFFF
            if top ^ ((word >> (31 - bit)) & 1):
                crc ^= 0x04C11DB7
    return crc


def test_wire_sizes_match_the_sdk_lengths():
    assert packets.LOW_CMD_DTYPE.itemsize == LOW_CMD_LENGTH == 614
    assert packets.LOW_STATE_DTYPE.itemsize == LOW_STATE_LENGTH == 807
    assert packets.MOTOR_CMD_DTYPE.itemsize == 27 and packets.MOTOR_STATE_DTYPE.itemsize == 32


def test_low_cmd_is_byte_identical_to_the_sdks():
    assert pack_low_cmd(sdk_golden_inputs()) == SDK_GOLDEN_LOW_CMD


def test_crc_of_the_sdk_packet_matches_the_bit_loop_and_the_trailer():
    trailer = int.from_bytes(SDK_GOLDEN_LOW_CMD[-4:], "little")
    assert sdk_crc32(SDK_GOLDEN_LOW_CMD) == reference_crc(SDK_GOLDEN_LOW_CMD) == trailer


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=LOW_CMD_LENGTH, max_size=LOW_CMD_LENGTH) | st.binary(min_size=8, max_size=64))
def test_fast_crc_equals_the_bit_loop(data):
    assert sdk_crc32(data) == reference_crc(data)


def test_decoding_the_sdk_packet_recovers_the_commands_up_to_fixed_point():
    sent = sdk_golden_inputs()
    got = unpack_low_cmd(SDK_GOLDEN_LOW_CMD)
    assert got.level_flag == packets.LOWLEVEL
    np.testing.assert_array_equal(got.commands.mode, sent.mode)
    np.testing.assert_allclose(got.commands.q, sent.q, rtol=1e-6)
    np.testing.assert_array_equal(got.commands.tau, sent.tau)  # 1.5 * 256 is exact
    np.testing.assert_array_equal(got.commands.kp, sent.kp)  # integers are multiples of 1/32
    # Kd has a 1/16 step and the SDK truncates: 1.1 -> 17/16, 1.3 -> 20/16.
    np.testing.assert_array_equal(got.commands.kd, np.trunc(np.float32(sent.kd) * np.float32(16)) / 16)
    assert got.commands.kd[1] == 17 / 16


def test_any_corrupted_byte_or_wrong_length_is_rejected():
    for index in (0, 30, 300, LOW_CMD_LENGTH - 10, LOW_CMD_LENGTH - 1):
        corrupted = bytearray(SDK_GOLDEN_LOW_CMD)
        corrupted[index] ^= 0x40
        with pytest.raises(PacketError, match="CRC"):
            unpack_low_cmd(bytes(corrupted))
    with pytest.raises(PacketError, match="614 bytes"):
        unpack_low_cmd(SDK_GOLDEN_LOW_CMD[:-1])
    with pytest.raises(PacketError, match="807 bytes"):
        unpack_low_state(SDK_GOLDEN_LOW_CMD)


def test_values_that_do_not_fit_their_fields_are_errors():
    commands = sdk_golden_inputs()
    with pytest.raises(PacketError, match="Kp"):
        pack_low_cmd(MotorCommands(**{**vars(commands), "kp": np.full(NUM_MOTORS, 5000.0)}))
    with pytest.raises(PacketError, match="tau"):
        pack_low_cmd(MotorCommands(**{**vars(commands), "tau": np.full(NUM_MOTORS, np.nan)}))
    with pytest.raises(PacketError, match="12 values"):
        pack_low_cmd(MotorCommands(**{**vars(commands), "q": np.zeros(11)}))


def test_low_state_round_trip():
    rng = np.random.default_rng(3)
    state = LowState(
        tick=123456, quaternion_wxyz=(0.9, 0.1, -0.2, 0.3), gyroscope=(0.5, -0.25, 1.0), accelerometer=(0.1, 0.2, 9.8),
        rpy=(0.01, 0.02, 0.03), motor_mode=np.full(NUM_MOTORS, MOTOR_MODE_SERVO, dtype=np.uint8),
        q=rng.uniform(-2, 2, NUM_MOTORS), dq=rng.uniform(-10, 10, NUM_MOTORS), tau_est=rng.uniform(-30, 30, NUM_MOTORS),
        temperature=rng.integers(20, 80, NUM_MOTORS).astype(np.int8), foot_force=(1, 2, 3, 4),
        wireless_remote=encode_remote(RemoteState.with_pressed("A", lx=0.5)),
    )
    packet = pack_low_state(state)
    assert len(packet) == LOW_STATE_LENGTH
    assert int.from_bytes(packet[-4:], "little") == reference_crc(packet)
    back = unpack_low_state(packet)
    assert back.tick == state.tick and back.foot_force == state.foot_force
    np.testing.assert_allclose(back.quaternion_wxyz, state.quaternion_wxyz, rtol=1e-6)
    np.testing.assert_allclose(back.q, state.q, rtol=1e-6)
    np.testing.assert_allclose(back.tau_est, state.tau_est, atol=1 / 256)
    np.testing.assert_array_equal(back.temperature, state.temperature)
    assert decode_remote(back.wireless_remote).pressed("A")


def test_remote_bits_and_floats_follow_the_sdk_struct():
    raw = encode_remote(RemoteState.with_pressed("R1", "A", "left", lx=0.5, ly=-1.0))
    assert int.from_bytes(raw[2:4], "little") == (1 << 0) | (1 << 8) | (1 << 15)
    assert struct.unpack("<5f", raw[4:24]) == (0.5, 0.0, 0.0, 0.0, -1.0)
    decoded = decode_remote(raw)
    assert [b for b, pressed in zip(REMOTE_BUTTONS, decoded.buttons) if pressed] == ["R1", "A", "left"]
    assert decoded.axis("ly") == -1.0 and len(decoded.axes) == len(REMOTE_AXES)
    with pytest.raises(KeyError, match="Z"):
        RemoteState.with_pressed("Z")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sdk_binding_decodes_our_low_state_and_sends_our_low_cmd():
    """Only where the optional `unitree-legged-sdk` wheel (cp311, x86_64) is installed."""
    robot_interface = pytest.importorskip("unitree_legged_sdk.robot_interface")
    robot = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    robot.bind(("127.0.0.1", 0))
    robot.settimeout(2.0)
    sdk_port = _free_udp_port()
    udp = robot_interface.UDP(packets.LOWLEVEL, sdk_port, "127.0.0.1", robot.getsockname()[1])
    try:
        cmd = robot_interface.LowCmd()
        udp.InitCmdData(cmd)
        inputs = sdk_golden_inputs()
        for i in range(NUM_MOTORS):
            motor = cmd.motorCmd[i]
            motor.mode, motor.q, motor.dq = int(inputs.mode[i]), float(inputs.q[i]), float(inputs.dq[i])
            motor.tau, motor.Kp, motor.Kd = float(inputs.tau[i]), float(inputs.kp[i]), float(inputs.kd[i])
            cmd.motorCmd[i] = motor
        udp.SetSend(cmd)
        udp.Send()
        assert robot.recvfrom(2048)[0] == pack_low_cmd(inputs)

        state = LowState(tick=987654, q=np.linspace(-1, 1, NUM_MOTORS), tau_est=np.linspace(-20, 20, NUM_MOTORS),
                         motor_mode=np.full(NUM_MOTORS, MOTOR_MODE_SERVO, dtype=np.uint8))
        robot.sendto(pack_low_state(state), ("127.0.0.1", sdk_port))
        decoded = robot_interface.LowState()
        deadline = time.monotonic() + 5.0
        while decoded.tick != state.tick and time.monotonic() < deadline:
            udp.Recv()
            udp.GetRecv(decoded)
        assert decoded.tick == state.tick
        np.testing.assert_allclose([decoded.motorState[i].q for i in range(NUM_MOTORS)], state.q, rtol=1e-6)
        np.testing.assert_allclose([decoded.motorState[i].tauEst for i in range(NUM_MOTORS)],
                                   unpack_low_state(pack_low_state(state)).tau_est)
    finally:
        robot.close()
        del udp
