"""Go1 low-level UDP packets (unitree_legged_sdk 3.8, go1 branch): LowCmd out, LowState in.

The SDK's public header `include/unitree_legged_sdk/comm.h` declares `LowCmd`/`LowState` as packed
C structs, but says that the bytes on the wire are "compressed" (`LOW_CMD_LENGTH` = 614 and
`LOW_STATE_LENGTH` = 807, shorter than the structs). The compressed ("refined") layouts below were
read off the SDK's own conversion routines, `UNITREE_LEGGED_SDK::refineCmd` and `refineState`, in
the PyPI build of the binding (`unitree-legged-sdk` 3.8.20231105, `robot_interface` module), and
checked against packets that binding sends and decodes on loopback (see tests/deploy/go1). Where
they differ from the C structs:

* MotorCmd (27 bytes): mode u8, q f32, dq f32, tau i16 = trunc(tau * 256), Kp u16 = trunc(Kp * 32),
  Kd u16 = trunc(Kd * 16), reserve 3 x u32.
* MotorState (32 bytes): mode u8, q f32, dq f32, ddq i16, tauEst i16 = tauEst * 256, q_raw f32,
  dq_raw f32, ddq_raw i16, temperature i8, reserve 2 x u32.
* BmsState (24 bytes): cell voltages are u8 in units of 32 mV.

The rest follows comm.h: head (0xFE 0xEF), levelFlag (0xFF = low level), frameReserve, SN[2],
version[2], bandWidth, IMU (quaternion w,x,y,z; gyroscope; accelerometer; rpy; temperature), the 20
motor slots (12 used, SDK order FR, FL, RR, RL x hip, thigh, calf), BMS, footForce[4],
footForceEst[4], tick, wirelessRemote[40], reserve, crc. All little-endian.

CRC: the SDK's `crc32(uint32_t* words, len)` is a plain MSB-first CRC-32 (polynomial 0x04C11DB7,
initial value 0xFFFFFFFF, no reflection, no final xor) over the packet read as little-endian
uint32 words, for (length >> 2) - 1 words; the result is stored little-endian in the last 4
bytes. The bit loop matches `genCrc` in free-dog-sdk (Bin4ry/free-dog-sdk, `ucl/common.py`); the
word count (152 for LowCmd) comes from `refineCmd`. It is computed here through zlib (see
`sdk_crc32`) because a Python bit loop costs about a millisecond per packet.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

HEAD = bytes((0xFE, 0xEF))
LOWLEVEL = 0xFF
NUM_MOTOR_SLOTS = 20
NUM_MOTORS = 12
LOW_CMD_LENGTH = 614
LOW_STATE_LENGTH = 807
REMOTE_LENGTH = 40

# comm.h sentinels: a motor ignores its position (velocity) term when q (dq) is set to these.
POS_STOP_F = 2.146e9
VEL_STOP_F = 16000.0

# Motor modes: 0x0A is closed-loop servo (FOC) with the given q, dq, tau, Kp, Kd; 0x00 stops the
# motor. Motors report 0x08 when their own protection has taken over.
MOTOR_MODE_STOP = 0x00
MOTOR_MODE_SERVO = 0x0A

# Fixed-point scales of the compressed fields (refineCmd / refineState).
TAU_SCALE = 256.0
KP_SCALE = 32.0
KD_SCALE = 16.0
TAU_EST_SCALE = 256.0
CELL_VOLTAGE_MV_PER_UNIT = 32

_HEADER_FIELDS = [
    ("head", "u1", (2,)),
    ("level_flag", "u1"),
    ("frame_reserve", "u1"),
    ("sn", "<u4", (2,)),
    ("version", "<u4", (2,)),
    ("band_width", "<u2"),
]
MOTOR_CMD_DTYPE = np.dtype([
    ("mode", "u1"),
    ("q", "<f4"),
    ("dq", "<f4"),
    ("tau", "<i2"),
    ("kp", "<u2"),
    ("kd", "<u2"),
    ("reserve", "<u4", (3,)),
])
LOW_CMD_DTYPE = np.dtype(_HEADER_FIELDS + [
    ("motor_cmd", MOTOR_CMD_DTYPE, (NUM_MOTOR_SLOTS,)),
    ("bms_off", "u1"),
    ("bms_reserve", "u1", (3,)),
    ("wireless_remote", "u1", (REMOTE_LENGTH,)),
    ("reserve", "<u4"),
    ("crc", "<u4"),
])
IMU_DTYPE = np.dtype([
    ("quaternion", "<f4", (4,)),
    ("gyroscope", "<f4", (3,)),
    ("accelerometer", "<f4", (3,)),
    ("rpy", "<f4", (3,)),
    ("temperature", "i1"),
])
MOTOR_STATE_DTYPE = np.dtype([
    ("mode", "u1"),
    ("q", "<f4"),
    ("dq", "<f4"),
    ("ddq", "<i2"),
    ("tau_est", "<i2"),
    ("q_raw", "<f4"),
    ("dq_raw", "<f4"),
    ("ddq_raw", "<i2"),
    ("temperature", "i1"),
    ("reserve", "<u4", (2,)),
])
BMS_STATE_DTYPE = np.dtype([
    ("version_h", "u1"),
    ("version_l", "u1"),
    ("bms_status", "u1"),
    ("soc", "u1"),
    ("current_ma", "<i4"),
    ("cycle", "<u2"),
    ("bq_ntc", "i1", (2,)),
    ("mcu_ntc", "i1", (2,)),
    ("cell_voltage", "u1", (10,)),
])
LOW_STATE_DTYPE = np.dtype(_HEADER_FIELDS + [
    ("imu", IMU_DTYPE),
    ("motor_state", MOTOR_STATE_DTYPE, (NUM_MOTOR_SLOTS,)),
    ("bms", BMS_STATE_DTYPE),
    ("foot_force", "<i2", (4,)),
    ("foot_force_est", "<i2", (4,)),
    ("tick", "<u4"),
    ("wireless_remote", "u1", (REMOTE_LENGTH,)),
    ("reserve", "<u4"),
    ("crc", "<u4"),
])
assert LOW_CMD_DTYPE.itemsize == LOW_CMD_LENGTH and LOW_STATE_DTYPE.itemsize == LOW_STATE_LENGTH


class PacketError(ValueError):
    """A datagram that is not a valid packet, or values that do not fit the packet's fields."""


