"""deploy/safety_config.py: the Go1 defaults, validation that names the field, and the config taken from a policy's contract."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from dhal.deploy.safety_config import SafetyConfig
from dhal.envs.robots import go1

N = len(go1.JOINT_NAMES)
LIVE = SafetyConfig(dry_run=False)
LOW = LIVE.vectors.soft_lower
HIGH = LIVE.vectors.soft_upper


def test_default_config_is_the_go1_one():
    cfg = SafetyConfig()
    assert cfg.dry_run is True
    assert cfg.state_timeout_s == 0.025 and cfg.max_tilt_rad == 0.8 and cfg.max_inference_s == 0.005
    assert cfg.max_consecutive_overruns == 3 and cfg.stand_up_time_s == 2.5 and cfg.sit_down_time_s == 2.0
    assert cfg.stand_up_max_error_rad == 0.5
    assert np.all(LOW > np.array(go1.JOINT_LOWER)) and np.all(HIGH < np.array(go1.JOINT_UPPER))
    assert np.all(cfg.vectors.torque_limits < np.array(go1.TORQUE_LIMITS))
    assert cfg.default_pose == go1.DEFAULT_POSE
    with pytest.raises(ValueError):
        cfg.vectors.soft_lower[0] = 0.0  # read-only


@pytest.mark.parametrize("name, value", [
    ("soft_lower", LIVE.soft_lower[:-1]),
    ("soft_lower", tuple(LIVE.soft_upper)),  # lower not below upper
    ("soft_upper", (math.nan,) + LIVE.soft_upper[1:]),
    ("torque_limits", (-1.0,) * N),
    ("torque_limits", "23.7"),
    ("default_pose", (5.0,) + LIVE.default_pose[1:]),
    ("lying_pose", (0.0,) * N),  # calf 0 is outside its range
    ("action_scale", 0.0),
    ("action_limit", -1.0),
    ("kp", 0.0),
    ("kd", -0.5),
    ("max_target_step_rad", math.inf),
    ("state_timeout_s", 0.0),
    ("max_tilt_rad", 4.0),
    ("max_inference_s", "fast"),
    ("max_consecutive_overruns", 0),
    ("max_consecutive_overruns", 2.5),
    ("action_timeout_s", -0.1),
    ("joint_limit_margin_rad", -0.01),
    ("joint_limit_margin_rad", 0.6),  # not below stand_up_max_error_rad
    ("stand_up_time_s", 0.0),
    ("sit_down_time_s", math.nan),
    ("stand_up_max_error_rad", 0.0),
    ("dry_run", "false"),
    ("joint_names", ("a",) * N),
])
def test_config_validation_names_the_field(name, value):
    with pytest.raises(ValueError, match=rf"^SafetyConfig\.{name}:"):
        SafetyConfig(**{name: value})


def test_config_accepts_lists_and_arrays():
    cfg = SafetyConfig(soft_lower=list(LIVE.soft_lower), default_pose=np.array(LIVE.default_pose))
    assert cfg == SafetyConfig()
    assert isinstance(cfg.soft_lower, tuple)


def _fake_contract(joint_names=go1.JOINT_NAMES, **kw):
    """A duck-typed contract (the real one needs torch), with go1 values looked up by name."""
    pose = dict(zip(go1.JOINT_NAMES, go1.DEFAULT_POSE))
    torque = dict(zip(go1.JOINT_NAMES, go1.TORQUE_LIMITS))
    values = dict(joint_names=tuple(joint_names), default_pose=tuple(pose.get(j, 0.0) for j in joint_names),
                  action_scale=0.5, action_limit=2.0, kp=30.0, kd=0.8,
                  torque_limits=tuple(torque.get(j, 10.0) for j in joint_names))
    values.update(kw)
    return SimpleNamespace(**values)


def test_for_contract_takes_the_policy_values_and_maps_limits_by_name():
    contract = _fake_contract()
    cfg = SafetyConfig.for_contract(contract, torque_derate=0.8, dry_run=False, max_tilt_rad=1.2)
    assert (cfg.action_scale, cfg.action_limit, cfg.kp, cfg.kd) == (0.5, 2.0, 30.0, 0.8)
    assert cfg.default_pose == contract.default_pose and cfg.dry_run is False and cfg.max_tilt_rad == 1.2
    np.testing.assert_allclose(cfg.torque_limits, np.array(go1.TORQUE_LIMITS) * 0.8)
    assert cfg.soft_lower == SafetyConfig().soft_lower and cfg.lying_pose == SafetyConfig().lying_pose

    permuted = tuple(reversed(go1.JOINT_NAMES))
    cfg_p = SafetyConfig.for_contract(_fake_contract(permuted))
    assert cfg_p.joint_names == permuted
    assert cfg_p.soft_lower == tuple(reversed(SafetyConfig().soft_lower))
    assert cfg_p.lying_pose == tuple(reversed(SafetyConfig().lying_pose))
    assert cfg_p.torque_limits == tuple(reversed(SafetyConfig().torque_limits))

    with pytest.raises(TypeError, match="max_tilt"):
        SafetyConfig.for_contract(contract, max_tilt=1.0)
    odd = _fake_contract(joint_names=("x",) + go1.JOINT_NAMES[1:], default_pose=(0.0,) + go1.DEFAULT_POSE[1:])
    with pytest.raises(ValueError, match=r"^SafetyConfig\.soft_lower:.*no Go1 default"):
        SafetyConfig.for_contract(odd)
    cfg_x = SafetyConfig.for_contract(odd, soft_lower=(-1.0,) + LIVE.soft_lower[1:],
                                      soft_upper=(1.0,) + LIVE.soft_upper[1:], lying_pose=(0.0,) + LIVE.lying_pose[1:])
    assert cfg_x.joint_names[0] == "x"
    with pytest.raises(ValueError, match=r"^SafetyConfig\.action_scale:"):
        SafetyConfig.for_contract(_fake_contract(action_scale=-0.25))


def test_for_contract_with_the_real_contract():
    pytest.importorskip("torch")
    from dhal.envs.contract import go1_contract

    contract = go1_contract(action_scale=0.3)
    cfg = SafetyConfig.for_contract(contract)
    assert cfg.joint_names == contract.joint_names and cfg.action_scale == 0.3
    assert cfg.action_limit == contract.action_limit and cfg.kp == contract.kp and cfg.kd == contract.kd
    assert cfg == SafetyConfig(action_scale=0.3)
