"""The deploy wire: topic names, message types, QoS and the robot-mode enum, declared once.

Every process on the robot computer (policy node, MuJoCo robot node, Go1 bridge, recorder)
imports its names from here, so a topic cannot be spelled two ways. Standard message types only:
targets follow ros2_control's forward command controller (`std_msgs/Float64MultiArray`, joints in
the contract's order) and the gains belong to the robot side, chosen by the requested mode.
Nothing here imports rclpy, so the module is usable (and tested) without ROS installed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RobotMode(enum.IntEnum):
    """What the robot side (simulator or bridge) does with the motors; sent as `std_msgs/UInt8`."""

    PASSIVE = 0  # no torque (kp = kd = 0)
    DAMPING = 1  # kp = 0, small kd: the safe fallback from anything
    ACTIVE_STAND = 2  # position control with the stiffer standing gains
    ACTIVE_POLICY = 3  # position control with the gains the policy was trained with


@dataclass(frozen=True)
class Topic:
    name: str
    type: str  # ROS interface name, e.g. "sensor_msgs/msg/JointState"
    reliable: bool
    transient_local: bool = False
    depth: int = 1


JOINT_STATES = Topic("/joint_states", "sensor_msgs/msg/JointState", reliable=False)
IMU = Topic("/imu/data", "sensor_msgs/msg/Imu", reliable=False)
JOY = Topic("/joy", "sensor_msgs/msg/Joy", reliable=False)
JOINT_TARGETS = Topic("/joint_group_position_controller/commands", "std_msgs/msg/Float64MultiArray", reliable=True)
MODE_REQUEST = Topic("/go1/mode_request", "std_msgs/msg/UInt8", reliable=True, transient_local=True)
ROBOT_MODE = Topic("/go1/mode", "std_msgs/msg/UInt8", reliable=True, transient_local=True)
ESTOP = Topic("/estop", "std_msgs/msg/Bool", reliable=True, transient_local=True)
CMD_VEL = Topic("/cmd_vel", "geometry_msgs/msg/Twist", reliable=True)
DIAGNOSTICS = Topic("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", reliable=True, depth=10)
# Operator requests by name (stand_up, start_policy, sit_down, damp, reset): what the joystick
# buttons do, for a script or a laptop without the Go1 remote. The controller's FSM state is
# published for monitors and tests.
OPERATOR = Topic("/dhal/operator", "std_msgs/msg/String", reliable=True, depth=10)
FSM_STATE = Topic("/dhal/fsm_state", "std_msgs/msg/UInt8", reliable=True, transient_local=True)
# Simulator ground truth (the real robot has none): base pose and twist in the world frame.
SIM_BASE_POSE = Topic("/sim/base_pose", "nav_msgs/msg/Odometry", reliable=False)

ALL_TOPICS: tuple[Topic, ...] = (
    JOINT_STATES, IMU, JOY, JOINT_TARGETS, MODE_REQUEST, ROBOT_MODE, ESTOP, CMD_VEL, DIAGNOSTICS, OPERATOR,
    FSM_STATE, SIM_BASE_POSE,
)
