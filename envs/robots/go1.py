"""Unitree Go1 constants: names, poses, limits and gains shared by the model, the task and deploy.

Joint order is FR, FL, RR, RL x (hip, thigh, calf), the order the real robot and its SDK report.
The MJCF in assets/go1 is written to match these values; tests/assets checks that it does.
"""

from __future__ import annotations

LEGS: tuple[str, ...] = ("FR", "FL", "RR", "RL")
JOINT_KINDS: tuple[str, ...] = ("hip", "thigh", "calf")
JOINT_NAMES: tuple[str, ...] = tuple(f"{leg}_{kind}_joint" for leg in LEGS for kind in JOINT_KINDS)
ACTUATOR_NAMES: tuple[str, ...] = tuple(f"{leg}_{kind}" for leg in LEGS for kind in JOINT_KINDS)

ROOT_BODY = "trunk"
ROOT_JOINT = "root"
IMU_SITE = "imu"
FOOT_SITES: tuple[str, ...] = tuple(f"{leg}_foot" for leg in LEGS)
FOOT_TOUCH_SENSORS: tuple[str, ...] = tuple(f"{leg}_foot_touch" for leg in LEGS)
# Thighs and calves touching anything is a "collision" in DHAL's sim2real group.
COLLISION_TOUCH_SENSORS: tuple[str, ...] = tuple(
    f"{leg}_{kind}_touch" for leg in LEGS for kind in ("thigh", "calf")
)
IMU_QUAT_SENSOR = "imu_quat"
IMU_GYRO_SENSOR = "imu_gyro"
IMU_ACC_SENSOR = "imu_acc"
IMU_LINVEL_SENSOR = "imu_linvel"

FOOT_RADIUS = 0.02
THIGH_LENGTH = 0.213
CALF_LENGTH = 0.213

# Per-leg (hip, thigh, calf) values, repeated for the four legs.
JOINT_LOWER: tuple[float, ...] = (-0.863, -0.686, -2.818) * 4
JOINT_UPPER: tuple[float, ...] = (0.863, 4.501, -0.888) * 4
TORQUE_LIMITS: tuple[float, ...] = (23.7, 23.7, 35.55) * 4
VELOCITY_LIMITS: tuple[float, ...] = (30.1, 30.1, 20.06) * 4

# DHAL's joint PD law: tau = kp * (q_target - q) - kd * qdot, clipped to TORQUE_LIMITS.
KP = 40.0
KD = 1.0

# Push pose: right legs extended to reach the ground, left legs crouched on the deck. It is also
# the action offset (joint target = DEFAULT_POSE + action_scale * action).
PUSH_POSE: tuple[float, ...] = (
    -0.1, 1.0, -1.8,  # FR
    0.1, 1.5, -2.4,  # FL
    -0.1, 1.0, -1.8,  # RR
    0.1, 1.5, -2.4,  # RL
)
# Glide pose: hips adducted so all four feet fit on the deck.
GLIDE_POSE: tuple[float, ...] = (
    0.3, 1.1, -2.4,  # FR
    -0.3, 1.1, -2.4,  # FL
    0.3, 1.1, -2.4,  # RR
    -0.3, 1.1, -2.4,  # RL
)
DEFAULT_POSE = PUSH_POSE

HIP_INDICES: tuple[int, ...] = (0, 3, 6, 9)
