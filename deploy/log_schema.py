"""Message schemas for the deploy logs: the `PolicyStep` record and `ros2msg` texts of standard types.

`PolicyStep` exists only in logs, never on the wire, so it is never compiled: its schema text lives
here and its CDR bytes are produced with numpy (the layout is fixed and simple), which keeps the cost
on the control thread to microseconds and lets logs be written and read on machines without ROS.
The tests check the bytes against mcap-ros2-support's independent dynamic encoder.

Schemas follow the MCAP `ros2msg` convention that Foxglove expects: the type's own .msg text, then
each dependency after a line of 80 '=' and `MSG: pkg/Type`.
"""

from __future__ import annotations

import functools
import os
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


class McapLogError(RuntimeError):
    """A log cannot be written or read; the message names the file or type concerned."""


class MsgDefinitionNotFound(McapLogError):
    pass


SCHEMA_SEPARATOR = "=" * 80
POLICY_STEP_TYPE = "dhal_deploy_msgs/msg/PolicyStep"
POLICY_STEP_TOPIC = "/dhal/policy_step"

POLICY_STEP_MSG = """\
# One policy step of the deploy node, logged only (never published).
std_msgs/Header header  # stamp = stamp of the robot state the observation was built from
uint32 step
uint8 fsm_state
uint8 robot_mode
float32[] observation  # the exact ONNX input
float32[] action  # raw policy output
float32[] joint_targets  # after all clamps; empty when no targets were published
float32[] policy_targets
float32[] mode_probs
float32[] latent
float32[] command
float64 inference_ms
float64 state_age_ms
float64 loop_period_ms
uint32 clamp_flags
uint32 fault_flags
"""
# Kept here (not read from the ROS wheels) so that logs can be written where ROS is not installed.
_HEADER_MSG = "builtin_interfaces/Time stamp\nstring frame_id\n"
_TIME_MSG = "int32 sec\nuint32 nanosec\n"


def join_schema(main_text: str, dependencies: Sequence[tuple[str, str]]) -> str:
    """The ros2msg schema: the main .msg text, then each (`pkg/Type`, text) dependency in its block."""
    parts = [main_text.rstrip("\n")]
    for name, text in dependencies:
        parts.append(f"{SCHEMA_SEPARATOR}\nMSG: {name}\n{text.rstrip(chr(10))}")
    return "\n".join(parts) + "\n"


POLICY_STEP_SCHEMA = join_schema(
    POLICY_STEP_MSG, [("std_msgs/Header", _HEADER_MSG), ("builtin_interfaces/Time", _TIME_MSG)]
)

# ---------------------------------------------------------------------------------------------
# ros2msg schemas of installed standard types

_PRIMITIVES = frozenset(
    "bool byte char float32 float64 int8 uint8 int16 uint16 int32 uint32 int64 uint64 string wstring".split()
)


def default_msg_search_dirs() -> tuple[Path, ...]:
    """Where installed interface packages keep their .msg files: `<prefix>/share/<pkg>/msg/`."""
    prefixes = [sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)]
    dirs: list[Path] = []
    for prefix in prefixes:
        share = Path(prefix) / "share"
        if prefix and share.is_dir() and share not in dirs:
            dirs.append(share)
    return tuple(dirs)


def split_type_name(type_name: str) -> tuple[str, str]:
    """'sensor_msgs/msg/Imu' or 'sensor_msgs/Imu' -> ('sensor_msgs', 'Imu')."""
    parts = type_name.split("/")
    if len(parts) == 3 and parts[1] == "msg" and all(parts):
        return parts[0], parts[2]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise McapLogError(f"malformed ROS message type name {type_name!r}: expected 'pkg/msg/Type'")


def _field_types(package: str, msg_text: str) -> list[tuple[str, str]]:
    """The non-primitive field types of a .msg text, as (package, Type)."""
    found: list[tuple[str, str]] = []
    for line in msg_text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        base = line.split()[0].split("[")[0].split("<=")[0]
        if base in _PRIMITIVES:
            continue
        found.append(split_type_name(base) if "/" in base else (package, base))
    return found


def _read_msg(package: str, name: str, search_dirs: Sequence[Path], needed_by: str | None) -> str:
    for share in search_dirs:
        candidate = share / package / "msg" / f"{name}.msg"
        if candidate.is_file():
            return candidate.read_text()
    why = f" (a field type of {needed_by})" if needed_by else ""
    looked = ", ".join(str(d) for d in search_dirs) or "no share/ folders found"
    raise MsgDefinitionNotFound(
        f"no .msg file for {package}/msg/{name}{why}; looked for {package}/msg/{name}.msg under: {looked}. "
        f"Install the wheel of the '{package}' package."
    )


def ros2msg_schema(type_name: str, search_dirs: Sequence[Path] | None = None) -> str:
    """The full ros2msg schema text of an installed message type, with all nested dependencies."""
    dirs = tuple(search_dirs) if search_dirs is not None else default_msg_search_dirs()
    return _ros2msg_schema_cached(type_name, dirs)


@functools.lru_cache(maxsize=None)
def _ros2msg_schema_cached(type_name: str, search_dirs: tuple[Path, ...]) -> str:
    package, name = split_type_name(type_name)
    root = f"{package}/{name}"
    root_text = _read_msg(package, name, search_dirs, needed_by=None)
    dependencies: dict[str, str] = {}

    def visit(owner: str, owner_package: str, text: str) -> None:
        for dep_package, dep_name in _field_types(owner_package, text):
            key = f"{dep_package}/{dep_name}"
            if key == root or key in dependencies:
                continue
            dep_text = _read_msg(dep_package, dep_name, search_dirs, needed_by=owner)
            dependencies[key] = dep_text
            visit(key, dep_package, dep_text)

    visit(root, package, root_text)
    return join_schema(root_text, list(dependencies.items()))


