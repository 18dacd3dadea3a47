"""BridgeConfig defaults come from the contract and go1.py by name; overrides are checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dhal.deploy.go1.config import SDK_POSITION_LIMITS, BridgeConfig
from dhal.deploy.go1.joint_map import SDK_MOTOR_JOINTS, JointMap
from dhal.deploy.go1.bridge_node import parse_config
from dhal.deploy.topics import RobotMode
from dhal.envs.contract import go1_contract
from dhal.envs.robots import go1


def test_defaults_match_what_the_policy_was_trained_with():
    contract = go1_contract()
    config = BridgeConfig()
    assert config.joint_names == contract.joint_names
    assert (config.gains.policy.kp, config.gains.policy.kd) == (contract.kp, contract.kd)
    assert config.torque_limits == contract.torque_limits
    assert config.gains.of(RobotMode.PASSIVE).kp == config.gains.of(RobotMode.PASSIVE).kd == 0
    assert config.gains.damping.kp == 0 and config.gains.damping.kd > 0
    assert config.command_timeout_s == 0.05
    assert (config.robot_host, config.robot_port, config.local_port) == ("192.168.123.10", 8007, 8080)


def test_position_limits_are_the_sdk_and_urdf_intersection_by_name():
    limits = dict(zip(BridgeConfig().joint_names, BridgeConfig().position_limits))
    assert limits["FL_hip_joint"] == (-0.863, 0.863)  # URDF is tighter than the SDK's +-1.047
    assert limits["RR_thigh_joint"] == (-0.663, 2.966)  # SDK is tighter on both ends
    assert limits["RL_calf_joint"] == (-2.721, -0.888)  # one bound from each
    for name, (low, high) in limits.items():
        kind = name.split("_")[1]
        assert SDK_POSITION_LIMITS[kind][0] <= low < high <= SDK_POSITION_LIMITS[kind][1]
    # the default pose must be reachable, or the stand would be clamped
    for name, value in zip(go1.JOINT_NAMES, go1.DEFAULT_POSE):
        assert limits[name][0] < value < limits[name][1]


def test_per_joint_values_follow_a_permuted_joint_order():
    order = tuple(reversed(go1.JOINT_NAMES))
    config = BridgeConfig(joint_names=order)
    assert config.position_limits == tuple(reversed(BridgeConfig().position_limits))
    assert config.torque_limits == tuple(reversed(BridgeConfig().torque_limits))


def test_joint_map_is_by_name():
    order = ("RL_calf_joint",) + tuple(n for n in SDK_MOTOR_JOINTS if n != "RL_calf_joint")
    joint_map = JointMap(order)
    contract_values = np.arange(12.0)  # value i belongs to order[i]
    sdk = joint_map.to_sdk(contract_values)
    assert sdk[SDK_MOTOR_JOINTS.index("RL_calf_joint")] == 0.0
    assert sdk[SDK_MOTOR_JOINTS.index("FR_hip_joint")] == 1.0
    np.testing.assert_array_equal(joint_map.to_contract(sdk), contract_values)
    with pytest.raises(ValueError, match="missing"):
        JointMap(SDK_MOTOR_JOINTS[:-1])
    with pytest.raises(ValueError, match="unknown"):
        JointMap(SDK_MOTOR_JOINTS[:-1] + ("RL_knee_joint",))
    with pytest.raises(ValueError, match="duplicate"):
        JointMap(SDK_MOTOR_JOINTS[:-1] + (SDK_MOTOR_JOINTS[0],))


def test_json_overrides_and_their_errors(tmp_path):
    path = tmp_path / "bridge.json"
    path.write_text(json.dumps({"robot_port": 9000, "max_mode": "damping", "gains": {"stand": {"kp": 50}},
                                "command_timeout_s": 0.08}))
    config = BridgeConfig.from_json(path)
    assert config.robot_port == 9000 and config.max_mode == RobotMode.DAMPING and config.command_timeout_s == 0.08
    assert (config.gains.stand.kp, config.gains.stand.kd) == (50.0, BridgeConfig().gains.stand.kd)
    with pytest.raises(KeyError, match="robot_prot"):
        BridgeConfig().with_overrides({"robot_prot": 1})
    with pytest.raises(KeyError, match="sprint"):
        BridgeConfig().with_overrides({"gains": {"sprint": {"kp": 1}}})
    with pytest.raises(ValueError, match="power_protect_level"):
        BridgeConfig(power_protect_level=11)
    with pytest.raises(ValueError, match="damping needs kd > 0"):
        BridgeConfig().with_overrides({"gains": {"damping": {"kd": 0}}})


def test_command_line_flags_override_the_json_file(tmp_path):
    path = tmp_path / "bridge.json"
    path.write_text(json.dumps({"robot_port": 9000, "local_port": 9001}))
    config = parse_config(["--config", str(path), "--local-port", "9100", "--max-mode", "ACTIVE_STAND"])
    assert (config.robot_port, config.local_port, config.max_mode) == (9000, 9100, RobotMode.ACTIVE_STAND)
