"""Restarting envs as a pure function of tensors: the start pose and the memory of the envs in a
mask. Masked throughout (every env is computed, the mask picks), so on a GPU nothing waits to
learn which envs finished; the random numbers come in as `ResetDraws`, so `SimConfig.compile`
can fuse the rest into one graph."""

from __future__ import annotations

from typing import NamedTuple

import torch

from dhal.envs.backends.base import SimState
from dhal.envs.contract import Contract
from dhal.envs.skateboard import clock, commands
from dhal.envs.skateboard.config import SkateboardConfig
from dhal.envs.skateboard.observations import DomainParams, Observed
from dhal.envs.skateboard.state import SceneIndices, SkateState, derive_state
from dhal.envs.skateboard.transition import Contacts, Memory, episode_phase, observe_memory


class ResetDraws(NamedTuple):
    """U(0, 1) numbers for one restart of every env."""

    glide: torch.Tensor  # [N]: the glide keyframe where below reset.glide_fraction, else push
    joint_noise: torch.Tensor  # [N, J]
    command_uniforms: torch.Tensor  # [N, 2]: vx, yaw rate

    @staticmethod
    def draw(n: int, num_joints: int, generator: torch.Generator, device: torch.device) -> ResetDraws:
        u = torch.rand(n, 1 + num_joints + 2, generator=generator, device=device)
        return ResetDraws(u[:, 0], u[:, 1:1 + num_joints], u[:, 1 + num_joints:])


class StartPose(NamedTuple):
    qpos: torch.Tensor  # [N, nq]
    qvel: torch.Tensor  # [N, nv]
    ctrl: torch.Tensor  # [N, nu]: the pose's joint targets


def restart(
    mask: torch.Tensor,
    memory: Memory,
    draws: ResetDraws,
    cfg: SkateboardConfig,
    idx: SceneIndices,
    keyframes: dict[str, torch.Tensor],
    poses: dict[str, torch.Tensor],
    nv: int,
    nu: int,
) -> tuple[Memory, StartPose]:
    """The memory with the rows in `mask` ([N] bool) restarted, and every env's start pose (the
    simulator writes the masked rows): the push or glide keyframe plus joint noise, at rest, with
    that pose's joint targets (`poses`: "push" and "glide" targets [J]) as controls. The frame
    history is refilled by the observations of the new state, not here.

    Everything is new tensors except the last joint velocities and torques, zeroed in place: they
    are column views of the last snapshot, and keeping that layout keeps the compiled step from
    compiling a second time for a contiguous one."""
    rows = mask.unsqueeze(-1)
    glide = (draws.glide < cfg.reset.glide_fraction).unsqueeze(-1)
    qpos = torch.where(glide, keyframes["glide"], keyframes["push"])  # a new tensor
    noise = cfg.reset.joint_noise
    if noise > 0:
        qpos[:, idx.joint_qpos] += noise * (2.0 * draws.joint_noise - 1.0)
    ctrl = torch.zeros(mask.shape[0], nu, device=mask.device)
    ctrl[:, idx.actuators] = torch.where(glide, poses["glide"], poses["push"])
    pose = StartPose(qpos, torch.zeros(mask.shape[0], nv, device=mask.device), ctrl)

    new_commands = torch.where(rows, commands.commands_from_uniforms(draws.command_uniforms, cfg.commands),
                               memory.commands)
    indicators = clock.phase_indicators(torch.zeros_like(draws.glide), new_commands, cfg.clock)
    c = memory.contacts
    restarted = Memory(
        episode_steps=memory.episode_steps.masked_fill(mask, 0),
        commands=new_commands,
        actions=memory.actions.masked_fill(rows, 0.0),
        last_actions=memory.last_actions.masked_fill(rows, 0.0),
        last_joint_vel=memory.last_joint_vel.masked_fill_(rows, 0.0),
        last_torques=memory.last_torques.masked_fill_(rows, 0.0),
        contacts=Contacts(
            raw_foot=c.raw_foot.masked_fill(rows, False), foot=c.foot.masked_fill(rows, False),
            raw_wheel=c.raw_wheel.masked_fill(rows, False), wheel=c.wheel.masked_fill(rows, False),
            history=c.history.masked_fill(rows.unsqueeze(-1), 0.0)),
        gates={name: torch.where(mask, indicators[name], gate) for name, gate in memory.gates.items()},
        episode_sums=memory.episode_sums.masked_fill(rows, 0.0),
        history=memory.history,
    )
    return restarted, pose


def observe_restarted_snapshot(snapshot: SimState, idx: SceneIndices, contract: Contract, cfg: SkateboardConfig,
                               memory: Memory, noise: torch.Tensor | None, domain: DomainParams,
                               default_pose: torch.Tensor, fresh: torch.Tensor) -> tuple[SkateState, Observed]:
    """The state derived from the physics' `snapshot` after a restart, and its observations: the
    envs in `fresh` fill their history with the frame of their new state, the others keep the
    history of the step before. One function, so that a compiled env enters one graph for both
    (as `transition.transition_from_snapshot`)."""
    s = derive_state(snapshot, idx)
    return s, observe_memory(contract, cfg, s, memory, episode_phase(memory.episode_steps, cfg), noise, domain,
                             default_pose, fresh)
