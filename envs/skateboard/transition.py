"""A control step's task update after the physics, as one pure function of tensors.

Everything between the fresh derived state and the reset of finished envs: filtered contacts,
the phase clock and its gates, rewards by group, terminations, the step's metrics, command
resampling and the observations. It is one function so that `SimConfig.compile` fuses it into
one graph: run eagerly on a GPU it is a few hundred small kernels of about 2 us of GPU time
each, about 40 % of what the env added to raw physics at 4,096 envs (BENCHMARKS.md). Random
draws come in as `Draws` (dynamo cannot trace a generator); nothing here writes to its inputs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from dhal.envs.backends.base import SimState
from dhal.envs.contract import Contract
from dhal.envs.packing import pack_rows, unpack_rows, zero_rows
from dhal.envs.skateboard import clock, commands, observations, rewards, terminations
from dhal.envs.skateboard.config import ObservationConfig, SkateboardConfig
from dhal.envs.skateboard.observations import DomainParams, Observed
from dhal.envs.skateboard.state import SceneIndices, SkateState, derive_state


class Contacts(NamedTuple):
    """Contact flags [N, 4] (bool) and the filtered foot contacts' history [N, L, 4]."""

    raw_foot: torch.Tensor  # this step's touch sensing
    foot: torch.Tensor  # DHAL's filter: in contact now or at the previous step
    raw_wheel: torch.Tensor
    wheel: torch.Tensor
    history: torch.Tensor  # newest last


class Memory(NamedTuple):
    """What an env remembers between steps and a step reads."""

    episode_steps: torch.Tensor  # [N] long, this step counted
    commands: torch.Tensor  # [N, 3] vx, vy, yaw rate
    actions: torch.Tensor  # [N, 12] this step's, clamped
    last_actions: torch.Tensor
    last_joint_vel: torch.Tensor
    last_torques: torch.Tensor
    contacts: Contacts
    gates: dict[str, torch.Tensor]  # [N] each
    episode_sums: torch.Tensor  # [N, T] reward terms so far
    history: torch.Tensor  # [N, H, F] noisy frames


class Draws(NamedTuple):
    command_uniforms: torch.Tensor  # [N, 2] U(0, 1): vx, yaw rate of a resampled command
    frame_noise: torch.Tensor | None  # [N, F] N(0, 1), or None without observation noise


class Transition(NamedTuple):
    contacts: Contacts
    gates: dict[str, torch.Tensor]
    breakdown: rewards.RewardBreakdown
    episode_sums: torch.Tensor
    reasons: dict[str, torch.Tensor]  # [N] bool per termination
    terminated: torch.Tensor
    truncated: torch.Tensor  # time-outs that did not also terminate
    done: torch.Tensor  # terminated | truncated
    metric_table: torch.Tensor  # [N, M]
    metrics: dict[str, torch.Tensor]  # its columns by name
    commands: torch.Tensor  # after resampling: what the observations carry
    observed: Observed
    # the dynamics model's targets, taken before finished envs restart
    next_state: torch.Tensor  # [N, D]: the clean frame's dynamics part
    next_contacts: torch.Tensor  # [N, 3] float: the free feet's contacts

    def memory_after(self, before: Memory, s: SkateState) -> Memory:
        """What the env remembers after this transition, which started from `before` and
        reached `s`."""
        return before._replace(contacts=self.contacts, gates=self.gates, commands=self.commands,
                               episode_sums=self.episode_sums, last_joint_vel=s.joint_vel,
                               last_torques=s.joint_torque, history=self.observed.history)


def episode_phase(episode_steps: torch.Tensor, cfg: SkateboardConfig) -> torch.Tensor:
    """[N] clock phase of each env's time since its episode started."""
    return clock.clock_phase(episode_steps.float() * cfg.control_dt, cfg.clock)


def observe_memory(contract: Contract, cfg: SkateboardConfig, s: SkateState, memory: Memory, phase: torch.Tensor,
                   noise: torch.Tensor | None, domain: DomainParams, default_pose: torch.Tensor,
                   fresh: torch.Tensor | None) -> Observed:
    """Every observation of `s` for envs whose commands, last action, contacts and frame history
    are `memory`'s (`noise` and `fresh` as for `observations.observe`)."""
    c = memory.contacts
    return observations.observe(
        contract, cfg.observations.critic, s,
        commands=memory.commands, last_action=memory.actions,
        phase_input=clock.phase_input(phase, memory.commands, cfg.clock), default_pose=default_pose,
        noise=noise, domain=domain, contact_history=c.history, foot_contact=c.foot, wheel_contact=c.wheel,
        history=memory.history, fresh=fresh,
    )


def update_contacts(s: SkateState, last: Contacts, cfg: ObservationConfig) -> Contacts:
    foot = s.foot_force > cfg.foot_contact_force
    # The tied FL foot's load goes through the connect constraint, not its contact, so its touch
    # sensor reads ~0 N; it stands on the deck by construction.
    foot[:, rewards.FL] = True
    wheel = s.wheel_force > cfg.wheel_contact_force
    filtered = foot | last.raw_foot  # touch sensing flickers
    history = torch.cat((last.history[:, 1:], filtered.float().unsqueeze(1)), dim=1)
    return Contacts(foot, filtered, wheel, wheel | last.raw_wheel, history)