# ---- CRC ----------------------------------------------------------------------------------------
_BIT_REVERSED_BYTES = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _reflect32(value: int) -> int:
    return int(f"{value:032b}"[::-1], 2)


def sdk_crc32(packet: bytes) -> int:
    """The SDK's CRC of a whole packet: over its first (len >> 2) - 1 little-endian words.

    The SDK's MSB-first loop over uint32 words is CRC-32/MPEG-2 of the words' big-endian bytes.
    zlib computes the reflected CRC-32; feeding it bit-reversed bytes and reflecting the result
    gives the unreflected register (CRC-32/BZIP2), and MPEG-2 is BZIP2 without its final xor.
    """
    words = (len(packet) >> 2) - 1
    big_endian = np.frombuffer(packet, dtype="<u4", count=words).byteswap().tobytes()
    return _reflect32(zlib.crc32(big_endian.translate(_BIT_REVERSED_BYTES))) ^ 0xFFFFFFFF


def _checked_record(data: bytes, dtype: np.dtype, name: str) -> np.ndarray:
    if len(data) != dtype.itemsize:
        raise PacketError(f"{name} must be {dtype.itemsize} bytes, got {len(data)}")
    record = np.frombuffer(data, dtype=dtype)[0]
    expected = sdk_crc32(data)
    if int(record["crc"]) != expected:
        raise PacketError(f"{name} CRC mismatch: packet says {int(record['crc']):#010x}, bytes give {expected:#010x}")
    return record


def _fixed_point(values: np.ndarray, scale: float, kind: str, name: str) -> np.ndarray:
    """trunc(value * scale) in float32 arithmetic, as the SDK converts; out-of-range is an error."""
    info = np.iinfo(kind)
    scaled = np.trunc(np.asarray(values, dtype=np.float32) * np.float32(scale))
    bad = ~np.isfinite(scaled) | (scaled < info.min) | (scaled > info.max)
    if bad.any():
        raise PacketError(f"{name} {np.asarray(values)[bad].tolist()} does not fit {kind} at scale {scale}")
    return scaled.astype(kind)


