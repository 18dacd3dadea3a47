"""The thresholds of the deploy safety layer (DEPLOY.md §7.2): `SafetyConfig`, validated on construction
and built from a policy contract with `SafetyConfig.for_contract`, its per-joint `SafetyVectors`, and
the Go1 defaults. The state machine that reads it is `dhal.deploy.safety`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from dhal.envs.robots import go1

if TYPE_CHECKING:  # envs.contract imports torch; the safety layer must not
    from dhal.envs.contract import Contract

__all__ = [
    "DEFAULT_SOFT_LIMIT_MARGIN_RAD",
    "DEFAULT_TORQUE_DERATE",
    "GO1_LYING_LEG",
    "SafetyConfig",
    "SafetyVectors",
]

# Soft limits default to the Go1 joint range shrunk by this much on each side.
DEFAULT_SOFT_LIMIT_MARGIN_RAD = 0.1
# Torque limits default to the Go1 effort limits times this.
DEFAULT_TORQUE_DERATE = 0.9
# A crouch with the feet under the body (per leg: hip, thigh, calf), close to the Go1's own
# lying pose; inside the default soft limits.
GO1_LYING_LEG = (0.0, 1.36, -2.65)


def _go1_per_joint(values: tuple[float, ...]) -> dict[str, float]:
    return dict(zip(go1.JOINT_NAMES, values))


_GO1_SOFT_LOWER = tuple(x + DEFAULT_SOFT_LIMIT_MARGIN_RAD for x in go1.JOINT_LOWER)
_GO1_SOFT_UPPER = tuple(x - DEFAULT_SOFT_LIMIT_MARGIN_RAD for x in go1.JOINT_UPPER)
_GO1_TORQUE_LIMITS = tuple(x * DEFAULT_TORQUE_DERATE for x in go1.TORQUE_LIMITS)
_GO1_LYING_POSE = GO1_LYING_LEG * len(go1.LEGS)

_VECTOR_FIELDS = ("default_pose", "soft_lower", "soft_upper", "torque_limits", "lying_pose")
# (field, smallest allowed value, whether the smallest value itself is allowed)
_SCALAR_FIELDS: tuple[tuple[str, float, bool], ...] = (
    ("action_scale", 0.0, False),
    ("action_limit", 0.0, False),
    ("kp", 0.0, False),
    ("kd", 0.0, True),
    ("max_target_step_rad", 0.0, False),
    ("state_timeout_s", 0.0, False),
    ("max_tilt_rad", 0.0, False),
    ("max_inference_s", 0.0, False),
    ("action_timeout_s", 0.0, False),
    ("joint_limit_margin_rad", 0.0, True),
    ("stand_up_time_s", 0.0, False),
    ("sit_down_time_s", 0.0, False),
    ("stand_up_max_error_rad", 0.0, False),
)


@dataclass(frozen=True)
class SafetyVectors:
    """Read-only numpy copies of the config's per-joint values, built once."""

    default_pose: np.ndarray
    soft_lower: np.ndarray
    soft_upper: np.ndarray
    torque_limits: np.ndarray
    lying_pose: np.ndarray


def _config_error(name: str, message: str) -> ValueError:
    return ValueError(f"SafetyConfig.{name}: {message}")


