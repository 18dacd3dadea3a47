"""The onboard controller's logic, free of ROS: messages in, joint targets and a robot mode out.

Timing (DEPLOY.md §7.4): the policy is triggered by joint states, not by a timer, so the state
it acts on is as fresh as the transport allows: a state whose stamp is at least one control
period (less half a state period) after the last policy step's state starts the next step. A
dropped state shifts the phase by one state period instead of slowing the control rate, as
counting every 4th message would. A timer calls `watchdog()` between states, so a silent robot
side is noticed without any state arriving.
Every tick goes through the `SafetyMachine`, which owns all decisions about what may be sent.

The policy's episode starts when the machine enters POLICY: the observation history is refilled
and the clock restarts, exactly as an env reset does in training.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dhal.deploy.log_schema import PolicyStepRecord
from dhal.deploy.observation import JointMapping, MessageError, ObservationBuilder, RobotSignals, signals_from_messages
from dhal.deploy.operator import JoyInterpreter, JoyMap
from dhal.deploy.runtime import OnnxPolicy, PolicyOutput
from dhal.deploy.safety import SafetyMachine
from dhal.deploy.safety_types import Command, Fault, FsmState, Request, RobotSensors
from dhal.deploy.safety_config import SafetyConfig
from dhal.deploy.topics import RobotMode


TIMING_WINDOW = 500  # steps (10 s at 50 Hz)


@dataclass(frozen=True)
class ControllerConfig:
    state_period_s: float = 0.005  # the robot side's state rate (200 Hz)
    # Optional unattended start for sim-in-the-loop runs: stand up as soon as PASSIVE is reached,
    # start the policy after standing this long. None: wait for the operator.
    auto_start_after_s: float | None = None
    # The unattended start stands up only from rest: a limp robot may still be folding onto its
    # stops, and a stand-up that starts from a moving pose lags its own interpolation.
    settle_joint_speed: float = 0.2  # rad/s, every joint
    settle_time_s: float = 0.5  # 0: do not wait
    max_forward_mps: float = 1.6  # commands are clipped to the training range
    max_yaw_rate: float = 0.8
    joy: JoyMap = field(default_factory=JoyMap)

    def __post_init__(self) -> None:
        if not self.state_period_s > 0:
            raise ValueError(f"state_period_s must be positive, got {self.state_period_s}")


@dataclass
class TickOutput:
    command: Command
    targets: np.ndarray | None  # publish these joint targets (contract order)
    mode_request: RobotMode | None  # publish this mode request (only when it changed)
    record: PolicyStepRecord | None  # the step to log


@dataclass
class _Latest:
    signals: RobotSignals | None = None
    joint_stamp_s: float = float("-inf")
    imu_quat_xyzw: tuple[float, ...] | None = None
    imu_gyro: tuple[float, ...] | None = None
    imu_stamp_s: float = float("-inf")
    estop: bool = False


class PolicyController:
    def __init__(self, policy: OnnxPolicy, safety: SafetyConfig, cfg: ControllerConfig = ControllerConfig(),
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.policy, self.cfg = policy, cfg
        self.contract = policy.contract
        self.safety = SafetyMachine(safety)
        self.builder = ObservationBuilder(self.contract)
        self.mapping = JointMapping(self.contract.joint_names)
        self.joy = JoyInterpreter(cfg.joy)
        self.command_velocity = np.zeros(3)
        self.latest = _Latest()
        self._clock = clock
        self._last_policy_stamp_s = float("-inf")
        self._policy_spacing_s = self.contract.control_dt - 0.5 * cfg.state_period_s
        self._step = 0
        self._last_mode: RobotMode | None = None
        self._policy_running = False
        self._last_tick_s: float | None = None
        self._stand_since: float | None = None
        self._settled_since: float | None = None
        # The last few hundred steps' timing, for the diagnostics topic (the log keeps all of it).
        self.timing: dict[str, deque[float]] = {
            name: deque(maxlen=TIMING_WINDOW) for name in ("inference_ms", "loop_period_ms", "state_age_ms")}
        self.notices: list[str] = []  # refusals and other operator-facing messages, drained by the node
        self._last_refusal: tuple[Request | None, float] = (None, float("-inf"))

    @property
    def steps(self) -> int:
        """Policy ticks so far (each logged as one PolicyStep)."""
        return self._step

    # ---- inputs ---------------------------------------------------------------------------------
    def on_imu(self, quat_xyzw: npt.ArrayLike, gyro: npt.ArrayLike, stamp_s: float) -> None:
        self.latest.imu_quat_xyzw = tuple(np.asarray(quat_xyzw, dtype=np.float64).reshape(-1))
        self.latest.imu_gyro = tuple(np.asarray(gyro, dtype=np.float64).reshape(-1))
        self.latest.imu_stamp_s = stamp_s

    def on_joint_state(self, names: Sequence[str], position: npt.ArrayLike, velocity: npt.ArrayLike,
                       stamp_s: float, now_s: float) -> TickOutput | None:
        """A policy tick when a control period has passed since the last one (by the states'
        stamps); a bad message is a fault tick."""
        if self.latest.imu_quat_xyzw is None or self.latest.imu_gyro is None:
            return None  # nothing to act on before the first IMU sample
        try:
            signals = signals_from_messages(self.mapping, names, position, velocity,
                                            self.latest.imu_quat_xyzw, self.latest.imu_gyro)
        except MessageError as error:
            return self.fault(Fault.BAD_MESSAGE, str(error), now_s)
        self.latest.signals, self.latest.joint_stamp_s = signals, stamp_s
        if stamp_s - self._last_policy_stamp_s < self._policy_spacing_s:
            return None
        self._last_policy_stamp_s = stamp_s
        return self.tick(now_s, policy_step=True)

    def on_estop(self, engaged: bool, now_s: float) -> TickOutput | None:
        self.latest.estop = bool(engaged)
        return self.tick(now_s, policy_step=False) if engaged else None

    def on_velocity_command(self, vx: float, vy: float, yaw_rate: float) -> None:
        """vy is accepted (it is in every Twist) and dropped: the task never commands a sideways speed."""
        c = self.cfg
        self.command_velocity = np.array([np.clip(vx, -c.max_forward_mps, c.max_forward_mps), 0.0,
                                          np.clip(yaw_rate, -c.max_yaw_rate, c.max_yaw_rate)])

    def on_joy(self, buttons: Sequence[int], axes: Sequence[float], now_s: float) -> None:
        requests, velocity = self.joy.update(buttons, axes, now_s)
        self.on_velocity_command(*velocity)
        for request in requests:
            self.request(request, now_s)

    def request(self, request: Request, now_s: float) -> bool:
        """Apply an operator request; a refusal is kept in `notices` (once per distinct reason)."""
        accepted = self.safety.request(request, now_s)
        # Auto-start retries every tick; say why it waits once per request and second, not 50 times.
        if not accepted and (request != self._last_refusal[0] or now_s - self._last_refusal[1] >= 1.0):
            self._last_refusal = (request, now_s)
            self.notices.append(self.safety.last_refusal)
        return accepted

    def on_robot_mode(self, mode: int, now_s: float) -> None:
        self.safety.observe_robot_mode(RobotMode(mode), now_s)

    def fault(self, fault: Fault, reason: str, now_s: float) -> TickOutput:
        self.safety.report_fault(fault, now_s, reason)
        return self.tick(now_s, policy_step=False)

    def watchdog(self, now_s: float) -> TickOutput:
        return self.tick(now_s, policy_step=False)

    # ---- the tick ---------------------------------------------------------------------------------
    def _sensors(self) -> RobotSensors | None:
        s = self.latest.signals
        if s is None:
            return None
        # The older of the two streams decides staleness: a dead IMU is as bad as dead encoders.
        stamp = min(self.latest.joint_stamp_s, self.latest.imu_stamp_s)
        return RobotSensors(stamp_s=stamp, q=s.joint_pos, dq=s.joint_vel, roll_pitch=s.roll_pitch(),
                            estop=self.latest.estop)

    def _auto_start(self, now_s: float) -> None:
        after = self.cfg.auto_start_after_s
        state = self.safety.state
        if after is None:
            return
        if state == FsmState.PASSIVE and self._settled(now_s):
            self.request(Request.STAND_UP, now_s)
        if state == FsmState.STAND:
            self._stand_since = now_s if self._stand_since is None else self._stand_since
            if now_s - self._stand_since >= after:
                self.request(Request.START_POLICY, now_s)
        else:
            self._stand_since = None

    def _settled(self, now_s: float) -> bool:
        """Whether every joint has been slower than `settle_joint_speed` for `settle_time_s`
        (always, with `settle_time_s` 0)."""
        if self.cfg.settle_time_s <= 0.0:
            return True
        signals = self.latest.signals
        if signals is None or not signals.finite or np.abs(signals.joint_vel).max() >= self.cfg.settle_joint_speed:
            self._settled_since = None
            return False
        self._settled_since = now_s if self._settled_since is None else self._settled_since
        return now_s - self._settled_since >= self.cfg.settle_time_s

    def tick(self, now_s: float, policy_step: bool) -> TickOutput:
        self._auto_start(now_s)
        sensors = self._sensors()
        state = self.safety.state
        output: PolicyOutput | None = None
        observation: np.ndarray | None = None
        inference_s: float | None = None
        acting = policy_step and sensors is not None and state in (FsmState.STAND, FsmState.POLICY)
        if state != FsmState.POLICY:
            self._policy_running = False
        if acting and self.latest.signals is not None and self.latest.signals.finite:
            if state == FsmState.POLICY and not self._policy_running:
                self.builder.start()
                self._policy_running = True
            # In STAND the policy runs unapplied: the session stays warm and its timing is known
            # before it may act; the history is refilled when POLICY starts.
            observation = self.builder.build(self.latest.signals, self.command_velocity)
            start = self._clock()
            output = self.policy(observation)
            inference_s = self._clock() - start
        in_policy = state == FsmState.POLICY and output is not None
        command = self.safety.update(
            now_s, sensors,
            action=output.actions if in_policy and output is not None else None,
            inference_s=inference_s if in_policy else None,
            observation_finite=bool(np.isfinite(observation).all()) if observation is not None else True)
        if in_policy and output is not None and command.state == FsmState.POLICY:
            self.builder.record_action(output.actions)
        mode_request = None if command.mode == self._last_mode else command.mode
        self._last_mode = command.mode
        record = self._record(now_s, command, observation, output, inference_s) if policy_step else None
        # Targets go out on state-triggered steps only: one command per control period, each
        # traceable to the state it answers; watchdog ticks only ever change the mode.
        targets = command.targets if policy_step else None
        return TickOutput(command=command, targets=targets, mode_request=mode_request, record=record)

    def _record(self, now_s: float, command: Command, observation: np.ndarray | None, output: PolicyOutput | None,
                inference_s: float | None) -> PolicyStepRecord:
        period = float("nan") if self._last_tick_s is None else (now_s - self._last_tick_s) * 1e3
        self._last_tick_s = now_s
        stamp = self.latest.joint_stamp_s
        empty = np.zeros(0, dtype=np.float32)
        record = PolicyStepRecord(
            stamp_ns=int(stamp * 1e9) if np.isfinite(stamp) else 0,
            step=self._step,
            fsm_state=int(command.state),
            robot_mode=int(command.mode),
            observation=empty if observation is None else observation,
            action=empty if output is None else output.actions,
            joint_targets=empty if command.targets is None else command.targets,
            policy_targets=empty if command.policy_targets is None else command.policy_targets,
            mode_probs=empty if output is None else output.mode_probs,
            latent=empty if output is None else output.latent,
            command=self.command_velocity.astype(np.float32),
            inference_ms=float("nan") if inference_s is None else inference_s * 1e3,
            state_age_ms=(now_s - stamp) * 1e3 if np.isfinite(stamp) else float("nan"),
            loop_period_ms=period,
            clamp_flags=int(command.clamps),
            fault_flags=int(command.faults),
        )
        for name in self.timing:
            value = getattr(record, name)
            if np.isfinite(value):
                self.timing[name].append(value)
        self._step += 1
        return record
