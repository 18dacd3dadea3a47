"""Events that change the world rather than read it: domain randomisation, pushes, action delay.

Randomised values are written through the backend's per-env model fields, so they are real
physics changes in each environment, and are kept in `DomainParams` for the privileged critic.
"""

from __future__ import annotations

import torch

from dhal.envs.backends.base import Simulator
from dhal.envs.robots import go1, skateboard
from dhal.envs.skateboard.config import RandomizationConfig
from dhal.envs.skateboard.observations import DomainParams
from dhal.envs.skateboard.state import SceneIndices


def _uniform(shape: tuple[int, ...], bounds: tuple[float, float], gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(shape, generator=gen, device=device)


def sample_domain_params(n: int, cfg: RandomizationConfig, gen: torch.Generator, device: torch.device) -> DomainParams:
    if not cfg.enabled:
        return DomainParams.nominal(n, device)
    nj = len(go1.JOINT_NAMES)
    return DomainParams(
        payload_mass=_uniform((n,), cfg.payload_mass, gen, device),
        payload_offset=_uniform((n, 3), cfg.payload_offset, gen, device),
        friction=_uniform((n,), cfg.friction, gen, device),
        wheel_friction=_uniform((n,), cfg.wheel_friction, gen, device),
        kp_factor=_uniform((n, nj), cfg.kp_factor, gen, device),
        kd_factor=_uniform((n, nj), cfg.kd_factor, gen, device),
        deck_mass_factor=_uniform((n,), cfg.deck_mass_factor, gen, device),
        truck_stiffness_factor=_uniform((n,), cfg.truck_stiffness_factor, gen, device),
    )


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
    sim.commit_model()


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
