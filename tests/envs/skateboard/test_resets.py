"""resets.restart: the masked rows restart, the others keep every value."""

from __future__ import annotations

import torch

from dhal.envs.registry import make_env
from dhal.envs.skateboard import resets
from dhal.envs.skateboard.transition import Memory


def test_restart_resets_the_masked_rows_and_leaves_the_others():
    env = make_env(num_envs=3, seed=1, overrides={"reset.joint_noise": 0.05})
    for _ in range(3):
        env.step(0.3 * torch.ones(3, 12))
    before = env._memory()
    kept = Memory(*(v if isinstance(v, dict) or not isinstance(v, torch.Tensor) else v.clone() for v in before))
    mask = torch.tensor([False, True, False])
    draws = resets.ResetDraws(glide=torch.tensor([0.9, 0.1, 0.9]), joint_noise=torch.ones(3, 12),
                              command_uniforms=torch.full((3, 2), 0.99))
    memory, pose = resets.restart(mask, before, draws, env.cfg, env.idx, env.keyframes, env.start_targets,
                                  env.sim.info.nv, env.sim.info.nu)

    assert memory.episode_steps.tolist() == [3, 0, 3]
    for name in ("actions", "last_actions", "last_joint_vel", "last_torques", "episode_sums"):
        value = getattr(memory, name)
        assert not value[1].any(), name
        assert torch.equal(value[[0, 2]], getattr(kept, name)[[0, 2]]), name
    assert not memory.contacts.history[1].any() and not memory.contacts.foot[1].any()
    assert torch.equal(memory.commands[[0, 2]], before.commands[[0, 2]])
    high = env.cfg.commands.lin_vel_x[1]
    assert abs(float(memory.commands[1, 0]) - high) < 0.05 * high  # near the top of the range
    # row 1 drew the glide keyframe (0.1 < glide_fraction), its joints moved by +joint_noise
    glide = env.keyframes["glide"]
    joints = pose.qpos[1, env.idx.joint_qpos]
    assert torch.allclose(joints, glide[env.idx.joint_qpos] + 0.05)
    assert torch.equal(pose.ctrl[1, env.idx.actuators], env.glide_pose)
    assert torch.equal(pose.ctrl[0, env.idx.actuators], env.default_pose)
    assert not pose.qvel.any()
    # the gate of a restarted env starts at its phase's indicator, the others' are untouched
    assert torch.equal(memory.gates["glide"][[0, 2]], before.gates["glide"][[0, 2]])
    assert float(memory.gates["glide"][1]) + float(memory.gates["push"][1]) == 1.0
    env.close()
