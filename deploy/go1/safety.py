"""The bridge's own safety: mode machine, watchdogs, limits and motor checks. No I/O, no ROS, no clock.

Everything is in contract joint order and takes the time (`now`, monotonic seconds) as an argument,
so the rules can be unit-tested exactly. The bridge calls `update_feedback` for each LowState,
`submit_target`/`request_mode`/`set_estop` from ROS callbacks and `command` once per 500 Hz tick.

Modes (`RobotMode`), what `command` sends in each, and how they change:

* PASSIVE (the start): servo mode with Kp = Kd = 0 and the SDK's stop sentinels for q and dq,
  exactly what the SDK's InitCmdData sends, so a Go1 lying down never gets a stiff command.
* DAMPING: servo mode, Kp = 0, Kd = `gains.damping.kd`, dq target 0. This (not motor mode 0x00,
  whose behaviour is firmware-defined) is the bridge's damping command.
* ACTIVE_STAND / ACTIVE_POLICY: PD to the latest target with the mode's gains, after the clamps.

An active request is held pending until there is a valid fresh target, a fresh LowState and every
target is within `max_entry_error_rad` of the measured joint angle; it is refused outright above
`max_mode` or while a fault is latched. Faults (e-stop; no target for `command_timeout_s` or no
LowState for `state_timeout_s` while active; a target of the wrong length, NaN/inf, or more than
`target_fault_margin_rad` beyond the limits; power protection; a motor over temperature; a motor
reporting another mode than commanded) switch to DAMPING and latch: active requests are refused
until a PASSIVE or DAMPING request acknowledges the fault (refused while the e-stop is engaged),
after which a new active request is needed.

Clamps on every active command: targets to the position limits (SDK PositionLimit intersected with
the URDF), then the implied PD torque kp (q* - q) - kd dq to the torque limits by moving q* toward
q, then the position limits again (they win). Power protection follows the SDK's PowerProtect:
the measured power sum_i |tauEst_i dq_i| over the 12 motors is compared with level/10 x 1000 W;
a counter goes up (to at most 10) on every state over the limit and down on every state under it,
and a count above 5 trips. Where the SDK then sends motor mode 0 for that cycle, the bridge latches
DAMPING.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from dhal.deploy.go1.config import BridgeConfig
from dhal.deploy.go1.packets import MOTOR_MODE_SERVO, POS_STOP_F, VEL_STOP_F
from dhal.deploy.topics import RobotMode

ACTIVE_MODES = (RobotMode.ACTIVE_STAND, RobotMode.ACTIVE_POLICY)
# SDK PowerProtect counter: saturates at 10, trips above 5.
POWER_COUNT_MAX = 10
POWER_COUNT_TRIP = 5


class FaultKind(enum.Enum):
    ESTOP = "e-stop engaged"
    STALE_TARGETS = "no fresh joint target"
    STALE_STATE = "no fresh LowState from the robot"
    BAD_TARGET = "invalid joint target"
    TARGET_OUT_OF_RANGE = "joint target far outside the position limits"
    BAD_MODE_REQUEST = "invalid mode request"
    POWER = "power protection"
    MOTOR_TEMPERATURE = "motor over temperature"
    MOTOR_MODE = "motor mode differs from the commanded one"


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    detail: str
    time: float

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}"


@dataclass(frozen=True)
class Event:
    """Something the operator should read in the log: level is 'info', 'warn' or 'error'."""

    level: str
    text: str


@dataclass(frozen=True)
class JointFeedback:
    """One LowState's motor data in contract joint order."""

    q: np.ndarray
    dq: np.ndarray
    tau_est: np.ndarray
    temperature: np.ndarray
    motor_mode: np.ndarray


@dataclass(frozen=True)
class JointCommand:
    """What to send to the motors, in contract joint order (all motors use `motor_mode`)."""

    motor_mode: int
    q: np.ndarray
    dq: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    tau: np.ndarray


@dataclass
class SafetyCounters:
    targets_received: int = 0
    targets_rejected: int = 0
    targets_clamped: int = 0  # accepted targets with a value outside the limits (clamped)
    torque_limited_ticks: int = 0
    entry_refusals: int = 0
    faults: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SafetyStatus:
    mode: RobotMode
    pending: RobotMode | None
    latched: Fault | None
    estop: bool
    target_age_s: float | None
    state_age_s: float | None
    waiting_for: str  # why a pending request has not been entered yet ('' if none)
    power_w: float
    power_count: int
    mode_mismatch_run: int
    counters: SafetyCounters


def passive_command(num_joints: int) -> JointCommand:
    """Zero torque: what the SDK's InitCmdData sends (position and velocity terms off, no gains)."""
    zeros = np.zeros(num_joints)
    return JointCommand(motor_mode=MOTOR_MODE_SERVO, q=np.full(num_joints, POS_STOP_F),
                        dq=np.full(num_joints, VEL_STOP_F), kp=zeros, kd=zeros, tau=zeros)


