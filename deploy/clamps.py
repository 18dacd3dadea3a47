"""The per-step clamps on policy joint targets (DEPLOY.md §7.3), as one pure numpy function.

`clamp_policy_targets` turns a raw policy action into the joint targets the controller may publish.
The stages run in this order, and each one that changes anything sets its `Clamp` bit:

1. clip the action to ±action_limit                                   -> ACTION_CLIP
2. targets = default_pose + action_scale * action
3. clamp the targets to the soft joint limits                          -> SOFT_LIMIT
4. rate-limit: |target - previous_target| <= max_target_step_rad       -> RATE_LIMIT
   followed by the soft-limit clamp again (a no-op unless the previous
   targets were themselves outside the soft limits)                    -> SOFT_LIMIT
5. clamp the predicted PD torque kp(q* - q) - kd*dq into ±torque_limits
   by pulling q* toward the zero-torque target q + kd*dq/kp, but never
   outside the soft limits                                              -> TORQUE_LIMIT

What is guaranteed, in priority order (a later guarantee gives way to an earlier one):

G1 Published targets never leave the soft limits. This holds for any finite input, including a
   measured q far outside the limits and previous targets outside them: every stage ends with
   the soft-limit clamp.
G2 The predicted torque is within ±torque_limits (up to float rounding) on every joint where some
   target inside the soft limits achieves that. Stage 5 clips the target into the torque window
   [q + (kd*dq - tau)/kp, q + (kd*dq + tau)/kp] and then into the soft limits; when the window
   and the soft limits overlap, the result is in both; when they do not (q far outside the limits,
   or a huge dq), no target can satisfy both, and the result is the soft bound nearest the window,
   which is the admissible target with the smallest torque. So the final soft clamp can only
   "break" the torque bound where the bound is unreachable anyway.
G3 With previous targets inside the soft limits, |target - previous| <= max_target_step_rad on
   every joint that the torque clamp left alone. The torque clamp may exceed the step, but only by
   moving the target toward the zero-torque target (it never moves past it): it always lowers
   the torque the motor is asked for, and holding a target the motor cannot reach without
   saturating would keep it saturated for as many ticks as the rate limit takes to walk back.
   Jumps *away* from the measured pose, the ones a rate limit exists to stop, never exceed it.

The bits report exactly which stage changed its input (bitwise comparison of stage input and
output), so a replay can show what the clamps did on each step.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from dhal.deploy.safety_config import SafetyConfig


class Clamp(enum.IntFlag):
    """Which clamp changed the policy targets on a step (bit flags, stable values for logs)."""

    NONE = 0
    ACTION_CLIP = 1
    SOFT_LIMIT = 2
    RATE_LIMIT = 4
    TORQUE_LIMIT = 8


def as_joint_vector(name: str, value: ArrayLike, n: int) -> np.ndarray:
    """`value` as a new float64 vector of `n` finite entries; ValueError naming `name` otherwise."""
    array = np.array(value, dtype=np.float64)
    if array.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: non-finite entries at joints {np.flatnonzero(~np.isfinite(array)).tolist()}")
    return array


def _clip(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    # Spelled out (not np.clip) so the result for low > high is defined: `high` wins. Callers only
    # pass low <= high, but the order of min/max is part of the guarantees above.
    return np.minimum(np.maximum(x, low), high)


def torque_window(q: np.ndarray, dq: np.ndarray, cfg: SafetyConfig) -> tuple[np.ndarray, np.ndarray]:
    """The targets q* with |kp(q* - q) - kd*dq| <= torque_limits, as per-joint (low, high)."""
    tau = cfg.vectors.torque_limits
    centre = q + (cfg.kd / cfg.kp) * dq  # zero-torque target
    return centre - tau / cfg.kp, centre + tau / cfg.kp


def predicted_torque(targets: np.ndarray, q: np.ndarray, dq: np.ndarray, cfg: SafetyConfig) -> np.ndarray:
    """The PD torque the robot side would apply for `targets` at the measured state (before its own clip)."""
    return cfg.kp * (np.asarray(targets) - q) - cfg.kd * np.asarray(dq)


def clamp_policy_targets(
    action: ArrayLike,
    q: ArrayLike,
    dq: ArrayLike,
    previous_targets: ArrayLike,
    cfg: SafetyConfig,
) -> tuple[np.ndarray, Clamp]:
    """Joint targets for a policy action, clamped in the order of DEPLOY.md §7.3 (see the module doc).

    All inputs are per-joint vectors in the contract's joint order and must be finite (ValueError
    otherwise: the safety machine checks for NaN/Inf before calling this). Returns new arrays.
    """
    v = cfg.vectors
    n = len(cfg.joint_names)
    a = as_joint_vector("action", action, n)
    q_ = as_joint_vector("q", q, n)
    dq_ = as_joint_vector("dq", dq, n)
    previous = as_joint_vector("previous_targets", previous_targets, n)
    low, high = v.soft_lower, v.soft_upper
    clamps = Clamp.NONE

    # 1. action clip
    limit = cfg.action_limit
    clipped = _clip(a, np.full(n, -limit), np.full(n, limit))
    if np.any(clipped != a):
        clamps |= Clamp.ACTION_CLIP

    # 2. action -> targets
    raw = v.default_pose + cfg.action_scale * clipped

    # 3. soft joint limits
    targets = _clip(raw, low, high)
    if np.any(targets != raw):
        clamps |= Clamp.SOFT_LIMIT

    # 4. rate limit, then the soft limits again: soft limits win over the rate limit when the
    # previous targets were outside them (the target jumps straight back inside).
    step = cfg.max_target_step_rad
    rated = _clip(targets, previous - step, previous + step)
    if np.any(rated != targets):
        clamps |= Clamp.RATE_LIMIT
    inside = _clip(rated, low, high)
    if np.any(inside != rated):
        clamps |= Clamp.SOFT_LIMIT

    # 5. torque: into the torque window, then into the soft limits (see G2 in the module doc).
    window_low, window_high = torque_window(q_, dq_, cfg)
    final = _clip(_clip(inside, window_low, window_high), low, high)
    if np.any(final != inside):
        clamps |= Clamp.TORQUE_LIMIT
    return final, clamps
