"""`Go1Bridge`: the 500 Hz loop between the UDP link and the safety logic, in its own thread.

Each tick reads the newest LowState, feeds it to `BridgeSafety`, asks it for the command and sends
one LowCmd. The schedule is absolute (deadline += period), so compute time does not make the loop
drift; a tick that ends after its deadline is counted as an overrun, and when the loop falls more
than a period behind it skips ahead instead of bursting. ROS callbacks reach the safety logic
through the thread-safe `submit_target` / `request_mode` / `set_estop`; the ROS node reads
`latest_state()` and `status()`.

If a tick raises (a bug), the loop logs it and sends the damping packet instead, and `stop()` ends
with damping packets, so the last command the motors hold is never a stiff one.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dhal.deploy.go1.config import BridgeConfig
from dhal.deploy.go1.joint_map import JointMap
from dhal.deploy.go1.packets import NUM_MOTORS, LowState, MotorCommands, pack_low_cmd
from dhal.deploy.go1.remote import RemoteState, decode_remote
from dhal.deploy.go1.safety import BridgeSafety, Event, JointCommand, JointFeedback, SafetyStatus, damping_command
from dhal.deploy.go1.transport import LinkCounters, UdpLink
from dhal.deploy.topics import RobotMode

# Damping packets sent by stop(): the motors keep the last command they received, so make sure it is
# damping even if a few datagrams are lost.
_EXIT_DAMPING_PACKETS = 10
_PERIOD_WINDOW = 1000  # ticks kept for the period statistics (2 s at 500 Hz)


@dataclass(frozen=True)
class RobotSnapshot:
    """The newest LowState, joints in contract order, as the ROS node publishes it."""

    sequence: int  # increments with every valid LowState
    wall_time_ns: int  # time.time_ns() at reception, the ROS system-clock stamp
    q: np.ndarray
    dq: np.ndarray
    tau_est: np.ndarray
    temperature: np.ndarray
    motor_mode: np.ndarray
    quaternion_wxyz: tuple[float, float, float, float]
    gyroscope: tuple[float, float, float]
    accelerometer: tuple[float, float, float]
    remote: RemoteState
    tick: int


@dataclass(frozen=True)
class LoopStats:
    ticks: int
    overruns: int
    skipped_periods: int
    tick_errors: int
    rate_hz: float
    period_p50_ms: float
    period_p99_ms: float
    period_max_ms: float
    tick_p99_ms: float  # compute time of a tick


@dataclass(frozen=True)
class BridgeStatus:
    safety: SafetyStatus
    link: LinkCounters
    loop: LoopStats
    snapshot: RobotSnapshot | None


class Go1Bridge:
    def __init__(self, config: BridgeConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.joint_map = JointMap(config.joint_names)
        self.safety = BridgeSafety(config)
        self.link = UdpLink(config.robot_host, config.robot_port, config.local_host, config.local_port)
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._snapshot: RobotSnapshot | None = None
        self._sequence = 0
        self._periods: deque[float] = deque(maxlen=_PERIOD_WINDOW)
        self._tick_times: deque[float] = deque(maxlen=_PERIOD_WINDOW)
        self._ticks = self._overruns = self._skipped = self._tick_errors = 0
        self._errors: deque[Event] = deque(maxlen=16)
        self._damping_packet = self._pack(damping_command(config.gains.damping.kd, NUM_MOTORS))

    # ---- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the bridge loop is already running")
        self._thread = threading.Thread(target=self._run, name="go1-bridge-500hz", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the loop, leave the motors damped, close the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for _ in range(_EXIT_DAMPING_PACKETS):
            self.link.send(self._damping_packet)
        self.link.close()

    def __enter__(self) -> Go1Bridge:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- inputs (any thread) --------------------------------------------------------------------------
    def submit_target(self, values: object) -> None:
        with self._lock:
            self.safety.submit_target(values, self._clock())

    def request_mode(self, value: int) -> None:
        with self._lock:
            self.safety.request_mode(value, self._clock())

    def set_estop(self, engaged: bool) -> None:
        with self._lock:
            self.safety.set_estop(engaged, self._clock())

    # ---- outputs (any thread) -------------------------------------------------------------------------
    @property
    def mode(self) -> RobotMode:
        return self.safety.mode

    def latest_state(self) -> RobotSnapshot | None:
        return self._snapshot

    def drain_events(self) -> list[Event]:
        with self._lock:
            events = list(self._errors) + list(self.safety.events)
            self._errors.clear()
            self.safety.events.clear()
        return events

    def status(self) -> BridgeStatus:
        with self._lock:
            safety = self.safety.status(self._clock())
            link = LinkCounters(**vars(self.link.counters))
            periods = np.array(self._periods) if self._periods else np.zeros(1)
            ticks = np.array(self._tick_times) if self._tick_times else np.zeros(1)
            counts = (self._ticks, self._overruns, self._skipped, self._tick_errors)
        loop = LoopStats(
            ticks=counts[0], overruns=counts[1], skipped_periods=counts[2], tick_errors=counts[3],
            rate_hz=float(1.0 / periods.mean()) if periods.mean() > 0 else 0.0,
            period_p50_ms=float(np.percentile(periods, 50) * 1e3),
            period_p99_ms=float(np.percentile(periods, 99) * 1e3),
            period_max_ms=float(periods.max() * 1e3),
            tick_p99_ms=float(np.percentile(ticks, 99) * 1e3),
        )
        return BridgeStatus(safety=safety, link=link, loop=loop, snapshot=self._snapshot)

    # ---- the loop ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        period = 1.0 / self.config.loop_rate_hz
        deadline = self._clock()
        previous_start: float | None = None
        while not self._stop.is_set():
            start = self._clock()
            try:
                self._tick(start)
                failure = None
            except Exception:  # noqa: BLE001 - the loop must keep the motors damped whatever happens
                failure = traceback.format_exc()
                self.link.send(self._damping_packet)
            end = self._clock()
            deadline += period
            late = end - deadline
            missed = int(late / period) if late > 0 else 0
            with self._lock:  # status() reads these from another thread
                if previous_start is not None:
                    self._periods.append(start - previous_start)
                self._tick_times.append(end - start)
                self._ticks += 1
                if failure is not None:
                    self._tick_errors += 1
                    self._errors.append(Event("error", f"bridge tick failed, sent damping:\n{failure}"))
                if late > 0:
                    self._overruns += 1
                    self._skipped += missed
            previous_start = start
            if late > 0:
                deadline += missed * period  # fall behind by more than a period: skip, do not burst
            else:
                time.sleep(-late)

    def _tick(self, now: float) -> None:
        state = self.link.receive_latest()
        with self._lock:
            if state is not None:
                self._ingest(state, now)
            command = self.safety.command(now)
        self.link.send(self._pack(command))

    def _ingest(self, state: LowState, now: float) -> None:
        to_contract = self.joint_map.to_contract
        feedback = JointFeedback(
            q=to_contract(state.q), dq=to_contract(state.dq), tau_est=to_contract(state.tau_est),
            temperature=to_contract(state.temperature), motor_mode=to_contract(state.motor_mode),
        )
        self.safety.update_feedback(feedback, now)
        self._sequence += 1
        self._snapshot = RobotSnapshot(
            sequence=self._sequence, wall_time_ns=time.time_ns(), q=feedback.q, dq=feedback.dq,
            tau_est=feedback.tau_est, temperature=feedback.temperature, motor_mode=feedback.motor_mode,
            quaternion_wxyz=state.quaternion_wxyz, gyroscope=state.gyroscope, accelerometer=state.accelerometer,
            remote=decode_remote(state.wireless_remote), tick=state.tick,
        )

    def _pack(self, command: JointCommand) -> bytes:
        to_sdk = self.joint_map.to_sdk
        return pack_low_cmd(MotorCommands(
            mode=np.full(NUM_MOTORS, command.motor_mode, dtype=np.uint8), q=to_sdk(command.q),
            dq=to_sdk(command.dq), tau=to_sdk(command.tau), kp=to_sdk(command.kp), kd=to_sdk(command.kd),
        ))