# ---------------------------------------------------------------------------------------------
# PolicyStep record and its CDR encoding


def _empty() -> FloatArray:
    return np.zeros(0, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class PolicyStepRecord:
    """One step of the policy node; arrays are 1-D float32 (other inputs are converted when encoded)."""

    stamp_ns: int  # stamp of the robot state used, nanoseconds
    step: int
    fsm_state: int
    robot_mode: int
    observation: FloatArray
    action: FloatArray
    joint_targets: FloatArray = field(default_factory=_empty)
    policy_targets: FloatArray = field(default_factory=_empty)
    mode_probs: FloatArray = field(default_factory=_empty)
    latent: FloatArray = field(default_factory=_empty)
    command: FloatArray = field(default_factory=_empty)
    inference_ms: float = float("nan")  # NaN = not measured
    state_age_ms: float = float("nan")
    loop_period_ms: float = float("nan")
    clamp_flags: int = 0
    fault_flags: int = 0


ARRAY_FIELDS: tuple[str, ...] = (
    "observation", "action", "joint_targets", "policy_targets", "mode_probs", "latent", "command",
)
_UINT_LIMITS = {"step": 2**32, "fsm_state": 2**8, "robot_mode": 2**8, "clamp_flags": 2**32, "fault_flags": 2**32}

_CDR_LE_HEADER = b"\x00\x01\x00\x00"  # plain CDR, little endian
_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iII")  # sec, nanosec, frame_id length (with its NUL)
_STEP = struct.Struct("<IBB")
_TAIL = struct.Struct("<dddII")


def _pad(offset: int, alignment: int) -> int:
    return -offset % alignment


def encode_policy_step(record: PolicyStepRecord) -> bytes:
    """CDR bytes (with the encapsulation header) of a PolicyStep; raises ValueError naming a bad field."""
    for name, limit in _UINT_LIMITS.items():
        value = getattr(record, name)
        if not 0 <= value < limit:
            raise ValueError(f"PolicyStepRecord.{name}={value} does not fit in {limit.bit_length() - 1} unsigned bits")
    sec, nanosec = divmod(int(record.stamp_ns), 1_000_000_000)
    if not -(2**31) <= sec < 2**31:
        raise ValueError(f"PolicyStepRecord.stamp_ns={record.stamp_ns} is outside the int32 seconds of a ROS Time")
    # Offsets count from the end of the encapsulation header, as CDR alignment does.
    parts = [_CDR_LE_HEADER, _STAMP.pack(sec, nanosec, 1), b"\x00"]
    offset = _STAMP.size + 1
    parts.append(b"\x00" * _pad(offset, 4))
    offset += _pad(offset, 4)
    parts.append(_STEP.pack(record.step, record.fsm_state, record.robot_mode))
    offset += _STEP.size
    for name in ARRAY_FIELDS:
        values = np.asarray(getattr(record, name), dtype="<f4")
        if values.ndim != 1:
            raise ValueError(f"PolicyStepRecord.{name} must be 1-D, got shape {values.shape}")
        pad = _pad(offset, 4)
        parts.append(b"\x00" * pad + _U32.pack(values.size) + values.tobytes())
        offset += pad + 4 + 4 * values.size
    pad = _pad(offset, 8)
    parts.append(b"\x00" * pad)
    parts.append(
        _TAIL.pack(
            record.inference_ms, record.state_age_ms, record.loop_period_ms, record.clamp_flags, record.fault_flags
        )
    )
    return b"".join(parts)


def decode_policy_step(data: bytes) -> PolicyStepRecord:
    """Inverse of `encode_policy_step` (accepts any frame_id); the arrays are read-only views of `data`."""
    if data[:4] != _CDR_LE_HEADER:
        raise McapLogError(f"PolicyStep bytes start with {data[:4]!r}, not little-endian plain CDR {_CDR_LE_HEADER!r}")
    try:
        body = memoryview(data)[4:]
        sec, nanosec, frame_len = _STAMP.unpack_from(body, 0)
        offset = _STAMP.size + frame_len
        offset += _pad(offset, 4)
        step, fsm_state, robot_mode = _STEP.unpack_from(body, offset)
        offset += _STEP.size
        arrays: dict[str, FloatArray] = {}
        for name in ARRAY_FIELDS:
            offset += _pad(offset, 4)
            (count,) = _U32.unpack_from(body, offset)
            arrays[name] = np.frombuffer(body, dtype="<f4", count=count, offset=offset + 4)
            offset += 4 + 4 * count
        offset += _pad(offset, 8)
        inference_ms, state_age_ms, loop_period_ms, clamp_flags, fault_flags = _TAIL.unpack_from(body, offset)
    except (struct.error, ValueError) as exc:
        raise McapLogError(f"PolicyStep bytes ({len(data)} bytes) are truncated or malformed: {exc}") from exc
    return PolicyStepRecord(
        stamp_ns=sec * 1_000_000_000 + nanosec, step=step, fsm_state=fsm_state, robot_mode=robot_mode,
        inference_ms=inference_ms, state_age_ms=state_age_ms, loop_period_ms=loop_period_ms,
        clamp_flags=clamp_flags, fault_flags=fault_flags, **arrays,
    )
