"""The deploy observation builder reproduces the env's policy input from measured signals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dhal.deploy.observation import JointMapping, MessageError, ObservationBuilder, RobotSignals, signals_from_messages
from dhal.envs.registry import make_env
from dhal.envs.robots import go1

QUIET = {"observations.noise": False, "randomization.enabled": False}


def env_signals(env) -> RobotSignals:
    s = env.state
    return RobotSignals(joint_pos=s.joint_pos[0].double().numpy(), joint_vel=s.joint_vel[0].double().numpy(),
                        base_quat_wxyz=s.base_quat[0].double().numpy(), gyro=s.base_ang_vel_b[0].double().numpy())


def test_builder_equals_the_env_history_step_by_step():
    env = make_env(num_envs=1, seed=3, overrides={**QUIET, "commands.lin_vel_x": (1.0, 1.0)})
    obs = env.reset()
    builder = ObservationBuilder(env.contract)
    builder.start()
    generator = torch.Generator().manual_seed(0)
    for step in range(30):
        built = builder.build(env_signals(env), env.commands[0].numpy())
        np.testing.assert_allclose(built, obs["history"][0].numpy(), rtol=0, atol=1e-6, err_msg=f"step {step}")
        action = torch.rand(1, 12, generator=generator) * 2.0 - 1.0
        result = env.step(action)
        assert not bool((result.terminated | result.truncated).any())
        obs = result.observations
        builder.record_action(action[0].numpy())
    env.close()


def test_joint_mapping_is_by_name_not_position():
    mapping = JointMapping(go1.JOINT_NAMES)
    names = list(reversed(go1.JOINT_NAMES))
    positions = np.arange(12.0)[::-1]  # position i belongs to JOINT_NAMES[i]
    signals = signals_from_messages(mapping, names, positions, np.zeros(12), (0, 0, 0, 1), (0, 0, 0))
    assert np.array_equal(signals.joint_pos, np.arange(12.0))
    assert np.array_equal(signals.base_quat_wxyz, [1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("names, positions, quat, match", [
    (go1.JOINT_NAMES[:11], np.zeros(11), (0, 0, 0, 1), "missing \\['RL_calf_joint'\\]"),
    (go1.JOINT_NAMES, np.zeros(11), (0, 0, 0, 1), "11 values for 12 joint names"),
    (go1.JOINT_NAMES[:11] + ("FR_hip_joint",), np.zeros(12), (0, 0, 0, 1), "duplicated \\['FR_hip_joint'\\]"),
    (go1.JOINT_NAMES, np.zeros(12), (0, 0, 0, 0), "not a unit quaternion"),
    (go1.JOINT_NAMES, np.full(12, np.nan), (0, 0, 0, 1), "NaN"),
])
def test_malformed_messages_raise_a_named_error(names, positions, quat, match):
    mapping = JointMapping(go1.JOINT_NAMES)
    with pytest.raises(MessageError, match=match):
        signals_from_messages(mapping, names, positions, np.zeros(len(positions)), quat, (0, 0, 0))


def test_start_refills_the_history_and_restarts_the_clock():
    env = make_env(num_envs=1, overrides=QUIET)
    env.reset()
    builder = ObservationBuilder(env.contract)
    signals, command = env_signals(env), np.array([1.0, 0.0, 0.0])
    first = builder.build(signals, command).reshape(20, -1)
    assert np.array_equal(first, np.repeat(first[-1:], 20, axis=0))
    builder.record_action(np.ones(12))
    builder.record_action(np.ones(12))
    moved = builder.build(signals, command).reshape(20, -1)
    phase = env.contract.term_slice("phase")
    assert moved[-1, phase] != first[-1, phase] and not np.array_equal(moved[0], moved[-1])
    builder.start()
    again = builder.build(signals, command).reshape(20, -1)
    assert np.array_equal(again, first)
    env.close()
