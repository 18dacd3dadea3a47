"""The bridge's mode machine, watchdogs, clamps and motor checks, on synthetic time."""

from __future__ import annotations

import numpy as np
import pytest

from dhal.deploy.go1.config import BridgeConfig
from dhal.deploy.go1.packets import MOTOR_MODE_SERVO, POS_STOP_F, VEL_STOP_F
from dhal.deploy.go1.safety import POWER_COUNT_TRIP, BridgeSafety, FaultKind, JointCommand, JointFeedback
from dhal.deploy.topics import RobotMode
from dhal.envs.robots import go1

POSE = np.array(go1.DEFAULT_POSE)
PERIOD = 0.002
N = len(go1.JOINT_NAMES)


def feedback(q=POSE, dq=0.0, tau=0.0, temperature=40, mode=MOTOR_MODE_SERVO) -> JointFeedback:
    return JointFeedback(q=np.asarray(q, dtype=float), dq=np.full(N, dq), tau_est=np.full(N, tau),
                         temperature=np.full(N, temperature), motor_mode=np.full(N, mode))


def assert_passive(command: JointCommand) -> None:
    assert (command.kp == 0).all() and (command.kd == 0).all()
    assert (command.q == POS_STOP_F).all() and (command.dq == VEL_STOP_F).all() and (command.tau == 0).all()


def assert_damping(command: JointCommand, config: BridgeConfig) -> None:
    assert command.motor_mode == MOTOR_MODE_SERVO
    assert (command.kp == 0).all() and (command.kd == config.gains.damping.kd).all()
    assert (command.q == POS_STOP_F).all() and (command.dq == 0).all()


class Rig:
    """A BridgeSafety fed like the bridge feeds it, with a hand-cranked clock."""

    def __init__(self, **overrides):
        self.config = BridgeConfig(**overrides)
        self.safety = BridgeSafety(self.config)
        self.now = 100.0

    def tick(self, seconds: float = PERIOD, state: JointFeedback | None = None) -> JointCommand:
        self.now += seconds
        self.safety.update_feedback(state or feedback(), self.now)
        return self.safety.command(self.now)

    def activate(self, mode: RobotMode = RobotMode.ACTIVE_STAND, target=POSE) -> JointCommand:
        self.safety.request_mode(mode, self.now)
        self.safety.submit_target(target, self.now)
        command = self.tick()
        assert self.safety.mode == mode
        return command

    def fault(self) -> FaultKind:
        assert self.safety.latched is not None
        return self.safety.latched.kind

    def detail(self) -> str:
        assert self.safety.latched is not None
        return self.safety.latched.detail


def test_starts_passive_with_zero_torque_even_with_targets_and_state():
    rig = Rig()
    rig.safety.submit_target(POSE + 0.3, rig.now)
    for _ in range(10):
        assert_passive(rig.tick())
    assert rig.safety.mode == RobotMode.PASSIVE


def test_active_request_waits_for_a_fresh_target_then_uses_the_mode_gains():
    rig = Rig()
    rig.safety.request_mode(RobotMode.ACTIVE_STAND, rig.now)
    assert_passive(rig.tick())
    assert rig.safety.pending == RobotMode.ACTIVE_STAND and "target" in rig.safety.status(rig.now).waiting_for
    target = POSE + 0.05
    rig.safety.submit_target(target, rig.now)
    command = rig.tick()
    assert rig.safety.mode == RobotMode.ACTIVE_STAND and rig.safety.pending is None
    np.testing.assert_allclose(command.q, target)
    assert (command.kp == rig.config.gains.stand.kp).all() and (command.kd == rig.config.gains.stand.kd).all()
    rig.safety.request_mode(RobotMode.ACTIVE_POLICY, rig.now)
    rig.safety.submit_target(target, rig.now)
    command = rig.tick()
    assert (command.kp == go1.KP).all() and (command.kd == go1.KD).all()


def test_an_old_target_does_not_satisfy_an_active_request():
    rig = Rig()
    rig.safety.submit_target(POSE, rig.now)
    rig.tick(0.2)
    rig.safety.request_mode(RobotMode.ACTIVE_STAND, rig.now)
    assert_passive(rig.tick())
    assert rig.safety.mode == RobotMode.PASSIVE