def damping_command(kd: float, num_joints: int) -> JointCommand:
    """Kp = 0, position term off, velocity target 0: a pure damper with gain kd."""
    zeros = np.zeros(num_joints)
    return JointCommand(motor_mode=MOTOR_MODE_SERVO, q=np.full(num_joints, POS_STOP_F), dq=zeros,
                        kp=zeros, kd=np.full(num_joints, kd), tau=zeros)


class BridgeSafety:
    def __init__(self, config: BridgeConfig):
        self.config = config
        self.names = config.joint_names
        n = len(self.names)
        limits = np.array(config.position_limits)
        self.lower, self.upper = limits[:, 0], limits[:, 1]
        self.torque_limits = np.array(config.torque_limits)
        self.mode = RobotMode.PASSIVE
        self.pending: RobotMode | None = None
        self.latched: Fault | None = None
        self.estop = False
        self.counters = SafetyCounters()
        self.events: deque[Event] = deque(maxlen=256)
        self._target: np.ndarray | None = None
        self._target_time: float | None = None
        self._feedback: JointFeedback | None = None
        self._feedback_time: float | None = None
        self._power_w = 0.0
        self._power_count = 0
        self._mismatch_run = 0
        self._waiting_for = ""
        self._zeros = np.zeros(n)

    # ---- inputs ---------------------------------------------------------------------------------------
    def request_mode(self, value: int, now: float) -> None:
        try:
            mode = RobotMode(value)
        except ValueError:
            self._fault(FaultKind.BAD_MODE_REQUEST, f"{value} is not one of {[m.value for m in RobotMode]}", now)
            return
        if mode in ACTIVE_MODES:
            self._request_active(mode)
            return
        self.pending = None
        if self.estop:
            self._event("warn", f"{mode.name} request: staying in DAMPING while the e-stop is engaged")
            self._set_mode(RobotMode.DAMPING)
            return
        if self.latched is not None:
            self._event("info", f"{mode.name} request acknowledges the fault ({self.latched})")
            self.latched = None
        self._set_mode(mode)

    def _request_active(self, mode: RobotMode) -> None:
        if self.latched is not None:
            self._event("warn", f"{mode.name} refused: fault latched ({self.latched}); request PASSIVE or "
                                "DAMPING to acknowledge it first")
        elif mode > self.config.max_mode:
            self._event("warn", f"{mode.name} refused: this bridge runs with max_mode {self.config.max_mode.name}")
        else:
            self.pending = mode if mode != self.mode else None

    def set_estop(self, engaged: bool, now: float) -> None:
        if engaged and not self.estop:
            self.estop = True
            self._fault(FaultKind.ESTOP, "/estop is true", now)
        elif not engaged and self.estop:
            self.estop = False
            self._event("info", "e-stop released; request PASSIVE or DAMPING, then an active mode, to continue")

    def submit_target(self, values: object, now: float) -> None:
        self.counters.targets_received += 1
        try:
            target = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as error:
            return self._reject_target(f"not a list of numbers ({error})", now)
        if target.shape != self.lower.shape:
            return self._reject_target(f"{target.size} values, expected {self.lower.size} in order {self.names}", now)
        bad = ~np.isfinite(target)
        if bad.any():
            return self._reject_target(f"non-finite values for {self._joint_list(bad)}", now)
        excess = np.maximum(self.lower - target, target - self.upper)
        far = excess > self.config.target_fault_margin_rad
        if far.any():
            self.counters.targets_rejected += 1
            worst = int(np.argmax(excess))
            self._fault(FaultKind.TARGET_OUT_OF_RANGE,
                        f"{self.names[worst]} target {target[worst]:.3f} rad, limits "
                        f"[{self.lower[worst]:.3f}, {self.upper[worst]:.3f}]", now)
            return
        if (excess > 0).any():
            self.counters.targets_clamped += 1
        self._target = target
        self._target_time = now

    def _reject_target(self, detail: str, now: float) -> None:
        self.counters.targets_rejected += 1
        self._fault(FaultKind.BAD_TARGET, detail, now)

    def update_feedback(self, feedback: JointFeedback, now: float) -> None:
        self._feedback = feedback
        self._feedback_time = now
        hot = feedback.temperature > self.config.motor_temperature_limit_c
        if hot.any():
            self._fault(FaultKind.MOTOR_TEMPERATURE, f"{self._joint_list(hot)} above "
                        f"{self.config.motor_temperature_limit_c} C (max {int(feedback.temperature.max())} C)", now)
        mismatch = feedback.motor_mode != MOTOR_MODE_SERVO
        self._mismatch_run = self._mismatch_run + 1 if mismatch.any() else 0
        if self._mismatch_run >= self.config.motor_mode_mismatch_states:
            modes = ", ".join(f"{self.names[i]}={int(feedback.motor_mode[i]):#04x}" for i in np.flatnonzero(mismatch))
            self._fault(FaultKind.MOTOR_MODE, f"commanded {MOTOR_MODE_SERVO:#04x}, motors report {modes} for "
                        f"{self._mismatch_run} states", now)
        self._power_w = float(np.abs(feedback.tau_est * feedback.dq).sum())
        if self._power_w > self.config.power_limit_w:
            self._power_count = min(self._power_count + 1, POWER_COUNT_MAX)
        else:
            self._power_count = max(self._power_count - 1, 0)
        if self._power_count > POWER_COUNT_TRIP:
            self._fault(FaultKind.POWER, f"{self._power_w:.0f} W over the {self.config.power_limit_w:.0f} W limit "
                        f"(level {self.config.power_protect_level})", now)

    # ---- output ---------------------------------------------------------------------------------------
    def command(self, now: float) -> JointCommand:
        """Run the watchdogs and pending transitions, then the command for the resulting mode."""
        target_age = self._age(self._target_time, now)
        state_age = self._age(self._feedback_time, now)
        if self.mode in ACTIVE_MODES:
            if target_age is None or target_age > self.config.command_timeout_s:
                self._fault(FaultKind.STALE_TARGETS, f"last target {self._age_text(target_age)}, timeout "
                            f"{self.config.command_timeout_s * 1e3:.0f} ms", now)
            elif state_age is None or state_age > self.config.state_timeout_s:
                self._fault(FaultKind.STALE_STATE, f"last LowState {self._age_text(state_age)}, timeout "
                            f"{self.config.state_timeout_s * 1e3:.0f} ms", now)
        self._try_enter_pending(target_age, state_age)
        if self.mode in ACTIVE_MODES:
            return self._active_command()
        if self.mode == RobotMode.DAMPING:
            return damping_command(self.config.gains.damping.kd, self._zeros.size)
        return passive_command(self._zeros.size)

    def _try_enter_pending(self, target_age: float | None, state_age: float | None) -> None:
        if self.pending is None:
            self._waiting_for = ""
            return
        if target_age is None or target_age > self.config.command_timeout_s:
            self._waiting_for = "a fresh joint target"
        elif state_age is None or state_age > self.config.state_timeout_s or self._feedback is None:
            self._waiting_for = "a fresh LowState"
        else:
            assert self._target is not None
            error = np.abs(np.clip(self._target, self.lower, self.upper) - self._feedback.q)
            if error.max() > self.config.max_entry_error_rad:
                worst = int(np.argmax(error))
                reason = (f"targets within {self.config.max_entry_error_rad} rad of the measured pose "
                          f"({self.names[worst]} is {error[worst]:.2f} rad away)")
                if self._waiting_for != reason:
                    self.counters.entry_refusals += 1
                    self._event("warn", f"{self.pending.name} waiting for {reason}")
                self._waiting_for = reason
                return
            self._set_mode(self.pending)
            self.pending = None
            self._waiting_for = ""

    def _active_command(self) -> JointCommand:
        assert self._target is not None and self._feedback is not None
        gains = self.config.gains.of(self.mode)
        q, dq = self._feedback.q, self._feedback.dq
        target = np.clip(self._target, self.lower, self.upper)
        if gains.kp > 0:
            torque = gains.kp * (target - q) - gains.kd * dq
            limited = np.clip(torque, -self.torque_limits, self.torque_limits)
            if (limited != torque).any():
                self.counters.torque_limited_ticks += 1
                target = np.clip(q + (limited + gains.kd * dq) / gains.kp, self.lower, self.upper)
        return JointCommand(motor_mode=MOTOR_MODE_SERVO, q=target, dq=self._zeros, kp=np.full_like(target, gains.kp),
                            kd=np.full_like(target, gains.kd), tau=self._zeros)

    def status(self, now: float) -> SafetyStatus:
        return SafetyStatus(
            mode=self.mode, pending=self.pending, latched=self.latched, estop=self.estop,
            target_age_s=self._age(self._target_time, now), state_age_s=self._age(self._feedback_time, now),
            waiting_for=self._waiting_for, power_w=self._power_w, power_count=self._power_count,
            mode_mismatch_run=self._mismatch_run,
            counters=dataclasses.replace(self.counters, faults=dict(self.counters.faults)),
        )

    # ---- helpers --------------------------------------------------------------------------------------
    def _fault(self, kind: FaultKind, detail: str, now: float) -> None:
        self.counters.faults[kind.name] = self.counters.faults.get(kind.name, 0) + 1
        self.pending = None
        if self.latched is None:
            self.latched = Fault(kind, detail, now)
            self._event("error", f"DAMPING: {self.latched}")
        self._set_mode(RobotMode.DAMPING)

    def _set_mode(self, mode: RobotMode) -> None:
        if mode != self.mode:
            self._event("info", f"mode {self.mode.name} -> {mode.name}")
            self.mode = mode

    def _event(self, level: str, text: str) -> None:
        self.events.append(Event(level, text))

    def _joint_list(self, mask: np.ndarray) -> str:
        return ", ".join(self.names[i] for i in np.flatnonzero(mask))

    @staticmethod
    def _age(stamp: float | None, now: float) -> float | None:
        return None if stamp is None else now - stamp

    @staticmethod
    def _age_text(age: float | None) -> str:
        return "never received" if age is None else f"received {age * 1e3:.0f} ms ago"
