"""`FakeGo1`: a loopback stand-in for the Go1's leg MCU, for tests and bench checks without a robot.

It binds a UDP port on 127.0.0.1, decodes every LowCmd (bad CRC or wrong length: ignored and
counted), advances 12 independent joints by one command period with the motor's PD law and a
simple inertia + viscous friction model, and answers each command with a LowState (correct CRC)
to the sender, as the real MCU does. Tests read what it received (`snapshot()`) and can inject
faults: hot motors, motors reporting another mode, a remote input, an IMU reading, or silence.

No gravity and no contacts: the legs swing freely, as on a robot hung from a stand.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from dhal.deploy.go1.joint_map import SDK_MOTOR_JOINTS, JointMap
from dhal.deploy.go1.packets import (
    LOW_CMD_LENGTH,
    MOTOR_MODE_STOP,
    NUM_MOTORS,
    POS_STOP_F,
    VEL_STOP_F,
    LowState,
    MotorCommands,
    PacketError,
    pack_low_state,
    unpack_low_cmd,
)
from dhal.deploy.go1.remote import RemoteState, encode_remote
from dhal.envs.robots import go1

# Joint-side inertia (rotor through the 6.33:1 gearbox plus the leg) and viscous friction: rough
# Go1 magnitudes, enough for PD tracking to look like a real joint.
JOINT_INERTIA = 0.03  # kg m^2
JOINT_FRICTION = 0.3  # N m s / rad
SUBSTEPS = 4
STANDING_GRAVITY = (0.0, 0.0, 9.81)
# |q| above this (or |dq| above VEL_STOP_F's) is the SDK's "term off" sentinel, not a target.
_POS_SENTINEL = POS_STOP_F / 2
_VEL_SENTINEL = VEL_STOP_F / 2


@dataclass(frozen=True)
class FakeGo1Snapshot:
    packets: int  # valid LowCmds received
    bad_crc: int
    bad_length: int
    last_command: MotorCommands | None  # SDK motor order
    max_kp: float  # the largest Kp in any command received so far
    q: np.ndarray  # SDK motor order
    dq: np.ndarray

    def command_for(self, joint_name: str) -> dict[str, float]:
        """The last command of one joint, looked up by name: mode, q, dq, tau, kp, kd."""
        if self.last_command is None:
            raise LookupError("the fake Go1 has not received a valid LowCmd yet")
        slot = SDK_MOTOR_JOINTS.index(joint_name)
        c = self.last_command
        return {"mode": int(c.mode[slot]), "q": float(c.q[slot]), "dq": float(c.dq[slot]),
                "tau": float(c.tau[slot]), "kp": float(c.kp[slot]), "kd": float(c.kd[slot])}


class FakeGo1:
    def __init__(self, initial_pose: Sequence[float] = go1.DEFAULT_POSE, host: str = "127.0.0.1", port: int = 0,
                 dt: float = 0.002, temperature_c: int = 35):
        """`initial_pose` is in go1.JOINT_NAMES order; `dt` is the time one LowCmd advances."""
        self._map = JointMap(go1.JOINT_NAMES)
        self._q = self._map.to_sdk(np.asarray(initial_pose, dtype=np.float64)).copy()
        self._dq = np.zeros(NUM_MOTORS)
        self._lower = self._map.to_sdk(np.array(go1.JOINT_LOWER))
        self._upper = self._map.to_sdk(np.array(go1.JOINT_UPPER))
        self._torque_limits = self._map.to_sdk(np.array(go1.TORQUE_LIMITS))
        self._dt = dt
        self._temperature = np.full(NUM_MOTORS, temperature_c, dtype=np.int8)
        self._reported_mode: dict[int, int] = {}
        self._imu = LowState(accelerometer=STANDING_GRAVITY)
        self._remote = encode_remote(RemoteState())
        self._silent = False
        self._tick_us = 0
        self._packets = self._bad_crc = self._bad_length = 0
        self._last_command: MotorCommands | None = None
        self._max_kp = 0.0
        self._lock = threading.Lock()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((host, port))
        self._socket.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-go1", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._socket.getsockname()
        return host, port

    def start(self) -> FakeGo1:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._socket.close()

    def __enter__(self) -> FakeGo1:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- test controls ----------------------------------------------------------------------------------
    def snapshot(self) -> FakeGo1Snapshot:
        with self._lock:
            return FakeGo1Snapshot(self._packets, self._bad_crc, self._bad_length, self._last_command,
                                   self._max_kp, self._q.copy(), self._dq.copy())

    def set_temperature(self, joint_name: str, celsius: int) -> None:
        with self._lock:
            self._temperature[SDK_MOTOR_JOINTS.index(joint_name)] = celsius

    def set_reported_mode(self, joint_name: str, mode: int | None) -> None:
        """Make one motor report `mode` whatever it is commanded (None: report the commanded mode)."""
        with self._lock:
            slot = SDK_MOTOR_JOINTS.index(joint_name)
            if mode is None:
                self._reported_mode.pop(slot, None)
            else:
                self._reported_mode[slot] = mode

    def set_imu(self, quaternion_wxyz: tuple[float, float, float, float], gyroscope: tuple[float, float, float],
                accelerometer: tuple[float, float, float]) -> None:
        with self._lock:
            self._imu = replace(self._imu, quaternion_wxyz=quaternion_wxyz, gyroscope=gyroscope,
                                accelerometer=accelerometer)

    def set_remote(self, remote: RemoteState) -> None:
        with self._lock:
            self._remote = encode_remote(remote)

    def set_silent(self, silent: bool) -> None:
        """Stop (or resume) answering commands, like a robot whose cable was pulled."""
        with self._lock:
            self._silent = silent

    # ---- the server ---------------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self._socket.recvfrom(2 * LOW_CMD_LENGTH)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            reply = self._handle(data)
            if reply is not None:
                try:
                    self._socket.sendto(reply, sender)
                except OSError:
                    pass  # the bridge went away; keep serving until stopped

    def _handle(self, data: bytes) -> bytes | None:
        with self._lock:
            if len(data) != LOW_CMD_LENGTH:
                self._bad_length += 1
                return None
            try:
                command = unpack_low_cmd(data).commands
            except PacketError:
                self._bad_crc += 1
                return None
            self._packets += 1
            self._last_command = command
            self._max_kp = max(self._max_kp, float(command.kp.max()))
            tau = self._step(command)
            if self._silent:
                return None
            modes = command.mode.copy()
            for slot, mode in self._reported_mode.items():
                modes[slot] = mode
            self._tick_us += int(self._dt * 1e6)
            state = replace(self._imu, tick=self._tick_us, motor_mode=modes, q=self._q.copy(), dq=self._dq.copy(),
                            tau_est=tau, temperature=self._temperature.copy(), wireless_remote=self._remote)
        return pack_low_state(state)

    def _step(self, command: MotorCommands) -> np.ndarray:
        """Advance the joints by dt under the motor PD law; returns the applied torque."""
        position_on = np.abs(command.q) < _POS_SENTINEL
        velocity_on = np.abs(command.dq) < _VEL_SENTINEL
        servo = command.mode != MOTOR_MODE_STOP
        h = self._dt / SUBSTEPS
        for _ in range(SUBSTEPS):
            tau = (np.where(position_on, command.kp * (command.q - self._q), 0.0)
                   + np.where(velocity_on, command.kd * (command.dq - self._dq), 0.0) + command.tau)
            tau = np.where(servo, np.clip(tau, -self._torque_limits, self._torque_limits), 0.0)
            self._dq += h * (tau - JOINT_FRICTION * self._dq) / JOINT_INERTIA
            self._q += h * self._dq
            at_stop = (self._q < self._lower) | (self._q > self._upper)
            self._q = np.clip(self._q, self._lower, self._upper)
            self._dq[at_stop] = 0.0
        return tau