def test_entry_waits_while_the_target_is_far_from_the_measured_pose():
    rig = Rig()
    rig.safety.request_mode(RobotMode.ACTIVE_STAND, rig.now)
    far = POSE.copy()
    far[4] += 0.8  # FL thigh, within limits but far from q
    rig.safety.submit_target(far, rig.now)
    assert_passive(rig.tick())
    assert "FL_thigh_joint" in rig.safety.status(rig.now).waiting_for
    assert rig.safety.counters.entry_refusals == 1
    rig.safety.submit_target(POSE + 0.1, rig.now)
    rig.tick()
    assert rig.safety.mode == RobotMode.ACTIVE_STAND


def test_no_fresh_target_for_the_timeout_means_damping_and_latches():
    rig = Rig()
    rig.activate()
    steps = round(rig.config.command_timeout_s / PERIOD)
    for _ in range(steps - 2):  # activate() ticked once already
        rig.tick()
    assert rig.safety.mode == RobotMode.ACTIVE_STAND  # 48 ms after the last target
    rig.tick(2 * PERIOD)  # 52 ms
    assert rig.safety.mode == RobotMode.DAMPING and rig.fault() == FaultKind.STALE_TARGETS
    assert_damping(rig.safety.command(rig.now), rig.config)
    # fresh targets and a new active request do not undo the latch ...
    rig.safety.submit_target(POSE, rig.now)
    rig.safety.request_mode(RobotMode.ACTIVE_STAND, rig.now)
    assert_damping(rig.tick(), rig.config)
    assert any("refused" in e.text for e in rig.safety.events)
    # ... an acknowledgement (DAMPING request) and then a new active request do
    rig.safety.request_mode(RobotMode.DAMPING, rig.now)
    assert rig.safety.latched is None
    rig.activate()


def test_stale_state_while_active_means_damping():
    rig = Rig()
    rig.activate()
    rig.now += rig.config.state_timeout_s + PERIOD
    rig.safety.submit_target(POSE, rig.now)
    rig.safety.command(rig.now)
    assert rig.fault() == FaultKind.STALE_STATE


def test_estop_damps_from_any_mode_and_blocks_acknowledgement_until_released():
    rig = Rig()
    rig.activate(RobotMode.ACTIVE_POLICY)
    rig.safety.set_estop(True, rig.now)
    rig.safety.submit_target(POSE, rig.now)
    assert_damping(rig.tick(), rig.config)
    assert rig.fault() == FaultKind.ESTOP
    rig.safety.request_mode(RobotMode.PASSIVE, rig.now)
    assert rig.safety.mode == RobotMode.DAMPING and rig.safety.latched is not None
    rig.safety.set_estop(False, rig.now)
    rig.safety.request_mode(RobotMode.ACTIVE_POLICY, rig.now)
    assert rig.safety.pending is None  # still latched
    rig.safety.request_mode(RobotMode.PASSIVE, rig.now)
    assert_passive(rig.tick())
    rig.activate(RobotMode.ACTIVE_POLICY)


def test_estop_in_passive_also_damps():
    rig = Rig()
    rig.safety.set_estop(True, rig.now)
    assert_damping(rig.tick(), rig.config)


@pytest.mark.parametrize("target, message", [
    (np.zeros(11), "11 values"),
    (np.where(np.arange(N) == 3, np.nan, POSE), "FL_hip_joint"),
    (np.where(np.arange(N) == 11, np.inf, POSE), "RL_calf_joint"),
])
def test_malformed_targets_damp_with_an_error_naming_the_problem(target, message):
    rig = Rig()
    rig.activate()
    rig.safety.submit_target(target, rig.now)
    assert_damping(rig.tick(), rig.config)
    assert rig.fault() == FaultKind.BAD_TARGET and message in rig.detail()
    assert rig.safety.counters.targets_rejected == 1


def test_targets_slightly_out_of_range_are_clamped_far_ones_damp():
    rig = Rig()
    rig.activate()
    lower, upper = np.array(rig.config.position_limits).T
    slightly = POSE.copy()
    slightly[0] = upper[0] + 0.5 * rig.config.target_fault_margin_rad  # FR hip
    rig.safety.submit_target(slightly, rig.now)
    command = rig.tick(state=feedback(q=slightly))  # measured at the target: no torque clamp
    assert rig.safety.mode == RobotMode.ACTIVE_STAND
    assert command.q[0] == upper[0] and rig.safety.counters.targets_clamped == 1
    far = POSE.copy()
    far[8] = lower[8] - 2 * rig.config.target_fault_margin_rad  # RR calf
    rig.safety.submit_target(far, rig.now)
    assert_damping(rig.tick(), rig.config)
    assert rig.fault() == FaultKind.TARGET_OUT_OF_RANGE and "RR_calf_joint" in rig.detail()