def resample_commands(current: torch.Tensor, episode_steps: torch.Tensor, uniforms: torch.Tensor,
                      cfg: SkateboardConfig) -> torch.Tensor:
    # Masked rather than indexed: drawing N fresh commands costs less than asking the GPU which
    # envs are due.
    due = commands.resample_due(episode_steps, int(round(cfg.commands.resample_s / cfg.control_dt)))
    fresh = commands.commands_from_uniforms(uniforms, cfg.commands)
    return torch.where(due.unsqueeze(-1), fresh, current)


def step_metrics(s: SkateState, contacts: Contacts, phase: torch.Tensor, gates: dict[str, torch.Tensor],
                 commands: torch.Tensor, broken: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The values of this step the training log and `dhal eval` read: one [N, M] table (a new
    tensor, zero in the rows of the mask `broken`) and its columns by name ([N], or [N, 4] per
    foot), views of it."""
    columns = {
        "board_speed": s.deck_lin_vel_b[:, 0],
        "base_height": s.base_pos[:, 2],
        "attachment_error": s.attachment_error,
        "marker_distance": torch.linalg.vector_norm(s.marker_pos - s.foot_pos, dim=-1),  # per foot
        "foot_contact": contacts.foot.float(),
        "phase": phase,
        "gate_glide": gates["glide"],
        "gate_push": gates["push"],
        "command_vx": commands[:, 0],
        "command_yaw_rate": commands[:, 2],
        "yaw_rate": s.base_ang_vel_b[:, 2],
    }
    table = zero_rows(pack_rows(tuple(columns.values())), broken)
    return table, dict(zip(columns, unpack_rows(table, tuple(columns.values()))))


def transition(
    table: rewards.RewardTable,
    cfg: SkateboardConfig,
    contract: Contract,
    s: SkateState,
    memory: Memory,
    draws: Draws,
    *,
    domain: DomainParams,
    default_pose: torch.Tensor,
    glide_pose: torch.Tensor,
    free_feet: torch.Tensor,
    max_episode_length: int,
    broken: torch.Tensor,
) -> Transition:
    """The task's update for one step whose physics produced `s` (see the module docstring).
    `broken` [N] bool: envs whose physics the simulator found diverged since its last check
    (`Simulator.unchecked_divergence`). Their state may be NaN, so what they earn, measure and
    observe this step is 0 and their episode sums stay; the check-in ends their episodes.
    Zeroed here rather than afterwards so that the compiled graph writes each output once."""
    contacts = update_contacts(s, memory.contacts, cfg.observations)
    phase = episode_phase(memory.episode_steps, cfg)
    gates = clock.updated_gates(memory.gates, clock.phase_indicators(phase, memory.commands, cfg.clock), cfg.clock)
    context = rewards.RewardContext(
        state=s, cfg=cfg.rewards, commands=memory.commands, actions=memory.actions,
        last_actions=memory.last_actions, last_joint_vel=memory.last_joint_vel, last_torques=memory.last_torques,
        wheel_contact=contacts.wheel, default_pose=default_pose, glide_pose=glide_pose, dt=cfg.control_dt,
    )
    breakdown = table.compute(context, gates, zeroed=broken)
    reasons = terminations.check_terminations(s, cfg.terminations)
    terminated = torch.stack(tuple(reasons.values()), dim=-1).any(-1)
    truncated = (memory.episode_steps >= max_episode_length) & ~terminated
    metric_table, metrics = step_metrics(s, contacts, phase, gates, memory.commands, broken)
    new_commands = resample_commands(memory.commands, memory.episode_steps, draws.command_uniforms, cfg)
    observed = observe_memory(contract, cfg, s, memory._replace(commands=new_commands, contacts=contacts), phase,
                              draws.frame_noise, domain, default_pose, fresh=None)
    observed = Observed(clean_frame=zero_rows(observed.clean_frame, broken),
                        history=zero_rows(observed.history, broken),
                        privileged=zero_rows(observed.privileged, broken))
    return Transition(
        contacts=contacts, gates=gates, breakdown=breakdown,
        episode_sums=memory.episode_sums + breakdown.term_values, reasons=reasons,
        terminated=terminated, truncated=truncated, done=terminated | truncated, metric_table=metric_table, metrics=metrics,
        commands=new_commands, observed=observed,
        next_state=contract.dynamics_from_frame(observed.clean_frame),
        next_contacts=zero_rows(contacts.foot[:, free_feet].float(), broken),
    )


def transition_from_snapshot(snapshot: SimState, idx: SceneIndices, table: rewards.RewardTable,
                             cfg: SkateboardConfig, contract: Contract, memory: Memory, draws: Draws,
                             **context: Any) -> tuple[SkateState, Transition]:
    """The state derived from the physics' `snapshot`, and `transition` from it (`context`: its
    keyword arguments). One function, so that a compiled env enters one graph per step for both:
    each entry costs the host its guard checks and wrappers (BENCHMARKS.md)."""
    s = derive_state(snapshot, idx)
    return s, transition(table, cfg, contract, s, memory, draws, **context)