def _motor_array(values: np.ndarray | list[float] | tuple[float, ...], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (NUM_MOTORS,):
        raise PacketError(f"{name} needs {NUM_MOTORS} values in SDK motor order, got shape {array.shape}")
    return array


# ---- LowCmd ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MotorCommands:
    """One command for the 12 motors, each field in SDK motor order (FR, FL, RR, RL x hip, thigh, calf)."""

    mode: np.ndarray  # uint8 motor modes
    q: np.ndarray
    dq: np.ndarray
    tau: np.ndarray
    kp: np.ndarray
    kd: np.ndarray

    @classmethod
    def zero_torque(cls) -> MotorCommands:
        """What the SDK's InitCmdData sends: servo mode, position and velocity terms off, no gains."""
        return cls(
            mode=np.full(NUM_MOTORS, MOTOR_MODE_SERVO, dtype=np.uint8),
            q=np.full(NUM_MOTORS, POS_STOP_F),
            dq=np.full(NUM_MOTORS, VEL_STOP_F),
            tau=np.zeros(NUM_MOTORS),
            kp=np.zeros(NUM_MOTORS),
            kd=np.zeros(NUM_MOTORS),
        )


def pack_low_cmd(commands: MotorCommands, wireless_remote: bytes = bytes(REMOTE_LENGTH)) -> bytes:
    """The 614 bytes the SDK would send for these commands (unused slots as InitCmdData leaves them)."""
    record = np.zeros((), dtype=LOW_CMD_DTYPE)
    record["head"] = np.frombuffer(HEAD, dtype=np.uint8)
    record["level_flag"] = LOWLEVEL
    motors = record["motor_cmd"]
    motors["mode"] = MOTOR_MODE_SERVO
    motors["q"] = np.float32(POS_STOP_F)
    motors["dq"] = np.float32(VEL_STOP_F)
    mode = np.asarray(commands.mode)
    if mode.shape != (NUM_MOTORS,) or mode.min() < 0 or mode.max() > 0xFF:
        raise PacketError(f"motor modes must be {NUM_MOTORS} bytes, got {mode.tolist()}")
    kp = _motor_array(commands.kp, "Kp")
    kd = _motor_array(commands.kd, "Kd")
    if (kp < 0).any() or (kd < 0).any():
        raise PacketError(f"gains must be non-negative, got Kp {kp.tolist()} Kd {kd.tolist()}")
    motors["mode"][:NUM_MOTORS] = mode
    motors["q"][:NUM_MOTORS] = _motor_array(commands.q, "q")
    motors["dq"][:NUM_MOTORS] = _motor_array(commands.dq, "dq")
    motors["tau"][:NUM_MOTORS] = _fixed_point(_motor_array(commands.tau, "tau"), TAU_SCALE, "int16", "tau")
    motors["kp"][:NUM_MOTORS] = _fixed_point(kp, KP_SCALE, "uint16", "Kp")
    motors["kd"][:NUM_MOTORS] = _fixed_point(kd, KD_SCALE, "uint16", "Kd")
    if len(wireless_remote) != REMOTE_LENGTH:
        raise PacketError(f"wirelessRemote must be {REMOTE_LENGTH} bytes, got {len(wireless_remote)}")
    record["wireless_remote"] = np.frombuffer(wireless_remote, dtype=np.uint8)
    packet = bytearray(record.tobytes())
    packet[-4:] = sdk_crc32(bytes(packet)).to_bytes(4, "little")
    return bytes(packet)


@dataclass(frozen=True)
class ReceivedCommand:
    """A LowCmd as a robot decodes it: the 12 used motors in SDK order, gains already rescaled."""

    level_flag: int
    commands: MotorCommands


def unpack_low_cmd(data: bytes) -> ReceivedCommand:
    record = _checked_record(data, LOW_CMD_DTYPE, "LowCmd")
    motors = record["motor_cmd"][:NUM_MOTORS]
    return ReceivedCommand(
        level_flag=int(record["level_flag"]),
        commands=MotorCommands(
            mode=motors["mode"].copy(),
            q=motors["q"].astype(np.float64),
            dq=motors["dq"].astype(np.float64),
            tau=motors["tau"].astype(np.float64) / TAU_SCALE,
            kp=motors["kp"].astype(np.float64) / KP_SCALE,
            kd=motors["kd"].astype(np.float64) / KD_SCALE,
        ),
    )


# ---- LowState -------------------------------------------------------------------------------------
def _zeros() -> np.ndarray:
    return np.zeros(NUM_MOTORS)


@dataclass(frozen=True)
class LowState:
    """The decoded robot state: motor fields in SDK motor order, the IMU quaternion as (w, x, y, z)."""

    tick: int = 0  # the motion controller's clock, microseconds
    quaternion_wxyz: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    gyroscope: tuple[float, float, float] = (0.0, 0.0, 0.0)
    accelerometer: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    motor_mode: np.ndarray = field(default_factory=lambda: np.zeros(NUM_MOTORS, dtype=np.uint8))
    q: np.ndarray = field(default_factory=_zeros)
    dq: np.ndarray = field(default_factory=_zeros)
    tau_est: np.ndarray = field(default_factory=_zeros)
    temperature: np.ndarray = field(default_factory=lambda: np.zeros(NUM_MOTORS, dtype=np.int8))
    foot_force: tuple[int, int, int, int] = (0, 0, 0, 0)
    wireless_remote: bytes = bytes(REMOTE_LENGTH)
    level_flag: int = LOWLEVEL


def pack_low_state(state: LowState) -> bytes:
    """The 807 bytes a Go1 sends for this state (used by the fake robot and the tests)."""
    record = np.zeros((), dtype=LOW_STATE_DTYPE)
    record["head"] = np.frombuffer(HEAD, dtype=np.uint8)
    record["level_flag"] = state.level_flag
    imu = record["imu"]
    imu["quaternion"] = state.quaternion_wxyz
    imu["gyroscope"] = state.gyroscope
    imu["accelerometer"] = state.accelerometer
    imu["rpy"] = state.rpy
    motors = record["motor_state"]
    motors["mode"][:NUM_MOTORS] = state.motor_mode
    motors["q"][:NUM_MOTORS] = _motor_array(state.q, "q")
    motors["dq"][:NUM_MOTORS] = _motor_array(state.dq, "dq")
    motors["tau_est"][:NUM_MOTORS] = _fixed_point(_motor_array(state.tau_est, "tauEst"), TAU_EST_SCALE, "int16", "tauEst")
    motors["temperature"][:NUM_MOTORS] = state.temperature
    record["foot_force"] = state.foot_force
    record["tick"] = state.tick & 0xFFFFFFFF
    if len(state.wireless_remote) != REMOTE_LENGTH:
        raise PacketError(f"wirelessRemote must be {REMOTE_LENGTH} bytes, got {len(state.wireless_remote)}")
    record["wireless_remote"] = np.frombuffer(state.wireless_remote, dtype=np.uint8)
    packet = bytearray(record.tobytes())
    packet[-4:] = sdk_crc32(bytes(packet)).to_bytes(4, "little")
    return bytes(packet)


def unpack_low_state(data: bytes) -> LowState:
    record = _checked_record(data, LOW_STATE_DTYPE, "LowState")
    imu = record["imu"]
    motors = record["motor_state"][:NUM_MOTORS]

    def floats(values: np.ndarray) -> tuple[float, ...]:
        return tuple(float(v) for v in values)

    return LowState(
        tick=int(record["tick"]),
        quaternion_wxyz=floats(imu["quaternion"]),  # type: ignore[arg-type]
        gyroscope=floats(imu["gyroscope"]),  # type: ignore[arg-type]
        accelerometer=floats(imu["accelerometer"]),  # type: ignore[arg-type]
        rpy=floats(imu["rpy"]),  # type: ignore[arg-type]
        motor_mode=motors["mode"].copy(),
        q=motors["q"].astype(np.float64),
        dq=motors["dq"].astype(np.float64),
        tau_est=motors["tau_est"].astype(np.float64) / TAU_EST_SCALE,
        temperature=motors["temperature"].copy(),
        foot_force=tuple(int(f) for f in record["foot_force"]),  # type: ignore[arg-type]
        wireless_remote=record["wireless_remote"].tobytes(),
        level_flag=int(record["level_flag"]),
    )