def test_implied_pd_torque_is_clamped_by_pulling_the_target_toward_q():
    rig = Rig()
    rig.activate(RobotMode.ACTIVE_STAND)
    kp, kd = rig.config.gains.stand.kp, rig.config.gains.stand.kd
    target = POSE.copy()
    target[1] += 0.45  # FR thigh: 60 * 0.45 = 27 N m > 23.7
    target[2] -= 0.2  # FR calf: 12 N m, inside 35.55
    rig.safety.submit_target(target, rig.now)
    dq = 0.5
    command = rig.tick(state=feedback(dq=dq))
    torque = kp * (command.q - POSE) - kd * dq
    limits = np.array(rig.config.torque_limits)
    assert (np.abs(torque) <= limits + 1e-9).all()
    assert torque[1] == pytest.approx(limits[1])
    assert command.q[2] == target[2]
    assert rig.safety.counters.torque_limited_ticks == 1


def test_hot_motor_damps_and_names_the_joint():
    rig = Rig()
    rig.activate()
    temperature = np.full(N, 40)
    temperature[7] = rig.config.motor_temperature_limit_c + 1
    state = JointFeedback(q=POSE, dq=np.zeros(N), tau_est=np.zeros(N), temperature=temperature,
                          motor_mode=np.full(N, MOTOR_MODE_SERVO))
    rig.safety.submit_target(POSE, rig.now)
    assert_damping(rig.tick(state=state), rig.config)
    assert rig.fault() == FaultKind.MOTOR_TEMPERATURE and "RR_thigh_joint" in rig.detail()


def test_motor_mode_mismatch_damps_after_the_configured_run():
    rig = Rig(motor_mode_mismatch_states=5)
    rig.activate()
    mode = np.full(N, MOTOR_MODE_SERVO)
    mode[2] = 0x08
    state = JointFeedback(q=POSE, dq=np.zeros(N), tau_est=np.zeros(N), temperature=np.full(N, 40), motor_mode=mode)
    for _ in range(4):
        rig.safety.submit_target(POSE, rig.now)
        rig.tick(state=state)
    rig.tick(state=feedback())  # one matching state resets the run
    for _ in range(4):
        rig.safety.submit_target(POSE, rig.now)
        rig.tick(state=state)
    assert rig.safety.mode == RobotMode.ACTIVE_STAND
    rig.tick(state=state)
    assert rig.fault() == FaultKind.MOTOR_MODE and "FR_calf_joint=0x08" in rig.detail()


def test_power_protection_follows_the_sdk_counter():
    rig = Rig(power_protect_level=1)  # 100 W
    rig.activate()
    over = feedback(dq=2.0, tau=5.0)  # 12 * 10 W = 120 W
    under = feedback(dq=1.0, tau=5.0)  # 60 W
    for _ in range(20):  # alternating never accumulates
        for state in (over, under):
            rig.safety.submit_target(POSE, rig.now)
            rig.tick(state=state)
    assert rig.safety.mode == RobotMode.ACTIVE_STAND
    for _ in range(POWER_COUNT_TRIP):
        rig.safety.submit_target(POSE, rig.now)
        rig.tick(state=over)
    assert rig.safety.mode == RobotMode.ACTIVE_STAND
    rig.tick(state=over)
    assert rig.fault() == FaultKind.POWER and "100 W" in rig.detail()


def test_max_mode_caps_what_can_be_entered():
    rig = Rig(max_mode=RobotMode.DAMPING)
    rig.safety.request_mode(RobotMode.ACTIVE_STAND, rig.now)
    rig.safety.submit_target(POSE, rig.now)
    assert_passive(rig.tick())
    assert rig.safety.pending is None and any("max_mode" in e.text for e in rig.safety.events)
    rig.safety.request_mode(RobotMode.DAMPING, rig.now)
    assert_damping(rig.tick(), rig.config)


def test_unknown_mode_request_damps():
    rig = Rig()
    rig.safety.request_mode(7, rig.now)
    assert rig.fault() == FaultKind.BAD_MODE_REQUEST and "7" in rig.detail()


def test_passive_request_while_active_releases_the_motors():
    rig = Rig()
    rig.activate()
    rig.safety.request_mode(RobotMode.PASSIVE, rig.now)
    assert_passive(rig.tick())
