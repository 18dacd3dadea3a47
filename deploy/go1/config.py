"""`BridgeConfig`: addresses, rates, gains per mode, limits and watchdog times of the Go1 bridge.

Defaults reproduce what the policy was trained with: ACTIVE_POLICY uses the contract's PD gains
(`dhal.envs.robots.go1.KP`/`KD`, which `go1_contract()` copies) and the torque limits of go1.py;
the other modes use the defaults of `dhal.deploy.gains.ModeGains`, as the MuJoCo robot node does.
Joint names, limits and torques are taken from go1.py by joint name. Values can be overridden from
JSON (`from_json`, `with_overrides`) or the command line (`bridge_node.main`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dhal.deploy.gains import ModeGains, PdGains
from dhal.deploy.go1.joint_map import JointMap, joint_kind
from dhal.deploy.topics import RobotMode
from dhal.envs.robots import go1

# unitree_legged_sdk go1_const.h, the limits `Safety::PositionLimit` clamps to (radians).
SDK_POSITION_LIMITS: dict[str, tuple[float, float]] = {
    "hip": (-1.047, 1.047),
    "thigh": (-0.663, 2.966),
    "calf": (-2.721, -0.837),
}
# Safety::Safety(LeggedType::Go1) sets WattLimit = 1000; PowerProtect's level 1..10 is 10 %..100 % of it.
SDK_POWER_LIMIT_W = 1000.0
SDK_POWER_LEVELS = range(1, 11)


@dataclass(frozen=True)
class BridgeConfig:
    # Link. The SDK binds its local port on every interface and talks to the leg MCU.
    robot_host: str = "192.168.123.10"
    robot_port: int = 8007
    local_host: str = "0.0.0.0"
    local_port: int = 8080
    loop_rate_hz: float = 500.0
    # ROS side.
    state_rate_hz: float = 200.0  # /joint_states and /imu/data
    joy_rate_hz: float = 50.0
    diagnostics_rate_hz: float = 1.0
    imu_frame_id: str = go1.IMU_SITE
    # The node's executor shares the GIL with the 500 Hz loop: EventsExecutor (experimental in rclpy)
    # disturbed it far less than SingleThreadedExecutor, which stays as a fallback.
    executor: Literal["events", "single"] = "events"
    joint_names: tuple[str, ...] = go1.JOINT_NAMES  # order of targets and JointState, as the contract
    # Gains per mode, the same `ModeGains` the MuJoCo robot node uses: the policy's are the training
    # gains (go1.KP/KD, which go1_contract() copies); stand 60/2, damping 0/2, passive 0/0.
    gains: ModeGains = field(default_factory=lambda: ModeGains(policy=PdGains(go1.KP, go1.KD)))
    # The highest mode this bridge will enter; DAMPING makes a dry run that can never stiffen a joint.
    max_mode: RobotMode = RobotMode.ACTIVE_POLICY
    # Watchdogs (seconds).
    command_timeout_s: float = 0.05  # no new target for this long while active -> DAMPING
    state_timeout_s: float = 0.05  # no valid LowState for this long while active -> DAMPING
    # Limits.
    target_fault_margin_rad: float = 0.1  # targets beyond the position limits by more than this -> DAMPING
    max_entry_error_rad: float = 0.5  # an active mode is entered only if every target is this close to q
    torque_limit_scale: float = 1.0  # fraction of go1.TORQUE_LIMITS the implied PD torque may reach
    power_protect_level: int = 9  # SDK PowerProtect factor, as walk-these-ways uses
    motor_temperature_warn_c: int = 70
    motor_temperature_limit_c: int = 85
    motor_mode_mismatch_states: int = 50  # consecutive LowStates with a motor in another mode -> DAMPING

    def __post_init__(self) -> None:
        JointMap(self.joint_names)  # raises on unknown, missing or duplicate names
        for name in ("loop_rate_hz", "state_rate_hz", "joy_rate_hz", "diagnostics_rate_hz",
                     "command_timeout_s", "state_timeout_s", "max_entry_error_rad"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.target_fault_margin_rad < 0:
            raise ValueError(f"target_fault_margin_rad must be >= 0, got {self.target_fault_margin_rad}")
        if not 0 < self.torque_limit_scale <= 1:
            raise ValueError(f"torque_limit_scale must be in (0, 1], got {self.torque_limit_scale}")
        if self.power_protect_level not in SDK_POWER_LEVELS:
            raise ValueError(f"power_protect_level must be 1..10 (SDK PowerProtect), got {self.power_protect_level}")
        if self.gains.damping.kd <= 0:
            raise ValueError(f"damping needs kd > 0 to brake a falling robot, got {self.gains.damping}")
        if self.motor_temperature_warn_c > self.motor_temperature_limit_c:
            raise ValueError("motor_temperature_warn_c must not exceed motor_temperature_limit_c")
        if self.motor_mode_mismatch_states < 1:
            raise ValueError(f"motor_mode_mismatch_states must be >= 1, got {self.motor_mode_mismatch_states}")
        if self.executor not in ("events", "single"):
            raise ValueError(f"executor must be 'events' or 'single', got {self.executor!r}")
        object.__setattr__(self, "max_mode", RobotMode(self.max_mode))

    # ---- per-joint values in `joint_names` order -----------------------------------------------------
    @property
    def position_limits(self) -> tuple[tuple[float, float], ...]:
        """Per joint, the intersection of the SDK's PositionLimit and the URDF range in go1.py."""
        limits = []
        for name in self.joint_names:
            urdf = go1.JOINT_NAMES.index(name)
            sdk_low, sdk_high = SDK_POSITION_LIMITS[joint_kind(name)]
            limits.append((max(sdk_low, go1.JOINT_LOWER[urdf]), min(sdk_high, go1.JOINT_UPPER[urdf])))
        return tuple(limits)

    @property
    def torque_limits(self) -> tuple[float, ...]:
        return tuple(go1.TORQUE_LIMITS[go1.JOINT_NAMES.index(n)] * self.torque_limit_scale for n in self.joint_names)

    @property
    def power_limit_w(self) -> float:
        return SDK_POWER_LIMIT_W * self.power_protect_level / 10

    # ---- overrides -------------------------------------------------------------------------------------
    def with_overrides(self, overrides: Mapping[str, Any]) -> BridgeConfig:
        """A copy with JSON-style values replaced: gains as {"policy": {"kp": .., "kd": ..}, ...},
        modes by name or number."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise KeyError(f"unknown bridge config keys {unknown}; known keys are {sorted(fields)}")
        values: dict[str, Any] = {}
        for key, value in overrides.items():
            current = getattr(self, key)
            if isinstance(current, ModeGains):
                values[key] = _override_gains(current, value)
            elif isinstance(current, RobotMode):
                values[key] = RobotMode[value.upper()] if isinstance(value, str) else RobotMode(int(value))
            elif isinstance(current, tuple):
                values[key] = tuple(value)
            else:
                values[key] = type(current)(value)
        return dataclasses.replace(self, **values)

    @classmethod
    def from_json(cls, path: str | Path) -> BridgeConfig:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a bridge config is a JSON object, got {type(data).__name__}")
        return cls().with_overrides(data)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["max_mode"] = self.max_mode.name
        return data


def _override_gains(current: ModeGains, overrides: Mapping[str, Mapping[str, float]]) -> ModeGains:
    modes = {f.name for f in dataclasses.fields(current)}
    unknown = sorted(set(overrides) - modes)
    if unknown:
        raise KeyError(f"gains: unknown modes {unknown}; expected {sorted(modes)}")
    replaced = {}
    for mode, pair in overrides.items():
        extra = sorted(set(pair) - {"kp", "kd"})
        if extra:
            raise KeyError(f"gains.{mode}: unknown keys {extra}; expected kp, kd")
        old = getattr(current, mode)
        replaced[mode] = PdGains(float(pair.get("kp", old.kp)), float(pair.get("kd", old.kd)))
    return dataclasses.replace(current, **replaced)
