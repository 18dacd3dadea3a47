"""The safety layer of the onboard controller: the state machine of DEPLOY.md §7.3 and its faults.
Its thresholds are a `SafetyConfig` (`dhal.deploy.safety_config`), its states, faults, inputs
and outputs are in `dhal.deploy.safety_types`.

Pure Python + numpy (no ROS, no torch), deterministic: every time is passed in, nothing reads a
clock, so a log replays to the same decisions. The policy node owns one `SafetyMachine` and calls

* `update(now_s, sensors, action, inference_s, observation_finite)` on every state message (a
  policy step when it passes an action) and from its watchdog timer (action=None), and publishes
  what the returned `Command` says: `mode` on change, `targets` when not None;
* `request(Request..., now_s)` for operator inputs (the joystick mapping, including "hold the
  button 0.5 s", lives in the node);
* `report_fault(...)` for faults it detects itself (a malformed message: BAD_MESSAGE), and
  `observe_robot_mode(...)` with every mode the robot side reports.

States and what they ask of the robot (targets are always inside the soft joint limits):

    state     requested RobotMode                   targets published
    INIT      PASSIVE                               none
    PASSIVE   PASSIVE                               none
    STAND_UP  ACTIVE_STAND                          cosine interpolation, measured pose -> default pose
    STAND     ACTIVE_STAND                          the default (hold) pose, every update
    POLICY    ACTIVE_POLICY (dry run: ACTIVE_STAND) clamped policy targets on policy steps, nothing on
                                                    watchdog ticks (dry run: the hold pose, every update)
    SIT_DOWN  ACTIVE_STAND                          cosine interpolation, last targets -> lying pose
    DAMPING   DAMPING                               none (latched until RESET)

Transitions: INIT -> PASSIVE when a well-formed, finite, fresh state with the e-stop clear arrives.
PASSIVE -STAND_UP-> STAND_UP -(stand_up_time_s)-> STAND -START_POLICY-> POLICY; SIT_DOWN from STAND
or POLICY -> SIT_DOWN -(sit_down_time_s)-> PASSIVE; DAMP from anywhere -> DAMPING; RESET from
DAMPING only (e-stop clear, state fresh) -> PASSIVE. STAND_UP and START_POLICY also need the
latest state fresh, finite, e-stop clear, upright and within the joint limits; SIT_DOWN and DAMP
are always allowed from their states. A refused request returns False and says why in
`last_refusal`. Accepted requests change `state` at once; the next `update()` reports
`entered=True`, and STAND_UP/SIT_DOWN take their start pose and start time from that update: the
stand-up starts from the newest measured pose (its first target *is* q, clipped to the soft
limits), the sit-down from the last published targets (no jump).

Faults, and where they trip (to DAMPING, in the very update that sees them):

* actuating states (STAND_UP, STAND, POLICY, SIT_DOWN): everything below.
* PASSIVE: only the e-stop (and external faults). A stale, missing or non-finite state keeps the
  machine in PASSIVE (nothing is actuated, and the e-stop/damping path does not depend on this
  process) and makes STAND_UP refuse. Tilt and joint limits are not checked: a lying, carried or
  upside-down robot may be anywhere; STAND_UP refuses until the robot is upright and in range.
* INIT: nothing trips from the state stream (an e-stop held at boot is normal; INIT has never
  actuated and waits for the e-stop to clear). External faults trip from every state, INIT included.
* DAMPING: stays DAMPING; faults seen are still reported in `Command.faults`.

`Command.faults` lists every fault condition found this tick among those checked in the current
state (plus faults reported since the last update), whether or not it tripped. The checks:
e-stop (ESTOP); no sensors, or a stamp older than state_timeout_s or more than state_timeout_s in
the future (STALE_STATE: a future stamp would otherwise stay "fresh" after the stream stops);
sensors of the wrong size (BAD_MESSAGE); NaN/Inf in q, dq or roll/pitch (NONFINITE_OBSERVATION);
|roll| or |pitch| > max_tilt_rad (TILT); a measured joint more than joint_limit_margin_rad outside
the soft limits (JOINT_LIMIT); in STAND_UP a measured joint more than stand_up_max_error_rad from
the interpolated target (STAND_UP_ERROR). In POLICY also: observation_finite False
(NONFINITE_OBSERVATION); a policy step (action or inference_s given) whose action is missing, NaN
or Inf (NONFINITE_ACTION) or of the wrong size (BAD_MESSAGE); inference_s > max_inference_s on
max_consecutive_overruns consecutive policy steps (INFERENCE_OVERRUN; watchdog ticks neither
count nor reset); no action for more than action_timeout_s (INFERENCE_OVERRUN, seen by watchdog
ticks: the policy stopped producing actions).

Clamps: see `dhal.deploy.clamps`. In POLICY the previous targets for the rate
limit are the last policy targets: the hold pose at POLICY entry, then each step's result. In a
dry run those are the targets that *would* have been published, so the logged `policy_targets`
are exactly what a live run would send given the same inputs.

Not done here (the robot side's job, DEPLOY.md §7.3): gains per mode, the stale-target watchdog,
PowerProtect, motor temperature and motor modes. The stand-up and sit-down trajectories are only
limited to the soft limits; their torques depend on the robot side's ACTIVE_STAND gains.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from dhal.deploy.clamps import Clamp, clamp_policy_targets
from dhal.deploy.safety_config import SafetyConfig
from dhal.deploy.safety_types import ACTUATING_STATES, Command, Fault, FsmState, Request, RobotSensors
from dhal.deploy.topics import RobotMode

__all__ = ["SafetyMachine"]


def _smooth(fraction: float) -> float:
    """Cosine ease 0 -> 1 with zero slope at both ends."""
    f = min(max(fraction, 0.0), 1.0)
    return 0.5 - 0.5 * math.cos(math.pi * f)


def _interpolate(start: np.ndarray, end: np.ndarray, s: float) -> np.ndarray:
    # (1 - s) * start + s * end: exactly `start` at s = 0 and exactly `end` at s = 1.
    return (1.0 - s) * start + s * end


class SafetyMachine:
    """The safety FSM (see the module docstring). Not thread-safe: call it from one thread."""

    def __init__(self, cfg: SafetyConfig) -> None:
        self._cfg = cfg
        v = cfg.vectors
        self._low = v.soft_lower
        self._high = v.soft_upper
        self._hold = np.clip(v.default_pose, v.soft_lower, v.soft_upper)
        self._lying = np.clip(v.lying_pose, v.soft_lower, v.soft_upper)
        self._state = FsmState.INIT
        self._mode = RobotMode.PASSIVE
        # Modes requested before the current one that the robot has not yet been seen to leave.
        self._modes_in_flight: set[RobotMode] = set()
        self._entered = False
        self._pending_faults = Fault.NONE
        self._pending_reasons: list[str] = []
        self._anchor_pending = False
        self._trajectory_start = self._hold.copy()
        self._trajectory_t0 = 0.0
        self._last_sensors: RobotSensors | None = None
        self._last_published: np.ndarray | None = None
        self._policy_previous = self._hold.copy()
        self._overruns = 0
        self._last_action_s = 0.0
        self._damping_reason = ""
        self._reason = "waiting for the first robot state"
        self.last_refusal = ""

    # ---- read-only views ----------------------------------------------------------------------
    @property
    def config(self) -> SafetyConfig:
        return self._cfg

    @property
    def state(self) -> FsmState:
        return self._state

    @property
    def requested_mode(self) -> RobotMode:
        return self._mode

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def damping_reason(self) -> str:
        """Why the machine went to DAMPING (the first cause, kept while latched)."""
        return self._damping_reason

    @property
    def hold_pose(self) -> np.ndarray:
        return self._hold.copy()

    # ---- transitions --------------------------------------------------------------------------
    def _mode_for(self, state: FsmState) -> RobotMode:
        if state == FsmState.DAMPING:
            return RobotMode.DAMPING
        if state in (FsmState.STAND_UP, FsmState.STAND, FsmState.SIT_DOWN):
            return RobotMode.ACTIVE_STAND
        if state == FsmState.POLICY:
            return RobotMode.ACTIVE_STAND if self._cfg.dry_run else RobotMode.ACTIVE_POLICY
        return RobotMode.PASSIVE  # INIT, PASSIVE

    def _set_state(self, new: FsmState, now_s: float, reason: str) -> None:
        if new == self._state:
            return
        self._state = new
        self._entered = True
        self._reason = reason
        mode = self._mode_for(new)
        if mode != self._mode:
            self._modes_in_flight.add(self._mode)
            self._mode = mode
        if new in (FsmState.STAND_UP, FsmState.SIT_DOWN):
            self._anchor_pending = True
        if new == FsmState.POLICY:
            self._policy_previous = self._hold.copy()
            self._overruns = 0
            self._last_action_s = now_s
        if new == FsmState.DAMPING:
            self._damping_reason = reason
        if new not in ACTUATING_STATES:
            self._last_published = None

    def _trip(self, now_s: float, reason: str) -> None:
        self._set_state(FsmState.DAMPING, now_s, reason)

    # ---- checks -------------------------------------------------------------------------------
    def _check_stream(self, now_s: float, sensors: RobotSensors | None) -> tuple[Fault, list[str]]:
        """E-stop, freshness, size and finiteness of the state stream."""
        cfg = self._cfg
        if sensors is None:
            return Fault.STALE_STATE, ["no robot state"]
        faults = Fault.NONE
        reasons: list[str] = []
        if sensors.estop:
            faults |= Fault.ESTOP
            reasons.append("e-stop")
        age = now_s - sensors.stamp_s
        if not (-cfg.state_timeout_s <= age <= cfg.state_timeout_s):
            faults |= Fault.STALE_STATE
            reasons.append(f"robot state age {age * 1e3:.1f} ms (limit {cfg.state_timeout_s * 1e3:.1f} ms)")
        n = cfg.num_joints
        if sensors.q.shape != (n,) or sensors.dq.shape != (n,) or sensors.roll_pitch.shape != (2,):
            faults |= Fault.BAD_MESSAGE
            reasons.append(f"robot state has {sensors.q.shape} joints, expected {n}")
            return faults, reasons
        bad = [name for name in ("q", "dq", "roll_pitch") if not np.all(np.isfinite(getattr(sensors, name)))]
        if bad:
            faults |= Fault.NONFINITE_OBSERVATION
            reasons.append(f"NaN/Inf in the robot state ({', '.join(bad)})")
        return faults, reasons

    def _check_pose(self, sensors: RobotSensors) -> tuple[Fault, list[str]]:
        """Tilt and measured joint limits (a well-formed, finite state)."""
        cfg = self._cfg
        faults = Fault.NONE
        reasons: list[str] = []
        roll, pitch = (float(x) for x in sensors.roll_pitch)
        if abs(roll) > cfg.max_tilt_rad or abs(pitch) > cfg.max_tilt_rad:
            faults |= Fault.TILT
            reasons.append(f"tilt roll {roll:.2f} pitch {pitch:.2f} rad (limit {cfg.max_tilt_rad:.2f})")
        margin = cfg.joint_limit_margin_rad
        outside = (sensors.q < self._low - margin) | (sensors.q > self._high + margin)
        if np.any(outside):
            faults |= Fault.JOINT_LIMIT
            details = ", ".join(
                f"{cfg.joint_names[i]} = {sensors.q[i]:.3f} (soft [{self._low[i]:.3f}, {self._high[i]:.3f}])"
                for i in np.flatnonzero(outside))
            reasons.append(f"joint outside soft limits by more than {margin} rad: {details}")
        return faults, reasons

    def _ready(self, now_s: float, *, pose: bool) -> str | None:
        """Why the latest state does not allow a transition that will (or may) actuate; None if it does."""
        sensors = self._last_sensors
        if sensors is None:
            return "no robot state yet"
        faults, reasons = self._check_stream(now_s, sensors)
        if not faults and pose:
            faults, reasons = self._check_pose(sensors)
        return "; ".join(reasons) if faults else None

    # ---- operator and external inputs ---------------------------------------------------------
    def request(self, request: Request, now_s: float) -> bool:
        """Apply an operator request now if it is allowed; False (reason in `last_refusal`) if not."""
        state = self._state
        why: str | None = None
        if request == Request.DAMP:
            if state != FsmState.DAMPING:
                self._set_state(FsmState.DAMPING, now_s, "operator requested damping")
            return True
        if request == Request.RESET:
            if state != FsmState.DAMPING:
                why = f"RESET only leaves DAMPING (state is {state.name})"
            else:
                why = self._ready(now_s, pose=False)
            if why is None:
                self._set_state(FsmState.PASSIVE, now_s, "operator reset from DAMPING")
                self._damping_reason = ""
        elif request == Request.STAND_UP:
            if state != FsmState.PASSIVE:
                why = f"STAND_UP only from PASSIVE (state is {state.name})"
            else:
                why = self._ready(now_s, pose=True)
            if why is None:
                self._set_state(FsmState.STAND_UP, now_s, "operator requested stand-up")
        elif request == Request.START_POLICY:
            if state != FsmState.STAND:
                why = f"START_POLICY only from STAND (state is {state.name})"
            else:
                why = self._ready(now_s, pose=True)
            if why is None:
                self._set_state(FsmState.POLICY, now_s,
                                "policy started (dry run: not actuated)" if self._cfg.dry_run else "policy started")
        elif request == Request.SIT_DOWN:
            if state not in (FsmState.STAND, FsmState.POLICY):
                why = f"SIT_DOWN only from STAND or POLICY (state is {state.name})"
            else:
                self._set_state(FsmState.SIT_DOWN, now_s, "operator requested sit-down")
        else:  # pragma: no cover - exhaustive over Request
            raise ValueError(f"unknown request {request!r}")
        if why is not None:
            self.last_refusal = f"{request.name} refused: {why}"
            return False
        return True

    def report_fault(self, fault: Fault, now_s: float, reason: str) -> None:
        """A fault found outside the machine (e.g. BAD_MESSAGE): DAMPING now, from every state.
        The next `update()` reports it in `Command.faults`."""
        fault = Fault(fault)
        if fault == Fault.NONE:
            raise ValueError("report_fault needs a fault, got Fault.NONE")
        self._pending_faults |= fault
        self._pending_reasons.append(f"{fault.name}: {reason}" if fault.name else reason)
        self._trip(now_s, f"{fault.name}: {reason}" if fault.name else reason)

    def observe_robot_mode(self, reported: RobotMode, now_s: float) -> Fault:
        """Check a mode reported by the robot side against what was requested.

        Accepted: the requested mode; a mode requested earlier that the robot has not yet been seen
        to leave (the switch is in flight); any unactuated mode (PASSIVE/DAMPING) while an unactuated
        mode is requested. Anything else (the robot actuating unasked, or dropping out of the
        requested active mode after reaching it) is reported as Fault.ROBOT_MODE -> DAMPING.
        """
        reported = RobotMode(reported)
        if reported == self._mode:
            self._modes_in_flight.clear()
            return Fault.NONE
        unactuated = (RobotMode.PASSIVE, RobotMode.DAMPING)
        if reported in self._modes_in_flight or (reported in unactuated and self._mode in unactuated):
            return Fault.NONE
        self.report_fault(Fault.ROBOT_MODE, now_s,
                          f"robot reports {reported.name}, requested {self._mode.name}")
        return Fault.ROBOT_MODE

    # ---- the tick -----------------------------------------------------------------------------
    def update(
        self,
        now_s: float,
        sensors: RobotSensors | None,
        action: ArrayLike | None = None,
        inference_s: float | None = None,
        observation_finite: bool = True,
    ) -> Command:
        """Decide this tick. A policy step passes the action (and its inference time); a watchdog
        tick passes action=None. Faults go to DAMPING in this very call."""
        faults = self._pending_faults
        reasons = list(self._pending_reasons)
        self._pending_faults = Fault.NONE
        self._pending_reasons = []
        targets: np.ndarray | None = None
        policy_targets: np.ndarray | None = None
        clamps = Clamp.NONE

        stream_faults, stream_reasons = self._check_stream(now_s, sensors)
        # What requests judge readiness by: the latest state, or nothing if it was missing or malformed.
        self._last_sensors = None if sensors is None or stream_faults & Fault.BAD_MESSAGE else sensors
        state = self._state

        if state == FsmState.INIT:
            faults |= stream_faults
            if stream_faults:
                self._reason = "INIT: waiting for " + "; ".join(stream_reasons)
            else:
                self._set_state(FsmState.PASSIVE, now_s, "robot state valid and e-stop clear")
        elif state == FsmState.PASSIVE:
            faults |= stream_faults
            if stream_faults & Fault.ESTOP:
                self._trip(now_s, "e-stop")
            elif stream_faults:
                self._reason = "PASSIVE (stand-up refused while: " + "; ".join(stream_reasons) + ")"
            else:
                self._reason = "PASSIVE"
        elif state == FsmState.DAMPING:
            faults |= stream_faults
        else:
            assert sensors is not None or stream_faults
            faults |= stream_faults
            reasons += stream_reasons
            if not stream_faults:
                assert sensors is not None
                pose_faults, pose_reasons = self._check_pose(sensors)
                faults |= pose_faults
                reasons += pose_reasons
                if not pose_faults:
                    if state == FsmState.STAND_UP:
                        targets, more, why = self._stand_up(now_s, sensors)
                    elif state == FsmState.STAND:
                        targets, more, why = self._hold.copy(), Fault.NONE, ""
                        self._reason = "STAND: holding the default pose"
                    elif state == FsmState.SIT_DOWN:
                        targets, more, why = self._sit_down(now_s, sensors)
                    else:
                        targets, policy_targets, clamps, more, why = self._policy(
                            now_s, sensors, action, inference_s, observation_finite)
                    faults |= more
                    if why:
                        reasons.append(why)
            if faults:
                targets = None
                policy_targets = None
                clamps = Clamp.NONE
                self._trip(now_s, "; ".join(reasons))

        if self._state == FsmState.DAMPING:
            targets = None
            self._reason = f"DAMPING (latched until RESET): {self._damping_reason}"
            if stream_faults and state == FsmState.DAMPING:
                self._reason += "; now: " + "; ".join(stream_reasons)
        if targets is not None:
            # Belt and braces: every published target is inside the soft limits.
            targets = np.clip(targets, self._low, self._high)
            self._last_published = targets.copy()
        entered = self._entered
        self._entered = False
        return Command(
            state=self._state,
            mode=self._mode,
            targets=targets,
            policy_targets=policy_targets,
            faults=faults,
            clamps=clamps,
            entered=entered,
            reason=self._reason,
        )

    def _anchor(self, now_s: float, start: np.ndarray) -> None:
        if self._anchor_pending:
            self._trajectory_start = np.clip(start, self._low, self._high)
            self._trajectory_t0 = now_s
            self._anchor_pending = False

    def _stand_up(self, now_s: float, sensors: RobotSensors) -> tuple[np.ndarray | None, Fault, str]:
        cfg = self._cfg
        self._anchor(now_s, sensors.q)
        elapsed = now_s - self._trajectory_t0
        target = np.clip(_interpolate(self._trajectory_start, self._hold, _smooth(elapsed / cfg.stand_up_time_s)),
                         self._low, self._high)
        error = np.abs(sensors.q - target)
        worst = int(np.argmax(error))
        if error[worst] > cfg.stand_up_max_error_rad:
            return None, Fault.STAND_UP_ERROR, (
                f"stand-up: {cfg.joint_names[worst]} lags its target by {error[worst]:.3f} rad "
                f"(limit {cfg.stand_up_max_error_rad})")
        if elapsed >= cfg.stand_up_time_s:
            self._set_state(FsmState.STAND, now_s, "stand-up done")
            self._reason = "STAND: holding the default pose"
            return self._hold.copy(), Fault.NONE, ""
        self._reason = f"STAND_UP: {min(elapsed / cfg.stand_up_time_s, 1.0) * 100:.0f}%"
        return target, Fault.NONE, ""

    def _sit_down(self, now_s: float, sensors: RobotSensors) -> tuple[np.ndarray | None, Fault, str]:
        cfg = self._cfg
        self._anchor(now_s, self._last_published if self._last_published is not None else sensors.q)
        elapsed = now_s - self._trajectory_t0
        if elapsed >= cfg.sit_down_time_s:
            self._set_state(FsmState.PASSIVE, now_s, "sit-down done")
            return None, Fault.NONE, ""
        target = _interpolate(self._trajectory_start, self._lying, _smooth(elapsed / cfg.sit_down_time_s))
        self._reason = f"SIT_DOWN: {elapsed / cfg.sit_down_time_s * 100:.0f}%"
        return np.clip(target, self._low, self._high), Fault.NONE, ""

    def _policy(
        self,
        now_s: float,
        sensors: RobotSensors,
        action: ArrayLike | None,
        inference_s: float | None,
        observation_finite: bool,
    ) -> tuple[np.ndarray | None, np.ndarray | None, Clamp, Fault, str]:
        cfg = self._cfg
        hold = self._hold.copy() if cfg.dry_run else None
        faults = Fault.NONE
        reasons: list[str] = []
        if not observation_finite:
            faults |= Fault.NONFINITE_OBSERVATION
            reasons.append("NaN/Inf in the policy observation")
        if action is None and inference_s is None:  # watchdog tick
            idle = now_s - self._last_action_s
            if idle > cfg.action_timeout_s:
                faults |= Fault.INFERENCE_OVERRUN
                reasons.append(f"no policy action for {idle * 1e3:.1f} ms (limit {cfg.action_timeout_s * 1e3:.1f} ms)")
            if faults:
                return None, None, Clamp.NONE, faults, "; ".join(reasons)
            self._reason = "POLICY (dry run)" if cfg.dry_run else "POLICY"
            return hold, None, Clamp.NONE, Fault.NONE, ""

        # A policy step.
        a: np.ndarray | None = None
        if action is None:
            faults |= Fault.NONFINITE_ACTION
            reasons.append("policy step without an action")
        else:
            a = np.array(action, dtype=np.float64)
            if a.shape != (cfg.num_joints,):
                faults |= Fault.BAD_MESSAGE
                reasons.append(f"action has shape {a.shape}, expected ({cfg.num_joints},)")
            elif not np.all(np.isfinite(a)):
                faults |= Fault.NONFINITE_ACTION
                reasons.append(f"NaN/Inf in the action at joints {np.flatnonzero(~np.isfinite(a)).tolist()}")
        if inference_s is not None and not inference_s <= cfg.max_inference_s:  # NaN counts as an overrun
            self._overruns += 1
            if self._overruns >= cfg.max_consecutive_overruns:
                faults |= Fault.INFERENCE_OVERRUN
                reasons.append(f"inference {inference_s * 1e3:.2f} ms over {cfg.max_inference_s * 1e3:.2f} ms "
                               f"on {self._overruns} consecutive policy steps")
        else:
            self._overruns = 0
        if faults:
            return None, None, Clamp.NONE, faults, "; ".join(reasons)
        assert a is not None
        self._last_action_s = now_s
        policy_targets, clamps = clamp_policy_targets(a, sensors.q, sensors.dq, self._policy_previous, cfg)
        self._policy_previous = policy_targets.copy()
        self._reason = "POLICY (dry run)" if cfg.dry_run else "POLICY"
        if clamps:
            self._reason += f", clamped: {clamps!r}"
        return (hold if cfg.dry_run else policy_targets.copy()), policy_targets, clamps, Fault.NONE, ""

