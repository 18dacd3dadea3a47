"""The safety layer's vocabulary: FSM states, fault bits, operator requests, the sensor input and
the per-tick command. Shared by the machine (`dhal.deploy.safety`), the controller, the nodes, the
logs and replay; the states and faults are documented with the machine."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from dhal.deploy.clamps import Clamp
from dhal.deploy.topics import RobotMode

__all__ = ["ACTUATING_STATES", "Command", "Fault", "FsmState", "Request", "RobotSensors"]


class FsmState(enum.IntEnum):
    INIT = 0
    PASSIVE = 1
    STAND_UP = 2
    STAND = 3
    POLICY = 4
    SIT_DOWN = 5
    DAMPING = 6


ACTUATING_STATES = frozenset({FsmState.STAND_UP, FsmState.STAND, FsmState.POLICY, FsmState.SIT_DOWN})


class Fault(enum.IntFlag):
    """Fault bits (stable values: they go into the logs)."""

    NONE = 0
    ESTOP = 1
    STALE_STATE = 2
    NONFINITE_OBSERVATION = 4
    NONFINITE_ACTION = 8
    TILT = 16
    JOINT_LIMIT = 32
    INFERENCE_OVERRUN = 64
    BAD_MESSAGE = 128
    STAND_UP_ERROR = 256
    ROBOT_MODE = 512  # the robot reported a mode that was not requested


class Request(enum.Enum):
    """Operator inputs."""

    STAND_UP = "stand_up"
    START_POLICY = "start_policy"
    SIT_DOWN = "sit_down"
    DAMP = "damp"
    RESET = "reset"


@dataclass
class RobotSensors:
    """The latest robot state, in the contract's joint order.

    `stamp_s` is when the state was measured (same clock as the `now_s` given to the machine).
    Arrays are converted to float64 on construction; a wrong rank or a q/dq size mismatch is a
    ValueError here (the node turns that into `report_fault(Fault.BAD_MESSAGE, ...)`), a size that
    differs from the config is a BAD_MESSAGE fault in `update()`, NaN/Inf is left for `update()`.
    """

    stamp_s: float
    q: np.ndarray
    dq: np.ndarray
    roll_pitch: np.ndarray
    estop: bool

    def __post_init__(self) -> None:
        self.stamp_s = float(self.stamp_s)
        for name in ("q", "dq", "roll_pitch"):
            array = np.asarray(getattr(self, name), dtype=np.float64)
            if array.ndim != 1:
                raise ValueError(f"RobotSensors.{name}: expected a vector, got shape {array.shape}")
            setattr(self, name, array)
        if self.q.shape != self.dq.shape:
            raise ValueError(f"RobotSensors.dq: shape {self.dq.shape} differs from q's {self.q.shape}")
        if self.roll_pitch.shape != (2,):
            raise ValueError(f"RobotSensors.roll_pitch: expected shape (2,), got {self.roll_pitch.shape}")
        self.estop = bool(self.estop)


@dataclass
class Command:
    """What `update()` decided for this tick."""

    state: FsmState
    mode: RobotMode  # the mode to request from the robot side (publish on change)
    targets: np.ndarray | None  # joint targets to publish now; None: publish nothing
    policy_targets: np.ndarray | None  # the clamped policy targets of a policy step, also in dry run
    faults: Fault = Fault.NONE  # fault conditions seen this tick (tripping or not)
    clamps: Clamp = Clamp.NONE  # clamps that changed the policy targets this tick
    entered: bool = False  # the state changed since the previous update()
    reason: str = ""  # human-readable, for logs and diagnostics
