"""deploy/clamps.py: the per-step target clamps, as properties over random inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dhal.deploy.clamps import Clamp, clamp_policy_targets, predicted_torque, torque_window
from dhal.deploy.safety_config import SafetyConfig
from dhal.envs.robots import go1

N = len(go1.JOINT_NAMES)
LIVE = SafetyConfig(dry_run=False)
LOW = LIVE.vectors.soft_lower
HIGH = LIVE.vectors.soft_upper
HOLD = np.array(LIVE.default_pose)


CLAMP_CONFIGS = (
    LIVE,
    dataclasses.replace(LIVE, kd=0.0, max_target_step_rad=0.05),
    dataclasses.replace(LIVE, kp=20.0, kd=3.0, torque_limits=(2.0,) * N, max_target_step_rad=1.0),
    dataclasses.replace(LIVE, action_scale=1.0, action_limit=1.0),
)


@st.composite
def clamp_inputs(draw):
    cfg = draw(st.sampled_from(CLAMP_CONFIGS))
    element = st.one_of(st.floats(-4.0, 4.0), st.floats(-1e12, 1e12))  # includes huge actions
    action = draw(arrays(np.float64, N, elements=element))
    q = draw(arrays(np.float64, N, elements=st.floats(-4.0, 5.0)))  # inside and well outside the limits
    dq = draw(arrays(np.float64, N, elements=st.one_of(st.floats(-3.0, 3.0), st.floats(-60.0, 60.0))))
    if draw(st.booleans()):
        fraction = draw(arrays(np.float64, N, elements=st.floats(0.0, 1.0)))
        previous = np.clip(LOW + fraction * (HIGH - LOW), LOW, HIGH)
    else:
        previous = draw(arrays(np.float64, N, elements=st.floats(-5.0, 6.0)))
    return cfg, action, q, dq, previous


@settings(max_examples=600, deadline=None)
@given(clamp_inputs())
def test_clamp_properties(inputs):
    cfg, action, q, dq, previous = inputs
    low, high, tau = cfg.vectors.soft_lower, cfg.vectors.soft_upper, cfg.vectors.torque_limits
    targets, clamps = clamp_policy_targets(action, q, dq, previous, cfg)

    # G1: always inside the soft limits.
    assert np.all((low <= targets) & (targets <= high))

    # G2: the torque bound wherever some in-limit target achieves it; else the nearest bound.
    w_low, w_high = torque_window(q, dq, cfg)
    achievable = (w_low <= high) & (w_high >= low)
    torque = predicted_torque(targets, q, dq, cfg)
    assert np.all(np.abs(torque[achievable]) <= tau[achievable] * (1 + 1e-9) + 1e-9)
    np.testing.assert_array_equal(targets[w_low > high], high[w_low > high])
    np.testing.assert_array_equal(targets[w_high < low], low[w_high < low])

    # The stages, recomputed from the spec, to check the flags.
    clipped = np.clip(action, -cfg.action_limit, cfg.action_limit)
    raw = np.array(cfg.default_pose) + cfg.action_scale * clipped
    soft = np.clip(raw, low, high)
    step = cfg.max_target_step_rad
    inside_before = bool(np.all((low <= previous) & (previous <= high)))
    assert (Clamp.ACTION_CLIP in clamps) == bool(np.any(np.abs(action) > cfg.action_limit))
    if inside_before:
        rated = np.clip(soft, previous - step, previous + step)
        assert (Clamp.SOFT_LIMIT in clamps) == bool(np.any((raw < low) | (raw > high)))
        assert (Clamp.RATE_LIMIT in clamps) == bool(np.any((soft < previous - step) | (soft > previous + step)))
        outside_window = (rated < w_low) | (rated > w_high)
        nearest = np.where(w_low > high, high, low)
        stuck = ~achievable & (rated == nearest)  # already the best in-limit target: nothing to change
        assert (Clamp.TORQUE_LIMIT in clamps) == bool(np.any(outside_window & ~stuck))

        # G3: the step bound, except where the torque clamp moved the target toward the zero-torque
        # target (never past it).
        over = np.abs(targets - previous) > step + 1e-12
        if np.any(over):
            assert Clamp.TORQUE_LIMIT in clamps
            centre = q + cfg.kd / cfg.kp * dq
            lo_end, hi_end = np.minimum(previous, centre), np.maximum(previous, centre)
            assert np.all((lo_end[over] <= targets[over]) & (targets[over] <= hi_end[over]))

    # Flags are exact: no flag, no change.
    if clamps == Clamp.NONE:
        np.testing.assert_array_equal(targets, np.array(cfg.default_pose) + cfg.action_scale * action)
    # A stage that did not fire had no effect: disabling it gives the same targets.
    huge = 1e9
    for flag, change in ((Clamp.RATE_LIMIT, dict(max_target_step_rad=huge)),
                         (Clamp.TORQUE_LIMIT, dict(torque_limits=(huge,) * N)),
                         (Clamp.ACTION_CLIP, dict(action_limit=huge))):
        if flag not in clamps:
            other, _ = clamp_policy_targets(action, q, dq, previous, dataclasses.replace(cfg, **change))
            np.testing.assert_array_equal(other, targets)


def test_clamp_keeps_targets_inside_the_limits_when_q_is_far_outside():
    q = HOLD.copy()
    q[2] = LOW[2] - 2.0  # a calf reading far below its range: the torque window is below the limits
    targets, clamps = clamp_policy_targets(np.zeros(N), q, np.zeros(N), HOLD, LIVE)
    assert targets[2] == LOW[2]
    assert clamps == Clamp.TORQUE_LIMIT


def test_clamp_previous_targets_outside_the_limits_jump_back_inside():
    previous = HOLD.copy()
    previous[0] = HIGH[0] + 1.0  # e.g. a config change between sessions
    q = HOLD.copy()
    q[0] = HIGH[0]  # the robot is there: no torque to clamp
    targets, clamps = clamp_policy_targets(np.zeros(N), q, np.zeros(N), previous, LIVE)
    assert targets[0] == HIGH[0]  # the soft limits win over the rate limit
    np.testing.assert_array_equal(np.delete(targets, 0), np.delete(HOLD, 0))
    assert clamps == Clamp.RATE_LIMIT | Clamp.SOFT_LIMIT  # attributed to the stages that made the change


def test_clamp_rejects_bad_inputs():
    with pytest.raises(ValueError, match="action"):
        clamp_policy_targets(np.full(N, np.nan), HOLD, np.zeros(N), HOLD, LIVE)
    with pytest.raises(ValueError, match="previous_targets"):
        clamp_policy_targets(np.zeros(N), HOLD, np.zeros(N), HOLD[:3], LIVE)