@dataclass(frozen=True)
class SafetyConfig:
    """Every threshold of the safety layer (DEPLOY.md §7.2). Per-joint values are in `joint_names` order.

    Defaults are the Go1 constants and the §7.2 starting values; build one from the policy's
    contract with `SafetyConfig.for_contract(contract, **overrides)`. Validated on construction:
    errors are ValueErrors that start with `SafetyConfig.<field>:`.
    """

    joint_names: tuple[str, ...] = go1.JOINT_NAMES
    # Policy side, taken from the contract.
    default_pose: tuple[float, ...] = go1.DEFAULT_POSE  # also the STAND hold pose
    action_scale: float = 0.25
    action_limit: float = 3.0
    kp: float = go1.KP  # the policy's PD gains, for the predicted torque
    kd: float = go1.KD
    # Limits.
    soft_lower: tuple[float, ...] = _GO1_SOFT_LOWER
    soft_upper: tuple[float, ...] = _GO1_SOFT_UPPER
    torque_limits: tuple[float, ...] = _GO1_TORQUE_LIMITS
    max_target_step_rad: float = 0.3  # per policy step (50 Hz: 15 rad/s, half the Go1 velocity limit)
    # Watchdogs and trips.
    state_timeout_s: float = 0.025  # 5 missed states at 200 Hz
    max_tilt_rad: float = 0.8
    max_inference_s: float = 0.005
    max_consecutive_overruns: int = 3
    action_timeout_s: float = 0.1  # 5 policy periods at 50 Hz without an action
    # Measured q may be this far outside the soft limits (0.15 rad past the Go1's joint range):
    # a limp robot rests on its stops and must still be allowed to stand up from there, and
    # MuJoCo's soft joint limits let a limp leg under the body's weight sink up to ~0.07 rad past
    # them. Targets never leave the soft limits; this check only catches a broken reading.
    joint_limit_margin_rad: float = 0.25
    # Stand up / sit down.
    stand_up_time_s: float = 2.5
    sit_down_time_s: float = 2.0
    stand_up_max_error_rad: float = 0.5
    lying_pose: tuple[float, ...] = _GO1_LYING_POSE
    # Operation.
    dry_run: bool = True

    def __post_init__(self) -> None:
        names = self.joint_names
        if isinstance(names, str) or not all(isinstance(x, str) for x in names):
            raise _config_error("joint_names", f"expected a sequence of joint names, got {names!r}")
        names = tuple(names)
        object.__setattr__(self, "joint_names", names)
        n = len(names)
        if n == 0:
            raise _config_error("joint_names", "no joints")
        if len(set(names)) != n:
            raise _config_error("joint_names", f"duplicate names in {list(names)}")

        for name in _VECTOR_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise _config_error(name, f"expected {n} numbers, got {value!r}")
            try:
                values = tuple(_as_float(x) for x in value)
            except (TypeError, ValueError):
                raise _config_error(name, f"expected {n} numbers, got {value!r}") from None
            if len(values) != n:
                raise _config_error(name, f"expected {n} values (one per joint), got {len(values)}")
            bad = [names[i] for i, x in enumerate(values) if not math.isfinite(x)]
            if bad:
                raise _config_error(name, f"non-finite value for {bad}")
            object.__setattr__(self, name, values)

        for name, lowest, inclusive in _SCALAR_FIELDS:
            value = getattr(self, name)
            try:
                number = _as_float(value)
            except (TypeError, ValueError):
                raise _config_error(name, f"expected a number, got {value!r}") from None
            if not math.isfinite(number) or number < lowest or (number == lowest and not inclusive):
                relation = ">=" if inclusive else ">"
                raise _config_error(name, f"must be finite and {relation} {lowest}, got {value!r}")
            object.__setattr__(self, name, number)

        if self.max_tilt_rad > math.pi:
            raise _config_error("max_tilt_rad", f"must be <= pi, got {self.max_tilt_rad}")
        count = self.max_consecutive_overruns
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise _config_error("max_consecutive_overruns", f"must be an integer >= 1, got {count!r}")
        object.__setattr__(self, "max_consecutive_overruns", int(count))
        if not isinstance(self.dry_run, (bool, np.bool_)):  # a YAML "false" string must not mean True
            raise _config_error("dry_run", f"must be a bool, got {self.dry_run!r}")
        object.__setattr__(self, "dry_run", bool(self.dry_run))

        for i, joint in enumerate(names):
            if not self.soft_lower[i] < self.soft_upper[i]:
                raise _config_error(
                    "soft_lower", f"{joint}: lower {self.soft_lower[i]} is not below soft_upper {self.soft_upper[i]}")
        for name in ("default_pose", "lying_pose"):
            pose = getattr(self, name)
            for i, joint in enumerate(names):
                if not self.soft_lower[i] <= pose[i] <= self.soft_upper[i]:
                    raise _config_error(
                        name, f"{joint} = {pose[i]} is outside the soft limits "
                              f"[{self.soft_lower[i]}, {self.soft_upper[i]}]")
        if not self.joint_limit_margin_rad < self.stand_up_max_error_rad:
            raise _config_error(
                "joint_limit_margin_rad", f"{self.joint_limit_margin_rad} must be below stand_up_max_error_rad "
                f"{self.stand_up_max_error_rad}: a stand-up from a pose the limits accept would abort at once")
        for i, joint in enumerate(names):
            if not self.torque_limits[i] > 0:
                raise _config_error("torque_limits", f"{joint}: must be > 0, got {self.torque_limits[i]}")

        def frozen(values: tuple[float, ...]) -> np.ndarray:
            array = np.array(values, dtype=np.float64)
            array.setflags(write=False)
            return array

        # Not a dataclass field: equality, hashing and repr ignore it.
        object.__setattr__(self, "_vectors", SafetyVectors(*(frozen(getattr(self, f)) for f in _VECTOR_FIELDS)))

    @property
    def vectors(self) -> SafetyVectors:
        return self._vectors  # type: ignore[attr-defined]

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @classmethod
    def for_contract(
        cls,
        contract: Contract,
        *,
        torque_derate: float = DEFAULT_TORQUE_DERATE,
        soft_limit_margin_rad: float = DEFAULT_SOFT_LIMIT_MARGIN_RAD,
        **overrides: Any,
    ) -> SafetyConfig:
        """The config for a policy contract: joint names, default pose, action scale/limit, kp/kd
        from the contract; torque limits = contract torque limits x `torque_derate`. Soft limits
        (the Go1 range shrunk by `soft_limit_margin_rad`) and the lying pose are looked up *by joint
        name*, so a contract in another joint order gets its own order; joints that are not Go1
        joints need explicit `soft_lower`/`soft_upper`/`lying_pose` overrides. Any field can be
        overridden by keyword."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"SafetyConfig has no fields {unknown}; fields are {sorted(known)}")
        if not (math.isfinite(torque_derate) and 0 < torque_derate <= 1):
            raise _config_error("torque_limits", f"torque_derate must be in (0, 1], got {torque_derate}")
        if not (math.isfinite(soft_limit_margin_rad) and soft_limit_margin_rad >= 0):
            raise _config_error("soft_lower", f"soft_limit_margin_rad must be >= 0, got {soft_limit_margin_rad}")
        names = tuple(contract.joint_names)
        values: dict[str, Any] = dict(
            joint_names=names,
            default_pose=tuple(contract.default_pose),
            action_scale=contract.action_scale,
            action_limit=contract.action_limit,
            kp=contract.kp,
            kd=contract.kd,
            torque_limits=tuple(float(t) * torque_derate for t in contract.torque_limits),
        )
        by_name = {
            "soft_lower": {k: x + soft_limit_margin_rad for k, x in _go1_per_joint(go1.JOINT_LOWER).items()},
            "soft_upper": {k: x - soft_limit_margin_rad for k, x in _go1_per_joint(go1.JOINT_UPPER).items()},
            "lying_pose": _go1_per_joint(_GO1_LYING_POSE),
        }
        for name, table in by_name.items():
            if name in overrides:
                continue
            missing = [j for j in names if j not in table]
            if missing:
                raise _config_error(name, f"no Go1 default for joints {missing}; pass {name}=... explicitly")
            values[name] = tuple(table[j] for j in names)
        values.update(overrides)
        return cls(**values)


def _as_float(x: Any) -> float:
    if isinstance(x, (bool, np.bool_)):
        raise TypeError("a bool is not a number here")
    return float(x)
