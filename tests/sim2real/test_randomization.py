"""Domain randomisation: every range reaches the per-env model fields, a seed reproduces it, the
board's new parameters change the physics, the curriculum widens the ranges, bad ranges are errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dhal.envs.overrides import apply_overrides
from dhal.envs.registry import make_env
from dhal.envs.robots import skateboard
from dhal.envs.skateboard import events
from dhal.envs.skateboard.config import NOMINAL_RANDOMIZATION, RandomizationConfig, dhal_randomization

torch.set_num_threads(1)

QUIET = {"observations.noise": False}


def fields(env) -> dict[str, torch.Tensor]:
    names = ("geom_friction", "body_mass", "body_ipos", "actuator_gainprm", "actuator_biasprm", "jnt_stiffness",
             "dof_damping", "dof_frictionloss")
    return {name: env.sim.model_field(name).clone() for name in names}


def test_each_env_gets_its_own_physics_in_the_model():
    env = make_env(num_envs=3, seed=0, overrides=QUIET)
    sim, d, info = env.sim, env.domain, env.sim.info
    wheel = info.geom_ids[skateboard.WHEEL_GEOMS[0]]
    deck = info.geom_ids[skateboard.DECK_GEOM]
    friction = sim.model_field("geom_friction")
    assert torch.allclose(friction[:, deck, 0].float(), d.friction)
    assert torch.allclose(friction[:, wheel, 0].float(), d.wheel_friction)
    trunk_mass = sim.model_field("body_mass")[:, env.idx.trunk_body]
    assert torch.allclose(trunk_mass.float(), sim.nominal_field("body_mass")[env.idx.trunk_body].float() + d.payload_mass)
    kp = sim.model_field("actuator_gainprm")[:, env.idx.actuators, 0]
    assert torch.allclose(kp.float(), sim.nominal_field("actuator_gainprm")[env.idx.actuators, 0].float() * d.kp_factor)
    truck_dof = info.joint_qvel_adr[skateboard.TRUCK_JOINTS[0]]
    damping = sim.model_field("dof_damping")[:, truck_dof]
    assert torch.allclose(damping.float(), sim.nominal_field("dof_damping")[truck_dof].float() * d.truck_damping_factor)
    # rolling resistance: C_rr * (a quarter of the env's total weight) * wheel radius on each wheel hinge
    wheel_dof = info.joint_qvel_adr[skateboard.WHEEL_JOINTS[0]]
    load = sim.model_field("body_mass").sum(-1) * 9.81 / 4
    expected = d.wheel_rolling_resistance.double() * load * skateboard.WHEEL_RADIUS
    assert torch.allclose(sim.model_field("dof_frictionloss")[:, wheel_dof], expected)
    for name, value in fields(env).items():  # every randomised field differs between envs
        assert not torch.equal(value[0], value[1]), name


def test_a_seed_reproduces_the_draw_and_another_seed_changes_it():
    first, again, other = (make_env(num_envs=2, seed=s, overrides=QUIET) for s in (7, 7, 8))
    a, b, c = fields(first), fields(again), fields(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(not torch.equal(a[k], c[k]) for k in a)


def test_disabled_randomisation_keeps_the_nominal_model():
    env = make_env(num_envs=2, overrides={**QUIET, "randomization.enabled": False})
    for name, value in fields(env).items():
        assert torch.allclose(value[0], env.sim.nominal_field(name).to(value.dtype)), name
        assert torch.equal(value[0], value[1])


def coast_distance(rolling_resistance: float) -> float:
    """How far the board carries the gliding robot in 1 s from 1.5 m/s, with no actions."""
    fixed = {name: (nominal, nominal) for name, nominal in NOMINAL_RANDOMIZATION.items()}
    fixed["wheel_rolling_resistance"] = (rolling_resistance, rolling_resistance)
    overrides = {**QUIET, "reset.glide_fraction": 1.0, "randomization.push_velocity": 0.0, "action.delay_range_s": (0.0, 0.0),
                 **{f"randomization.{k}": v for k, v in fixed.items()}}
    env = make_env(num_envs=1, seed=0, overrides=overrides)
    snapshot = env.sim.read()
    qvel = snapshot.qvel.clone()
    qvel[:, env.idx.root_qvel] = 1.5
    qvel[:, env.idx.board_qvel] = 1.5
    env.sim.set_qvel(torch.tensor([0]), qvel)
    start = float(snapshot.qpos[0, env.idx.board_qpos])
    hold = (env.glide_pose - env.default_pose).unsqueeze(0) / env.cfg.action.scale  # targets = the glide pose
    for _ in range(50):
        env.step(hold)
    return float(env.sim.read().qpos[0, env.idx.board_qpos]) - start


def test_rolling_resistance_slows_the_board():
    free, dragged = coast_distance(0.0), coast_distance(0.05)
    assert free > 1.0  # the free board keeps most of its speed for a second
    assert dragged < free - 0.2  # 0.05 * g decelerates by ~0.5 m/s^2: ~0.25 m shorter in 1 s


def test_the_dhal_preset_has_the_papers_ranges_and_a_nominal_board():
    paper = dhal_randomization()
    assert paper.friction == (0.6, 2.0) and paper.payload_mass == (0.0, 3.0)
    assert paper.payload_offset == (-0.2, 0.2) and paper.kp_factor == paper.kd_factor == (0.8, 1.2)
    assert paper.push_interval_s == 8.0 and paper.push_velocity == 0.5
    for name in ("deck_mass_factor", "truck_stiffness_factor", "truck_damping_factor"):
        assert getattr(paper, name) == (1.0, 1.0)
    assert paper.wheel_rolling_resistance == (0.0, 0.0)
    default = RandomizationConfig()
    assert {f.name: getattr(paper, f.name) for f in dataclasses.fields(paper) if f.name in
            ("friction", "payload_mass", "payload_offset", "kp_factor", "kd_factor")} == \
        {name: getattr(default, name) for name in ("friction", "payload_mass", "payload_offset", "kp_factor", "kd_factor")}


def test_scaled_ranges_shrink_towards_the_nominal_values():
    cfg = RandomizationConfig()
    half = events.scaled_randomization(cfg, 0.5)
    assert half.friction == pytest.approx((0.8, 1.5))  # around the nominal 1.0
    assert half.payload_mass == pytest.approx((0.0, 1.5))
    assert half.kp_factor == pytest.approx((0.9, 1.1)) and half.push_velocity == pytest.approx(0.25)
    none = events.scaled_randomization(cfg, 0.0)
    assert all(getattr(none, k) == (v, v) for k, v in NOMINAL_RANDOMIZATION.items() if k != "friction")
    assert none.friction == (1.0, 1.0) and none.push_velocity == 0.0
    assert events.scaled_randomization(cfg, 1.0) == cfg
    assert events.scaled_delay_range((0.0, 0.02), 0.25) == pytest.approx((0.0, 0.005))
    with pytest.raises(ValueError, match="scale must be in"):
        events.scaled_randomization(cfg, 1.5)


def test_the_curriculum_widens_the_ranges_as_the_env_steps():
    overrides = {**QUIET, "randomization.curriculum.enabled": True, "randomization.curriculum.start_scale": 0.0,
                 "randomization.curriculum.ramp_steps": 4, "randomization.curriculum.update_interval_steps": 2}
    env = make_env(num_envs=2, seed=0, overrides=overrides)
    assert env.randomization_scale == 0.0 and env.delay_range_s == (0.0, 0.0)
    assert torch.equal(env.domain.friction, torch.ones(2)) and torch.equal(env.domain.payload_mass, torch.zeros(2))
    scales = []
    for _ in range(6):
        env.step(torch.zeros(2, 12))
        scales.append(env.randomization_scale)
    assert scales == [0.0, 0.5, 0.5, 1.0, 1.0, 1.0]  # updates at steps 2 and 4, then fixed
    assert env.randomization == env.cfg.randomization and env.delay_range_s == env.cfg.action.delay_range_s
    assert not torch.equal(env.domain.friction, torch.ones(2))
    assert events.curriculum_scale(env.cfg.randomization.curriculum, 10**6) == 1.0


@pytest.mark.parametrize(("key", "value", "message"), [
    ("randomization.friction", (1.5, 0.5), "randomization.friction: low 1.5 is above high 0.5"),
    ("randomization.kp_factor", (0.0, 1.2), "randomization.kp_factor must stay above 0"),
    ("randomization.wheel_rolling_resistance", (-0.01, 0.02), "wheel_rolling_resistance must not be negative"),
    ("randomization.push_interval_s", 0.0, "push_interval_s must be > 0"),
    ("randomization.curriculum.start_scale", 2.0, "start_scale must be in"),
])
def test_bad_ranges_are_errors_naming_the_field(key, value, message):
    from dhal.envs.skateboard.config import SkateboardConfig

    with pytest.raises(ValueError, match=message):
        apply_overrides(SkateboardConfig(), {key: value})
