"""The deploy safety layer's state machine: transitions, fault trips, latching and dry run (its clamps and
config: test_clamps.py, test_safety_config.py)."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dhal.deploy.clamps import Clamp
from dhal.deploy.safety import SafetyMachine
from dhal.deploy.safety_types import Command, Fault, FsmState, Request, RobotSensors
from dhal.deploy.safety_config import SafetyConfig
from dhal.deploy.topics import RobotMode
from dhal.envs.robots import go1

N = len(go1.JOINT_NAMES)
LIVE = SafetyConfig(dry_run=False)
DRY = SafetyConfig()  # dry_run defaults to True
DT = 0.005  # 200 Hz state stream
LYING = np.array(LIVE.lying_pose)
HOLD = np.array(LIVE.default_pose)
LOW = LIVE.vectors.soft_lower
HIGH = LIVE.vectors.soft_upper
ACTUATING = (FsmState.STAND_UP, FsmState.STAND, FsmState.POLICY, FsmState.SIT_DOWN)


def sensors(stamp: float, q: np.ndarray, dq: np.ndarray | None = None, roll_pitch: tuple[float, float] = (0.0, 0.0),
            estop: bool = False) -> RobotSensors:
    return RobotSensors(stamp, np.array(q, dtype=float), np.zeros(N) if dq is None else np.array(dq, dtype=float),
                        np.array(roll_pitch, dtype=float), estop)


class Rig:
    """A machine and a robot that tracks the published targets perfectly; time advances by DT per tick."""

    def __init__(self, cfg: SafetyConfig = LIVE, q0: np.ndarray = LYING) -> None:
        self.m = SafetyMachine(cfg)
        self.k = 0
        self.q = np.array(q0, dtype=float)
        self.last: Command | None = None

    @property
    def t(self) -> float:
        return self.k * DT

    def advance(self) -> float:
        self.k += 1
        return self.t

    def tick(self, **kwargs) -> Command:
        t = self.advance()
        cmd = self.m.update(t, sensors(t, self.q), **kwargs)
        return self.took(cmd)

    def took(self, cmd: Command) -> Command:
        if cmd.targets is not None:
            self.q = cmd.targets.copy()
        self.last = cmd
        return cmd

    def policy_tick(self, action: np.ndarray | None = None, inference_s: float = 0.001) -> Command:
        return self.tick(action=np.zeros(N) if action is None else action, inference_s=inference_s)

    def request(self, request: Request) -> bool:
        return self.m.request(request, self.t)

    def to(self, state: FsmState) -> Rig:
        """Drive the machine to `state` along the happy path."""
        self.tick()
        assert self.m.state == FsmState.PASSIVE
        if state == FsmState.PASSIVE:
            return self
        assert self.request(Request.STAND_UP), self.m.last_refusal
        self.tick()
        assert self.m.state == FsmState.STAND_UP
        if state == FsmState.STAND_UP:
            for _ in range(20):  # part of the way up
                self.tick()
            assert self.m.state == FsmState.STAND_UP
            return self
        while self.m.state == FsmState.STAND_UP:
            self.tick()
        assert self.m.state == FsmState.STAND
        if state == FsmState.STAND:
            return self
        if state == FsmState.SIT_DOWN:
            assert self.request(Request.SIT_DOWN)
            for _ in range(10):
                self.tick()
            assert self.m.state == FsmState.SIT_DOWN
            return self
        assert state == FsmState.POLICY
        assert self.request(Request.START_POLICY), self.m.last_refusal
        self.policy_tick()
        assert self.m.state == FsmState.POLICY
        return self


def assert_damping(cmd: Command, fault: Fault) -> None:
    assert cmd.state == FsmState.DAMPING, cmd
    assert cmd.mode == RobotMode.DAMPING
    assert cmd.targets is None and cmd.policy_targets is None
    assert fault in cmd.faults, (fault, cmd.faults)
    assert cmd.entered


# ---- the happy path ------------------------------------------------------------------------------

def test_happy_path_init_to_passive_and_back():
    rig = Rig()
    m = rig.m
    cmd = m.update(0.0, None)
    assert (cmd.state, cmd.mode, cmd.targets) == (FsmState.INIT, RobotMode.PASSIVE, None)
    assert cmd.faults == Fault.STALE_STATE

    cmd = rig.tick()
    assert (cmd.state, cmd.mode, cmd.targets, cmd.entered) == (FsmState.PASSIVE, RobotMode.PASSIVE, None, True)
    assert rig.tick().entered is False

    # Stand up from the measured pose (not the lying pose the config knows: a slightly different crouch).
    measured = LYING + np.linspace(-0.05, 0.05, N)
    rig.q = measured.copy()
    assert rig.request(Request.STAND_UP)
    assert m.state == FsmState.STAND_UP
    cmd = rig.tick()
    assert (cmd.state, cmd.mode, cmd.entered) == (FsmState.STAND_UP, RobotMode.ACTIVE_STAND, True)
    np.testing.assert_array_equal(cmd.targets, measured)  # the first target is the measured pose
    start_k = rig.k
    published = [cmd.targets]
    while m.state == FsmState.STAND_UP:
        cmd = rig.tick()
        assert cmd.faults == Fault.NONE and cmd.targets is not None
        published.append(cmd.targets)
    assert cmd.state == FsmState.STAND and cmd.entered and cmd.mode == RobotMode.ACTIVE_STAND
    np.testing.assert_array_equal(cmd.targets, HOLD)  # ends exactly at the default pose
    assert (rig.k - start_k) * DT == pytest.approx(LIVE.stand_up_time_s, abs=DT)
    distances = [np.abs(x - HOLD).max() for x in published]
    assert all(b <= a + 1e-12 for a, b in zip(distances, distances[1:]))  # monotone approach
    # Smooth: no tick moves further than the cosine ease's steepest slope allows.
    span = np.abs(HOLD - measured).max()
    assert span > 0.5
    assert np.abs(np.diff(published, axis=0)).max() <= math.pi / 2 * span * DT / LIVE.stand_up_time_s * 1.001
    np.testing.assert_array_equal(rig.tick().targets, HOLD)  # STAND holds the default pose

    # Policy.
    assert rig.request(Request.START_POLICY)
    action = np.linspace(-0.4, 0.4, N)
    cmd = rig.policy_tick(action)
    assert (cmd.state, cmd.mode, cmd.entered) == (FsmState.POLICY, RobotMode.ACTIVE_POLICY, True)
    assert cmd.clamps == Clamp.NONE
    np.testing.assert_array_equal(cmd.targets, HOLD + LIVE.action_scale * action)
    np.testing.assert_array_equal(cmd.policy_targets, cmd.targets)
    last_policy_targets = cmd.targets.copy()
    cmd = rig.tick()  # watchdog tick: nothing new to publish
    assert (cmd.state, cmd.targets, cmd.faults) == (FsmState.POLICY, None, Fault.NONE)

    # Sit down: continues from the last published targets, ends PASSIVE.
    assert rig.request(Request.SIT_DOWN)
    cmd = rig.tick()
    assert (cmd.state, cmd.mode, cmd.entered) == (FsmState.SIT_DOWN, RobotMode.ACTIVE_STAND, True)
    np.testing.assert_array_equal(cmd.targets, last_policy_targets)
    start_k = rig.k
    previous = cmd.targets
    while m.state == FsmState.SIT_DOWN:
        cmd = rig.tick()
        if cmd.targets is not None:
            previous = cmd.targets
    assert (cmd.state, cmd.mode, cmd.targets, cmd.entered) == (FsmState.PASSIVE, RobotMode.PASSIVE, None, True)
    assert (rig.k - start_k) * DT == pytest.approx(LIVE.sit_down_time_s, abs=DT)
    np.testing.assert_allclose(previous, LYING, atol=1e-3)  # the last target was the lying pose (eased in)


def test_stand_up_starts_from_the_pose_measured_at_the_first_update_and_fresh_state_required():
    rig = Rig().to(FsmState.PASSIVE)
    assert rig.request(Request.STAND_UP)
    rig.q = LYING + 0.02  # the robot moved between the request and the next state
    cmd = rig.tick()
    np.testing.assert_array_equal(cmd.targets, LYING + 0.02)


def test_stand_up_from_outside_the_soft_limits_starts_at_the_nearest_admissible_target():
    q = LYING.copy()
    q[2] = LOW[2] - 0.05  # calf folded past its soft limit but within the margin
    rig = Rig(q0=q).to(FsmState.PASSIVE)
    assert rig.request(Request.STAND_UP)
    cmd = rig.tick()
    expected = q.copy()
    expected[2] = LOW[2]
    np.testing.assert_array_equal(cmd.targets, expected)


def test_sit_down_from_stand_and_stand_up_again():
    rig = Rig().to(FsmState.STAND)
    assert rig.request(Request.SIT_DOWN)
    cmd = rig.tick()
    np.testing.assert_array_equal(cmd.targets, HOLD)
    while rig.m.state == FsmState.SIT_DOWN:
        rig.tick()
    assert rig.m.state == FsmState.PASSIVE
    assert rig.request(Request.STAND_UP)
    assert rig.tick().state == FsmState.STAND_UP


# ---- faults --------------------------------------------------------------------------------------

def _stream_fault(kind: str) -> Callable[[Rig], tuple[Command, Fault]]:
    def inject(rig: Rig) -> tuple[Command, Fault]:
        t = rig.advance()
        q = rig.q.copy()
        if kind == "estop":
            return rig.m.update(t, sensors(t, q, estop=True)), Fault.ESTOP
        if kind == "stale":
            return rig.m.update(t, sensors(t - LIVE.state_timeout_s - 0.001, q)), Fault.STALE_STATE
        if kind == "future_stamp":
            return rig.m.update(t, sensors(t + LIVE.state_timeout_s + 0.001, q)), Fault.STALE_STATE
        if kind == "missing":
            return rig.m.update(t, None), Fault.STALE_STATE
        if kind == "nan_q":
            q[4] = np.nan
            return rig.m.update(t, sensors(t, q)), Fault.NONFINITE_OBSERVATION
        if kind == "inf_dq":
            dq = np.zeros(N)
            dq[7] = -np.inf
            return rig.m.update(t, sensors(t, q, dq=dq)), Fault.NONFINITE_OBSERVATION
        if kind == "nan_roll":
            return rig.m.update(t, sensors(t, q, roll_pitch=(np.nan, 0.0))), Fault.NONFINITE_OBSERVATION
        if kind == "roll":
            return rig.m.update(t, sensors(t, q, roll_pitch=(LIVE.max_tilt_rad + 0.01, 0.0))), Fault.TILT
        if kind == "pitch":
            return rig.m.update(t, sensors(t, q, roll_pitch=(0.0, -LIVE.max_tilt_rad - 0.01))), Fault.TILT
        if kind == "joint_low":
            q[5] = LOW[5] - LIVE.joint_limit_margin_rad - 0.01
            return rig.m.update(t, sensors(t, q)), Fault.JOINT_LIMIT
        if kind == "joint_high":
            q[9] = HIGH[9] + LIVE.joint_limit_margin_rad + 0.01
            return rig.m.update(t, sensors(t, q)), Fault.JOINT_LIMIT
        if kind == "wrong_size":
            return rig.m.update(t, sensors(t, q[:-1], dq=np.zeros(N - 1))), Fault.BAD_MESSAGE
        if kind == "reported":
            rig.m.report_fault(Fault.BAD_MESSAGE, t, "joint names do not match the contract")
            assert rig.m.state == FsmState.DAMPING  # at once, before the next update
            return rig.m.update(t, sensors(t, q)), Fault.BAD_MESSAGE
        if kind == "robot_mode":
            rig.m.observe_robot_mode(rig.m.requested_mode, t)  # the robot reached the requested mode...
            assert rig.m.state != FsmState.DAMPING
            assert rig.m.observe_robot_mode(RobotMode.DAMPING, t) == Fault.ROBOT_MODE  # ...and dropped out
            assert rig.m.state == FsmState.DAMPING
            return rig.m.update(t, sensors(t, q)), Fault.ROBOT_MODE
        raise AssertionError(kind)

    return inject


STREAM_FAULTS = ("estop", "stale", "future_stamp", "missing", "nan_q", "inf_dq", "nan_roll", "roll", "pitch",
                 "joint_low", "joint_high", "wrong_size", "reported", "robot_mode")


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize("kind", STREAM_FAULTS)
@pytest.mark.parametrize("state", ACTUATING, ids=lambda s: s.name)
def test_every_fault_in_every_actuating_state_damps_in_the_same_update(state, kind, dry_run):
    rig = Rig(dataclasses.replace(LIVE, dry_run=dry_run)).to(state)
    assert rig.m.state == state
    cmd, fault = _stream_fault(kind)(rig)
    assert_damping(cmd, fault)


def _policy_fault(kind: str) -> Callable[[Rig], tuple[Command, Fault]]:
    def inject(rig: Rig) -> tuple[Command, Fault]:
        if kind == "nan_action":
            action = np.zeros(N)
            action[3] = np.nan
            return rig.policy_tick(action), Fault.NONFINITE_ACTION
        if kind == "inf_action":
            action = np.zeros(N)
            action[0] = np.inf
            return rig.policy_tick(action), Fault.NONFINITE_ACTION
        if kind == "missing_action":
            return rig.tick(action=None, inference_s=0.001), Fault.NONFINITE_ACTION
        if kind == "wrong_action_size":
            return rig.policy_tick(np.zeros(N + 1)), Fault.BAD_MESSAGE
        if kind == "nonfinite_observation":
            return rig.tick(action=np.zeros(N), inference_s=0.001, observation_finite=False), \
                Fault.NONFINITE_OBSERVATION
        if kind == "overruns":
            slow = LIVE.max_inference_s * 1.5
            for _ in range(LIVE.max_consecutive_overruns - 1):
                cmd = rig.policy_tick(inference_s=slow)
                assert cmd.state == FsmState.POLICY and cmd.faults == Fault.NONE
                assert rig.tick().state == FsmState.POLICY  # watchdog ticks neither count nor reset
            return rig.policy_tick(inference_s=slow), Fault.INFERENCE_OVERRUN
        if kind == "action_timeout":
            quiet = round(LIVE.action_timeout_s / DT) - 1  # watchdog ticks within the timeout
            for _ in range(quiet):
                cmd = rig.tick()
                assert cmd.state == FsmState.POLICY, cmd
            rig.advance()  # one state missed: now past the timeout
            return rig.tick(), Fault.INFERENCE_OVERRUN
        raise AssertionError(kind)

    return inject


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize("kind", ["nan_action", "inf_action", "missing_action", "wrong_action_size",
                                  "nonfinite_observation", "overruns", "action_timeout"])
def test_policy_faults_damp_in_the_same_update(kind, dry_run):
    rig = Rig(dataclasses.replace(LIVE, dry_run=dry_run)).to(FsmState.POLICY)
    cmd, fault = _policy_fault(kind)(rig)
    assert_damping(cmd, fault)


def test_overruns_must_be_consecutive():
    rig = Rig().to(FsmState.POLICY)
    slow = LIVE.max_inference_s * 2
    for _ in range(5):
        for _ in range(LIVE.max_consecutive_overruns - 1):
            assert rig.policy_tick(inference_s=slow).state == FsmState.POLICY
        assert rig.policy_tick(inference_s=LIVE.max_inference_s).state == FsmState.POLICY  # resets the count
    assert rig.policy_tick(inference_s=float("nan")).state == FsmState.POLICY  # NaN time counts as an overrun
    assert rig.policy_tick(inference_s=slow).state == FsmState.POLICY
    assert_damping(rig.policy_tick(inference_s=slow), Fault.INFERENCE_OVERRUN)


def test_stand_up_aborts_when_the_robot_lags_the_interpolation():
    rig = Rig().to(FsmState.STAND_UP)
    target = rig.last.targets
    q = target.copy()
    q[1] += LIVE.stand_up_max_error_rad * 0.9  # within the error bound: carries on
    t = rig.advance()
    assert rig.m.update(t, sensors(t, q)).state == FsmState.STAND_UP
    # A robot that does not follow at all: the error grows until the machine aborts, in that update.
    frozen = q.copy()
    for _ in range(1000):
        t = rig.advance()
        cmd = rig.m.update(t, sensors(t, frozen))
        if cmd.state != FsmState.STAND_UP:
            break
        assert np.abs(cmd.targets - frozen).max() <= LIVE.stand_up_max_error_rad
    assert_damping(cmd, Fault.STAND_UP_ERROR)


def test_watchdog_tick_in_policy_publishes_nothing_and_catches_stale_state():
    rig = Rig().to(FsmState.POLICY)
    cmd = rig.tick()
    assert (cmd.state, cmd.targets, cmd.policy_targets, cmd.faults) == (FsmState.POLICY, None, None, Fault.NONE)
    t = rig.advance()
    assert_damping(rig.m.update(t + 1.0, sensors(t, rig.q)), Fault.STALE_STATE)


# ---- latching and reset --------------------------------------------------------------------------

@pytest.mark.parametrize("state", ACTUATING, ids=lambda s: s.name)
def test_damping_is_latched_until_reset(state):
    rig = Rig().to(state)
    assert rig.request(Request.DAMP)
    assert rig.m.state == FsmState.DAMPING
    for _ in range(100):
        cmd = rig.policy_tick()  # good state, actions: nothing leaves DAMPING
        assert (cmd.state, cmd.mode, cmd.targets) == (FsmState.DAMPING, RobotMode.DAMPING, None)
    for request in (Request.STAND_UP, Request.START_POLICY, Request.SIT_DOWN):
        assert not rig.request(request)
        assert request.name in rig.m.last_refusal
    assert rig.request(Request.DAMP) and rig.m.state == FsmState.DAMPING

    # RESET refused while the e-stop is held...
    t = rig.advance()
    cmd = rig.m.update(t, sensors(t, rig.q, estop=True))
    assert cmd.state == FsmState.DAMPING and Fault.ESTOP in cmd.faults
    assert not rig.request(Request.RESET)
    assert "e-stop" in rig.m.last_refusal
    # ...and while the state is stale (fresh when seen, old by the time of the request).
    t = rig.advance()
    rig.m.update(t, sensors(t, rig.q))
    assert not rig.m.request(Request.RESET, t + LIVE.state_timeout_s + 0.01)
    assert "age" in rig.m.last_refusal
    assert rig.m.state == FsmState.DAMPING
    # Fresh and clear: RESET goes to PASSIVE.
    assert rig.request(Request.RESET)
    cmd = rig.tick()
    assert (cmd.state, cmd.mode, cmd.targets, cmd.entered) == (FsmState.PASSIVE, RobotMode.PASSIVE, None, True)


def test_reset_needs_a_state_at_all_and_only_leaves_damping():
    m = SafetyMachine(LIVE)
    assert not m.request(Request.RESET, 0.0)  # INIT
    assert m.request(Request.DAMP, 0.0)
    assert not m.request(Request.RESET, 0.0)
    assert "no robot state" in m.last_refusal
    m.update(0.0, sensors(0.0, LYING))
    assert m.request(Request.RESET, 0.0)
    assert m.state == FsmState.PASSIVE
    assert not m.request(Request.RESET, 0.0)  # nothing to reset


def test_requests_only_from_their_states():
    rig = Rig()
    m = rig.m
    assert not rig.request(Request.STAND_UP)  # INIT
    rig.to(FsmState.PASSIVE)
    assert not rig.request(Request.START_POLICY) and not rig.request(Request.SIT_DOWN)
    assert rig.request(Request.STAND_UP)
    rig.tick()
    for request in (Request.STAND_UP, Request.START_POLICY, Request.SIT_DOWN, Request.RESET):
        assert not rig.request(request), request
    assert m.state == FsmState.STAND_UP
    while m.state == FsmState.STAND_UP:
        rig.tick()
    assert not rig.request(Request.STAND_UP)
    assert rig.request(Request.START_POLICY)
    assert not rig.request(Request.START_POLICY)
    assert rig.request(Request.DAMP)


# ---- INIT and PASSIVE ----------------------------------------------------------------------------

def test_init_waits_for_a_valid_fresh_state_with_estop_clear():
    m = SafetyMachine(LIVE)
    for cmd in (m.update(0.0, None), m.update(1.0, sensors(0.0, LYING)), m.update(1.0, sensors(1.0, LYING, estop=True)),
                m.update(1.0, sensors(1.0, np.full(N, np.nan)))):
        assert (cmd.state, cmd.mode, cmd.targets) == (FsmState.INIT, RobotMode.PASSIVE, None)
        assert cmd.faults != Fault.NONE
    cmd = m.update(1.0, sensors(1.0, LYING, roll_pitch=(3.0, 0.0)))  # a robot on its back: still only passive
    assert cmd.state == FsmState.PASSIVE and cmd.faults == Fault.NONE


def test_passive_stays_passive_on_stale_or_odd_state_but_refuses_to_stand_up():
    rig = Rig().to(FsmState.PASSIVE)
    m = rig.m
    t = rig.advance()
    cmd = m.update(t, None)
    assert (cmd.state, cmd.targets, cmd.faults) == (FsmState.PASSIVE, None, Fault.STALE_STATE)
    assert not m.request(Request.STAND_UP, t)
    assert "no robot state" in m.last_refusal
    t = rig.advance()
    cmd = m.update(t + 1.0, sensors(t, LYING))
    assert cmd.state == FsmState.PASSIVE and Fault.STALE_STATE in cmd.faults
    assert not m.request(Request.STAND_UP, t + 1.0)
    # Tilted or out-of-range (a carried robot): not a fault in PASSIVE, but no stand-up.
    for odd in (dict(roll_pitch=(1.2, 0.0)), dict(q=np.where(np.arange(N) == 2, HIGH[2] + 0.5, LYING))):
        t = rig.advance()
        cmd = m.update(t, sensors(t, odd.get("q", LYING), roll_pitch=odd.get("roll_pitch", (0.0, 0.0))))
        assert (cmd.state, cmd.faults) == (FsmState.PASSIVE, Fault.NONE)
        assert not m.request(Request.STAND_UP, t)
        assert "tilt" in m.last_refusal or "soft limits" in m.last_refusal
    # The e-stop does trip from PASSIVE, and latches.
    t = rig.advance()
    assert_damping(m.update(t, sensors(t, LYING, estop=True)), Fault.ESTOP)
    t = rig.advance()
    assert m.update(t, sensors(t, LYING)).state == FsmState.DAMPING


def test_external_faults_trip_from_every_state():
    for state in (FsmState.INIT, FsmState.PASSIVE) + ACTUATING:
        rig = Rig()
        if state != FsmState.INIT:
            rig.to(state)
        rig.m.report_fault(Fault.BAD_MESSAGE, rig.t, "test")
        assert rig.m.state == FsmState.DAMPING
        assert_damping(rig.tick(), Fault.BAD_MESSAGE)
        assert rig.tick().faults == Fault.NONE  # reported once, the state stays latched
        assert rig.m.state == FsmState.DAMPING
    with pytest.raises(ValueError):
        SafetyMachine(LIVE).report_fault(Fault.NONE, 0.0, "nothing")


def test_robot_mode_checks():
    rig = Rig().to(FsmState.PASSIVE)
    m = rig.m
    assert m.observe_robot_mode(RobotMode.DAMPING, rig.t) == Fault.NONE  # unactuated for unactuated: fine
    assert m.request(Request.STAND_UP, rig.t)
    assert m.observe_robot_mode(RobotMode.PASSIVE, rig.t) == Fault.NONE  # the switch is in flight
    assert m.observe_robot_mode(RobotMode.ACTIVE_STAND, rig.t) == Fault.NONE
    assert m.observe_robot_mode(RobotMode.PASSIVE, rig.t) == Fault.ROBOT_MODE  # dropped out after the switch
    assert m.state == FsmState.DAMPING
    # A robot that actuates while PASSIVE is requested.
    rig = Rig().to(FsmState.PASSIVE)
    assert rig.m.observe_robot_mode(RobotMode.ACTIVE_POLICY, rig.t) == Fault.ROBOT_MODE
    assert_damping(rig.tick(), Fault.ROBOT_MODE)
    # Dry run: ACTIVE_POLICY is never requested, so a robot reporting it is a fault.
    rig = Rig(DRY).to(FsmState.POLICY)
    rig.m.observe_robot_mode(RobotMode.ACTIVE_STAND, rig.t)
    assert rig.m.observe_robot_mode(RobotMode.ACTIVE_POLICY, rig.t) == Fault.ROBOT_MODE


# ---- POLICY step and dry run ---------------------------------------------------------------------

def test_policy_rate_limit_starts_from_the_hold_pose():
    rig = Rig().to(FsmState.STAND)
    assert rig.request(Request.START_POLICY)
    action = np.zeros(N)
    action[1] = LIVE.action_limit  # thigh: + 0.75 rad from the hold pose, inside the soft limits
    cmd = rig.policy_tick(action)
    assert cmd.clamps == Clamp.RATE_LIMIT
    assert cmd.targets[1] == pytest.approx(HOLD[1] + LIVE.max_target_step_rad)
    np.testing.assert_array_equal(np.delete(cmd.targets, 1), np.delete(HOLD, 1))
    cmd = rig.policy_tick(action)  # the next step continues from the last published targets
    assert cmd.targets[1] == pytest.approx(HOLD[1] + 2 * LIVE.max_target_step_rad)
    # A second POLICY session starts from the hold pose again, not from the first session's last targets.
    assert rig.request(Request.SIT_DOWN)
    while rig.m.state != FsmState.PASSIVE:
        rig.tick()
    assert rig.request(Request.STAND_UP)
    while rig.m.state != FsmState.STAND:
        rig.tick()
    assert rig.request(Request.START_POLICY)
    cmd = rig.policy_tick(action)
    assert cmd.targets[1] == pytest.approx(HOLD[1] + LIVE.max_target_step_rad)


def test_dry_run_never_actuates_the_policy_but_computes_its_targets():
    live, dry = SafetyMachine(LIVE), SafetyMachine(DRY)
    rng = np.random.default_rng(0)
    k = 0
    requests = {2: Request.STAND_UP, 600: Request.START_POLICY, 900: Request.SIT_DOWN}
    q = LYING.copy()
    seen_policy = 0
    while k < 1400:
        k += 1
        t = k * DT
        if k in requests:
            assert live.request(requests[k], t) and dry.request(requests[k], t)
        s = sensors(t, q, dq=rng.normal(0, 2, N))
        policy_step = k % 4 == 0
        action = rng.normal(0, 2, N) * (100 if k % 40 == 0 else 1) if policy_step else None
        inference = 0.001 if policy_step else None
        a, b = live.update(t, s, action, inference), dry.update(t, s, action, inference)
        assert a.state == b.state, (k, a, b)
        assert b.mode != RobotMode.ACTIVE_POLICY and dry.requested_mode != RobotMode.ACTIVE_POLICY
        if b.state == FsmState.POLICY:
            np.testing.assert_array_equal(b.targets, HOLD)  # holds, every tick
            assert b.mode == RobotMode.ACTIVE_STAND
            if policy_step:
                seen_policy += 1
                assert a.mode == RobotMode.ACTIVE_POLICY
                np.testing.assert_array_equal(b.policy_targets, a.policy_targets)  # what live would send
                np.testing.assert_array_equal(a.targets, a.policy_targets)
                assert b.clamps == a.clamps
            else:
                assert b.policy_targets is None
        elif b.targets is not None:
            q = b.targets.copy()  # the robot follows stand-up and sit-down
    assert seen_policy > 50
    assert dry.state == FsmState.PASSIVE


# ---- a random walk through the machine -----------------------------------------------------------

EVENTS = st.one_of(
    st.tuples(st.just("request"), st.sampled_from(list(Request))),
    st.tuples(st.just("tick"), st.sampled_from(["ok", "ok", "ok", "stale", "estop", "tilt", "nan", "none",
                                                 "limit", "lag"])),
    st.tuples(st.just("policy"), st.sampled_from(["ok", "huge", "nan", "slow", "missing"])),
    st.tuples(st.just("wait"), st.integers(1, 400)),
    st.tuples(st.just("mode"), st.sampled_from(list(RobotMode))),
)


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.lists(EVENTS, max_size=60))
def test_random_event_sequences_keep_the_invariants(dry_run, events):
    cfg = dataclasses.replace(LIVE, dry_run=dry_run)
    rig = Rig(cfg)
    m = rig.m
    reset_accepted = False

    def check(cmd: Command, was: FsmState) -> None:
        nonlocal reset_accepted
        if cmd.targets is not None:
            assert np.all((LOW <= cmd.targets) & (cmd.targets <= HIGH))
            assert cmd.state in ACTUATING
        assert (cmd.mode == RobotMode.DAMPING) == (cmd.state == FsmState.DAMPING)
        if cmd.mode in (RobotMode.ACTIVE_STAND, RobotMode.ACTIVE_POLICY):
            assert cmd.state in ACTUATING
        if dry_run:
            assert cmd.mode != RobotMode.ACTIVE_POLICY
            assert cmd.targets is None or cmd.state != FsmState.POLICY or np.array_equal(cmd.targets, HOLD)
        if was == FsmState.DAMPING and not reset_accepted:
            assert cmd.state == FsmState.DAMPING
        reset_accepted = False

    for kind, arg in events:
        was = m.state
        if kind == "request":
            ok = rig.request(arg)
            if was == FsmState.DAMPING:
                assert (m.state == FsmState.DAMPING) or (ok and arg == Request.RESET)
            reset_accepted = reset_accepted or (ok and arg == Request.RESET)
            continue
        if kind == "mode":
            m.observe_robot_mode(arg, rig.t)
            assert was != FsmState.DAMPING or m.state == FsmState.DAMPING
            continue
        if kind == "wait":
            for _ in range(arg):
                was = m.state
                check(rig.tick(), was)
            continue
        t = rig.advance()
        q = rig.q.copy()
        if kind == "tick":
            s = {
                "ok": sensors(t, q), "stale": sensors(t - 1.0, q), "estop": sensors(t, q, estop=True),
                "tilt": sensors(t, q, roll_pitch=(0.0, 1.0)), "nan": sensors(t, np.full(N, np.nan)), "none": None,
                "limit": sensors(t, np.where(np.arange(N) == 0, HIGH[0] + 0.3, q)),
                "lag": sensors(t, np.where(np.arange(N) == 1, q[1] + 0.7, q)),
            }[arg]
            cmd = m.update(t, s)
            if arg in ("stale", "estop", "tilt", "nan", "none", "limit") and was in ACTUATING:
                assert cmd.state == FsmState.DAMPING
        else:
            action = {"ok": np.full(N, 0.3), "huge": np.full(N, 1e9), "nan": np.full(N, np.nan), "slow": np.zeros(N),
                      "missing": None}[arg]
            cmd = m.update(t, sensors(t, q), action, 0.05 if arg == "slow" else 0.001)
            if arg in ("nan", "missing") and was == FsmState.POLICY:
                assert cmd.state == FsmState.DAMPING
        rig.took(cmd)
        check(cmd, was)


def test_deterministic_given_inputs():
    def run() -> list[Command]:
        rig = Rig()
        out = []
        rng = np.random.default_rng(1)
        for k in range(1200):
            if k == 2:
                rig.request(Request.STAND_UP)
            if k == 600:
                rig.request(Request.START_POLICY)
            out.append(rig.policy_tick(rng.normal(0, 3, N)) if k % 4 == 0 else rig.tick())
        return out

    for a, b in zip(run(), run(), strict=True):
        assert (a.state, a.mode, a.faults, a.clamps, a.entered, a.reason) == \
               (b.state, b.mode, b.faults, b.clamps, b.entered, b.reason)
        for x, y in ((a.targets, b.targets), (a.policy_targets, b.policy_targets)):
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(x, y)


def test_sensors_are_checked_on_construction():
    with pytest.raises(ValueError, match="roll_pitch"):
        RobotSensors(0.0, np.zeros(N), np.zeros(N), np.zeros(3), False)
    with pytest.raises(ValueError, match="dq"):
        RobotSensors(0.0, np.zeros(N), np.zeros(N - 1), np.zeros(2), False)
