"""SDK motor slots <-> the contract's joint order, matched by joint name, never by position.

The SDK numbers the Go1 motors FR_0..RL_2 (unitree_legged_sdk `quadruped.h`: legs FR, FL, RR, RL;
0 = hip, 1 = thigh, 2 = calf). `SDK_MOTOR_JOINTS` names each slot with the URDF/MJCF joint name
used by `dhal.envs.robots.go1`, so a contract that lists its joints in any order maps correctly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SDK_LEGS = ("FR", "FL", "RR", "RL")
_SDK_JOINT_SUFFIXES = ("hip", "thigh", "calf")  # SDK joint index 0, 1, 2
SDK_MOTOR_JOINTS: tuple[str, ...] = tuple(f"{leg}_{kind}_joint" for leg in _SDK_LEGS for kind in _SDK_JOINT_SUFFIXES)


def joint_kind(name: str) -> str:
    """'hip', 'thigh' or 'calf' for a Go1 joint name."""
    for kind in _SDK_JOINT_SUFFIXES:
        if name.endswith(f"_{kind}_joint"):
            return kind
    raise ValueError(f"{name!r} is not a Go1 joint name (expected <leg>_<hip|thigh|calf>_joint)")


class JointMap:
    """Index bookkeeping between contract order (what ROS sees) and SDK motor slots (what UDP carries)."""

    def __init__(self, joint_names: Sequence[str]):
        names = tuple(joint_names)
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate joint names in {names}")
        unknown = [n for n in names if n not in SDK_MOTOR_JOINTS]
        missing = [n for n in SDK_MOTOR_JOINTS if n not in names]
        if unknown or missing:
            raise ValueError(f"joint names must be exactly the 12 Go1 joints; unknown {unknown}, missing {missing}")
        self.joint_names = names
        # contract value i lives in SDK slot sdk_slot[i]
        self.sdk_slot = np.array([SDK_MOTOR_JOINTS.index(n) for n in names])
        # SDK slot j holds contract value contract_index[j]
        self.contract_index = np.array([names.index(n) for n in SDK_MOTOR_JOINTS])

    def to_sdk(self, contract_values: np.ndarray) -> np.ndarray:
        return np.asarray(contract_values)[self.contract_index]

    def to_contract(self, sdk_values: np.ndarray) -> np.ndarray:
        return np.asarray(sdk_values)[self.sdk_slot]
