"""The onboard controller without ROS: faults force damping within two control periods, targets
never leave the soft limits, malformed messages are faults and never crashes, and the real
policy drives the simulated robot from PASSIVE to POLICY through the robot-side safety."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dhal.deploy.controller import ControllerConfig, PolicyController, TickOutput
from dhal.deploy.go1.config import BridgeConfig
from dhal.deploy.go1.packets import MOTOR_MODE_SERVO
from dhal.deploy.go1.safety import BridgeSafety, JointFeedback
from dhal.deploy.runtime import OnnxPolicy, PolicyOutput
from dhal.deploy.safety_types import Fault, FsmState
from dhal.deploy.safety_config import SafetyConfig
from dhal.deploy.sim_robot import SimulatedGo1
from dhal.deploy.topics import RobotMode
from dhal.envs.contract import go1_contract

CONTRACT = go1_contract()
NAMES = list(CONTRACT.joint_names)
STATE_DT = 0.005
CONTROL_DT = CONTRACT.control_dt
UPRIGHT_XYZW = (0.0, 0.0, 0.0, 1.0)


@dataclass
class ScriptedPolicy:
    """Stands in for OnnxPolicy: returns the given actions (or a constant), counts calls."""

    contract: object = CONTRACT
    actions: list[np.ndarray] = field(default_factory=list)
    calls: int = 0

    def __call__(self, history: np.ndarray) -> PolicyOutput:
        self.calls += 1
        action = self.actions.pop(0) if self.actions else np.zeros(12, dtype=np.float32)
        return PolicyOutput(actions=np.asarray(action, dtype=np.float32), mode_probs=np.array([1.0, 0, 0], np.float32),
                            latent=np.zeros(20, np.float32))


class Rig:
    """A controller fed synthetic 200 Hz states in simulated time (a robot standing still)."""

    def __init__(self, policy=None, clock=None, **safety) -> None:
        self.policy = policy or ScriptedPolicy()
        self.ctl = PolicyController(self.policy, SafetyConfig.for_contract(CONTRACT, **{"dry_run": False, **safety}),
                                    ControllerConfig(auto_start_after_s=0.1, settle_time_s=0.0),
                                    clock=clock or (lambda: 0.0))
        self.t = 0.0
        self.q = np.array(CONTRACT.default_pose)
        self.outputs: list[TickOutput] = []

    def state(self, q=None, quat=UPRIGHT_XYZW, names=None, dq=None) -> TickOutput | None:
        self.t += STATE_DT
        q = self.q if q is None else q
        self.ctl.on_imu(quat, (0.0, 0.0, 0.0), self.t)
        out = self.ctl.on_joint_state(names or NAMES, q, np.zeros(12) if dq is None else dq, self.t, self.t)
        if out is not None:
            self.outputs.append(out)
        return out

    def run_until(self, state: FsmState, limit_s: float = 10.0) -> None:
        start = self.t
        while self.ctl.safety.state != state:
            self.state()
            assert self.t - start < limit_s, f"never reached {state.name}; at {self.ctl.safety.state.name}"

    def policy_ticks_until_damping(self, inject, limit: int = 10) -> int:
        """Policy ticks from the first faulty input until the controller requests damping."""
        ticks = 0
        while True:
            out = inject(self)
            if out is not None:
                ticks += 1
                if out.command.state == FsmState.DAMPING:
                    assert out.command.mode == RobotMode.DAMPING and out.targets is None
                    return ticks
            assert ticks < limit, "no damping"


def in_policy(**safety) -> Rig:
    rig = Rig(**safety)
    rig.run_until(FsmState.POLICY)
    for _ in range(8):
        rig.state()
    assert rig.ctl.safety.state == FsmState.POLICY
    return rig


def test_standing_rig_walks_the_fsm_to_policy_and_acts_at_the_control_rate():
    rig = Rig()
    rig.run_until(FsmState.POLICY)
    states = [o.command.state for o in rig.outputs]
    assert states[0] == FsmState.PASSIVE and FsmState.STAND_UP in states and FsmState.STAND in states
    before = rig.policy.calls
    for _ in range(40):  # 0.2 s of states
        rig.state()
    assert rig.policy.calls - before == 10  # 50 Hz from 200 Hz states
    assert rig.outputs[-1].command.mode == RobotMode.ACTIVE_POLICY and rig.outputs[-1].targets is not None


FAULTS = {
    "estop": lambda r: (r.ctl.on_estop(True, r.t), r.state())[1] if not r.ctl.latest.estop else r.state(),
    "tilt": lambda r: r.state(quat=(np.sin(0.5), 0.0, 0.0, np.cos(0.5))),  # roll 1.0 rad
    "joint_limit": lambda r: r.state(q=r.q + np.r_[1.5, np.zeros(11)]),
    "nan": lambda r: r.state(q=np.r_[np.nan, r.q[1:]]),
    "wrong_names": lambda r: r.state(names=NAMES[:11] + ["front_left_knee"]),
    "wrong_count": lambda r: r.state(q=r.q[:11]),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_forces_damping_within_two_control_periods(fault):
    rig = in_policy()
    assert rig.policy_ticks_until_damping(FAULTS[fault]) <= 2
    # Latched: clean states do not bring the policy back.
    for _ in range(20):
        rig.state()
    assert rig.ctl.safety.state == FsmState.DAMPING


def test_stale_state_is_caught_by_the_watchdog_within_two_control_periods():
    rig = in_policy()
    last_state = rig.t
    ticks = 0
    t = last_state
    while rig.ctl.safety.state != FsmState.DAMPING:
        t += CONTROL_DT  # the watchdog timer; no state arrives any more
        out = rig.ctl.watchdog(t)
        ticks += 1
        assert ticks <= 10
    timeout = rig.ctl.safety.config.state_timeout_s
    assert t - (last_state + timeout) <= 2 * CONTROL_DT
    assert out.command.faults & Fault.STALE_STATE and out.targets is None


def test_repeated_inference_overruns_force_damping():
    times = iter(np.arange(0, 100, 0.05))  # every timed inference appears to take 50 ms
    rig = Rig(clock=lambda: next(times))
    rig.run_until(FsmState.POLICY)
    overruns = rig.ctl.safety.config.max_consecutive_overruns
    ticks = rig.policy_ticks_until_damping(lambda r: r.state())
    assert ticks <= overruns + 2 and rig.outputs[-1].command.faults & Fault.INFERENCE_OVERRUN


def test_nonfinite_actions_force_damping():
    rig = in_policy()
    rig.policy.actions = [np.full(12, np.nan, dtype=np.float32)] * 5
    assert rig.policy_ticks_until_damping(lambda r: r.state()) <= 2


@settings(max_examples=60, deadline=None)
@given(
    actions=st.lists(st.lists(st.floats(-1e6, 1e6), min_size=12, max_size=12), min_size=4, max_size=8),
    offsets=st.lists(st.floats(-0.3, 0.3), min_size=12, max_size=12),
    dq=st.lists(st.floats(-30, 30), min_size=12, max_size=12),
    roll=st.floats(-0.5, 0.5),
)
def test_published_targets_never_leave_the_soft_limits(actions, offsets, dq, roll):
    rig = in_policy()
    rig.policy.actions = [np.array(a, dtype=np.float32) for a in actions]
    cfg = rig.ctl.safety.config
    lower, upper = np.array(cfg.soft_lower), np.array(cfg.soft_upper)
    quat = (np.sin(roll / 2), 0.0, 0.0, np.cos(roll / 2))
    for _ in range(4 * len(actions)):
        out = rig.state(q=rig.q + np.array(offsets), dq=np.array(dq), quat=quat)
        if out is not None and out.targets is not None:
            assert np.all(out.targets >= lower - 1e-9) and np.all(out.targets <= upper + 1e-9)


def test_the_real_policy_drives_the_simulated_robot_through_the_robot_side_safety(exported_policy):
    policy = OnnxPolicy(exported_policy)
    ctl = PolicyController(policy, SafetyConfig.for_contract(policy.contract, dry_run=False),
                           ControllerConfig(auto_start_after_s=0.5, settle_time_s=0.0))
    robot, bridge = SimulatedGo1(), BridgeSafety(BridgeConfig())
    t, modes, published = 0.0, set(), 0
    for _ in range(int(4.5 / robot.physics_dt)):
        m = robot.measure()
        w, x, y, z = m.imu_quat_wxyz
        ctl.on_imu((x, y, z, w), m.imu_gyro, t)
        out = ctl.on_joint_state(NAMES, m.joint_pos, m.joint_vel, t, t)
        if out is not None:
            if out.mode_request is not None:
                bridge.request_mode(int(out.mode_request), t)
            if out.targets is not None:
                bridge.submit_target(out.targets, t)
                published += 1
        bridge.update_feedback(JointFeedback(m.joint_pos, m.joint_vel, m.joint_torque, np.full(12, 35),
                                             np.full(12, MOTOR_MODE_SERVO)), t)
        command = bridge.command(t)
        modes.add(bridge.mode)
        robot.step(np.where(command.kp > 0, command.q, m.joint_pos), command.kp, command.kd)
        t += robot.physics_dt
    assert ctl.safety.state == FsmState.POLICY and bridge.mode == RobotMode.ACTIVE_POLICY, bridge.latched
    assert RobotMode.ACTIVE_STAND in modes and published > 150


def test_the_unattended_start_waits_for_the_robot_to_come_to_rest():
    ctl = PolicyController(ScriptedPolicy(), SafetyConfig.for_contract(CONTRACT, dry_run=False),
                           ControllerConfig(auto_start_after_s=0.1, settle_time_s=0.5), clock=lambda: 0.0)
    q, t = np.array(CONTRACT.default_pose), 0.0
    for step in range(400):  # 2 s of states: still folding for the first second, then at rest
        t += STATE_DT
        moving = step < 200
        ctl.on_imu(UPRIGHT_XYZW, (0.0, 0.0, 0.0), t)
        ctl.on_joint_state(NAMES, q, np.full(12, 1.0 if moving else 0.0), t, t)
        if moving:
            assert ctl.safety.state == FsmState.PASSIVE or ctl.safety.state == FsmState.INIT
        if ctl.safety.state == FsmState.STAND_UP:
            break
    assert ctl.safety.state == FsmState.STAND_UP
    assert 1.0 + 0.5 <= t < 1.0 + 0.5 + 0.05  # at rest for settle_time_s, then at once
