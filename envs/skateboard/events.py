"""Events that change the world rather than read it: domain randomisation, its curriculum, pushes,
action delay.

Randomised values are written through the backend's per-env model fields, so they are real
physics changes in each environment, and are kept in `RandomizedDomain` (the critic's
`DomainParams` plus the board parameters the critic does not see).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from dhal.envs.backends.base import Simulator
from dhal.envs.robots import go1, skateboard
from dhal.envs.skateboard.config import (
    NOMINAL_RANDOMIZATION, RandomizationConfig, RandomizationCurriculum, SkateboardConfig,
)
from dhal.envs.skateboard.observations import DomainParams
from dhal.envs.skateboard.state import SceneIndices


def _uniform(shape: tuple[int, ...], bounds: tuple[float, float], gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(shape, generator=gen, device=device)


@dataclass
class RandomizedDomain(DomainParams):
    """Every randomised parameter of each env: the critic's `DomainParams` and the board's bushing
    damping and wheel rolling resistance (not critic inputs)."""

    truck_damping_factor: torch.Tensor  # [N]
    wheel_rolling_resistance: torch.Tensor  # [N] C_rr: drag force / normal load

    @staticmethod
    def nominal(n: int, device: torch.device) -> RandomizedDomain:
        base = DomainParams.nominal(n, device)
        return RandomizedDomain(**vars(base), truck_damping_factor=torch.ones(n, device=device),
                                wheel_rolling_resistance=torch.zeros(n, device=device))


def sample_domain_params(n: int, cfg: RandomizationConfig, gen: torch.Generator, device: torch.device) -> RandomizedDomain:
    if not cfg.enabled:
        return RandomizedDomain.nominal(n, device)
    nj = len(go1.JOINT_NAMES)
    return RandomizedDomain(
        payload_mass=_uniform((n,), cfg.payload_mass, gen, device),
        payload_offset=_uniform((n, 3), cfg.payload_offset, gen, device),
        friction=_uniform((n,), cfg.friction, gen, device),
        wheel_friction=_uniform((n,), cfg.wheel_friction, gen, device),
        kp_factor=_uniform((n, nj), cfg.kp_factor, gen, device),
        kd_factor=_uniform((n, nj), cfg.kd_factor, gen, device),
        deck_mass_factor=_uniform((n,), cfg.deck_mass_factor, gen, device),
        truck_stiffness_factor=_uniform((n,), cfg.truck_stiffness_factor, gen, device),
        truck_damping_factor=_uniform((n,), cfg.truck_damping_factor, gen, device),
        wheel_rolling_resistance=_uniform((n,), cfg.wheel_rolling_resistance, gen, device),
    )


# ---- curriculum ------------------------------------------------------------------------------------

def _widen(bounds: tuple[float, float], nominal: float, scale: float) -> tuple[float, float]:
    centre = min(max(nominal, bounds[0]), bounds[1])
    return (centre + scale * (bounds[0] - centre), centre + scale * (bounds[1] - centre))


def scaled_randomization(cfg: RandomizationConfig, scale: float) -> RandomizationConfig:
    """`cfg` with every range shrunk towards its nominal value to `scale` of its width (1: as
    configured, 0: the nominal value) and the push speed scaled alike."""
    if not 0.0 <= scale <= 1.0:
        raise ValueError(f"randomisation scale must be in [0, 1], got {scale}")
    ranges: dict[str, Any] = {name: _widen(getattr(cfg, name), nominal, scale)
                              for name, nominal in NOMINAL_RANDOMIZATION.items()}
    return dataclasses.replace(cfg, push_velocity=scale * cfg.push_velocity, **ranges)


def scaled_delay_range(delay_range_s: tuple[float, float], scale: float) -> tuple[float, float]:
    """The command delay range widened from no delay (its nominal value) like the other ranges."""
    return _widen(delay_range_s, 0.0, scale)


def curriculum_scale(cur: RandomizationCurriculum, step: int) -> float:
    """The range scale after `step` control steps: linear from start_scale to 1 over ramp_steps."""
    if not cur.enabled:
        return 1.0
    progress = min(max(step, 0) / cur.ramp_steps, 1.0)
    return cur.start_scale + (1.0 - cur.start_scale) * progress


def curriculum_update_due(cur: RandomizationCurriculum, step: int) -> bool:
    """Whether the ranges change at this step: every update interval while ramping, and once at
    the end of the ramp so the full ranges are reached exactly."""
    if not cur.enabled or step <= 0 or step > cur.ramp_steps:
        return False
    return step % cur.update_interval_steps == 0 or step == cur.ramp_steps


def ranges_at(cfg: SkateboardConfig, scale: float) -> tuple[RandomizationConfig, tuple[float, float]]:
    """(randomisation ranges, command delay range) of the env at curriculum scale `scale`."""
    return scaled_randomization(cfg.randomization, scale), scaled_delay_range(cfg.action.delay_range_s, scale)


def _joint_ids(sim: Simulator, names: tuple[str, ...]) -> list[int]:
    qposadr = sim.nominal_field("jnt_qposadr").long()
    return [int((qposadr == sim.info.joint_qpos_adr[n]).nonzero()[0]) for n in names]


def apply_domain_params(sim: Simulator, idx: SceneIndices, p: DomainParams) -> None:
    """Write every env's parameters into its model. Values derive from the nominal model, so
    applying twice does not compound."""
    dtype_of = sim.model_field("body_mass").dtype

    def cast(value: torch.Tensor) -> torch.Tensor:
        return value.to(dtype_of)

    # Friction: robot and board geoms get `friction`, wheels `wheel_friction`. The scene gives them
    # a higher geom priority than the floor, so their value (not the max) governs each contact.
    friction = sim.model_field("geom_friction")
    nominal_friction = sim.nominal_field("geom_friction")
    body_of_geom = sim.nominal_field("geom_bodyid").long()
    moving = (body_of_geom != 0).nonzero().squeeze(-1)
    wheels = torch.tensor([sim.info.geom_ids[g] for g in skateboard.WHEEL_GEOMS], device=moving.device)
    friction[:] = nominal_friction.to(friction.dtype)
    friction[:, moving, 0] = cast(p.friction).unsqueeze(-1)
    friction[:, wheels, 0] = cast(p.wheel_friction).unsqueeze(-1)

    # Payload on the trunk: point mass at an offset, folded into the trunk's mass, COM and inertia.
    trunk, deck = idx.trunk_body, idx.deck_body
    mass, ipos, inertia = sim.model_field("body_mass"), sim.model_field("body_ipos"), sim.model_field("body_inertia")
    m0 = sim.nominal_field("body_mass")[trunk].to(dtype_of)
    c0 = sim.nominal_field("body_ipos")[trunk].to(dtype_of)
    i0 = sim.nominal_field("body_inertia")[trunk].to(dtype_of)
    mp, cp = cast(p.payload_mass), cast(p.payload_offset)
    total = m0 + mp
    com = (m0 * c0 + mp.unsqueeze(-1) * cp) / total.unsqueeze(-1)

    def parallel_axis(m: torch.Tensor, d: torch.Tensor) -> torch.Tensor:  # diagonal terms only
        d2 = d.square()
        return m.unsqueeze(-1) * torch.stack((d2[:, 1] + d2[:, 2], d2[:, 0] + d2[:, 2], d2[:, 0] + d2[:, 1]), -1)

    mass[:, trunk] = total
    ipos[:, trunk] = com
    inertia[:, trunk] = i0 + parallel_axis(m0.expand_as(mp), c0 - com) + parallel_axis(mp, cp - com)

    deck_factor = cast(p.deck_mass_factor)
    mass[:, deck] = sim.nominal_field("body_mass")[deck].to(dtype_of) * deck_factor
    inertia[:, deck] = sim.nominal_field("body_inertia")[deck].to(dtype_of) * deck_factor.unsqueeze(-1)

    # Motor strength: the position actuator's kp (gain and bias) and kv, per joint.
    gain, bias = sim.model_field("actuator_gainprm"), sim.model_field("actuator_biasprm")
    acts = idx.actuators
    kp0 = sim.nominal_field("actuator_gainprm")[acts, 0].to(dtype_of)
    kv0 = -sim.nominal_field("actuator_biasprm")[acts, 2].to(dtype_of)
    gain[:, acts, 0] = kp0 * cast(p.kp_factor)
    bias[:, acts, 1] = -kp0 * cast(p.kp_factor)
    bias[:, acts, 2] = -kv0 * cast(p.kd_factor)

    stiffness = sim.model_field("jnt_stiffness")
    trucks = _joint_ids(sim, skateboard.TRUCK_JOINTS)
    stiffness[:, trucks] = sim.nominal_field("jnt_stiffness")[trucks].to(dtype_of) * cast(p.truck_stiffness_factor).unsqueeze(-1)
    # Plain DomainParams (no board dynamics) leave the board at its nominal dynamics.
    board = p if isinstance(p, RandomizedDomain) else RandomizedDomain.nominal(len(p.friction), p.friction.device)
    _apply_board_dynamics(sim, cast(board.truck_damping_factor), cast(board.wheel_rolling_resistance),
                          total_mass=mass.sum(-1))
    sim.commit_model()


def _apply_board_dynamics(sim: Simulator, truck_damping_factor: torch.Tensor, rolling_resistance: torch.Tensor,
                          total_mass: torch.Tensor) -> None:
    """Bushing damping on the truck dofs, and rolling resistance as a Coulomb friction torque on
    each wheel's hinge: C_rr * (static load per wheel) * wheel radius. The static load is a quarter
    of the whole robot + board + payload weight, so a heavier env rolls with more drag."""
    dofs = sim.info.joint_qvel_adr
    truck_dofs = [dofs[name] for name in skateboard.TRUCK_JOINTS]
    damping = sim.model_field("dof_damping")
    damping[:, truck_dofs] = sim.nominal_field("dof_damping")[truck_dofs].to(damping.dtype) * \
        truck_damping_factor.to(damping.dtype).unsqueeze(-1)
    wheel_dofs = [dofs[name] for name in skateboard.WHEEL_JOINTS]
    gravity = float(torch.linalg.vector_norm(sim.nominal_field("opt.gravity").double()))
    load = total_mass * gravity / len(wheel_dofs)
    frictionloss = sim.model_field("dof_frictionloss")
    nominal = sim.nominal_field("dof_frictionloss")[wheel_dofs].to(frictionloss.dtype)
    drag_torque = rolling_resistance.to(frictionloss.dtype) * load.to(frictionloss.dtype) * skateboard.WHEEL_RADIUS
    frictionloss[:, wheel_dofs] = nominal + drag_torque.unsqueeze(-1)


def push_base(
    sim: Simulator, idx: SceneIndices, qvel: torch.Tensor, env_ids: torch.Tensor, max_speed: float, gen: torch.Generator
) -> None:
    """Set the trunk's horizontal velocity of `env_ids` to U(-v, v) per axis (DHAL's pushes)."""
    new = qvel[env_ids].clone()
    new[:, idx.root_qvel : idx.root_qvel + 2] = _uniform((len(env_ids), 2), (-max_speed, max_speed), gen, qvel.device)
    sim.set_qvel(env_ids, new)


def sample_delay_substeps(n: int, delay_range_s: tuple[float, float], physics_dt: float, decimation: int,
                          gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """[n] number of leading substeps of this control step that still apply the previous target."""
    low = int(round(delay_range_s[0] / physics_dt))
    high = min(int(round(delay_range_s[1] / physics_dt)), decimation)
    if high <= low:
        return torch.full((n,), low, dtype=torch.long, device=device)
    return torch.randint(low, high + 1, (n,), generator=gen, device=device)
