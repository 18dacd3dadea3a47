"""Physics settings a policy was not trained with, applied through the backend's per-env model
fields (`Simulator.model_field("opt.*")`), so no simulator is imported here.

A setting changes the solver, the contact model, the timestep or the backend; everything else
(robot, board, task) stays as trained. The control period is kept: a smaller timestep runs more
substeps per control step. The enum values are MuJoCo's (mjtCone, mjtSolver, mjtIntegrator)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from dhal.envs.backends.base import Simulator
from dhal.envs.skateboard.config import SkateboardConfig

CONES = {"pyramidal": 0, "elliptic": 1}
SOLVERS = {"pgs": 0, "cg": 1, "newton": 2}
INTEGRATORS = {"euler": 0, "rk4": 1, "implicit": 2, "implicitfast": 3}
_TIME_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PhysicsSettings:
    """Changes to the trained physics; None leaves a setting as the scene has it."""

    name: str
    description: str
    physics_dt: float | None = None  # s; the decimation follows so the control period stays
    cone: Literal["pyramidal", "elliptic"] | None = None
    impratio: float | None = None
    solver: Literal["pgs", "cg", "newton"] | None = None
    iterations: int | None = None
    integrator: Literal["euler", "rk4", "implicit", "implicitfast"] | None = None
    noslip_iterations: int | None = None
    contact_timeconst_scale: float | None = None  # every geom's solref time constant times this
    backend: str | None = None  # another simulator backend
    device: str | None = None  # the device that backend needs

    def __post_init__(self) -> None:
        if self.physics_dt is not None and self.physics_dt <= 0:
            raise ValueError(f"physics setting {self.name!r}: physics_dt must be > 0, got {self.physics_dt}")
        if self.contact_timeconst_scale is not None and self.contact_timeconst_scale <= 0:
            raise ValueError(f"physics setting {self.name!r}: contact_timeconst_scale must be > 0")

    def changes(self) -> dict[str, object]:
        """The settings this variant changes, for the report."""
        skip = {"name", "description"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in skip and getattr(self, f.name) is not None}


def retimed_config(cfg: SkateboardConfig, physics_dt: float, delay_capacity_s: float) -> SkateboardConfig:
    """`cfg` at a new physics timestep with the same control period; the command delay range is
    cut to what the model's actuator history holds at that timestep."""
    decimation = round(cfg.control_dt / physics_dt)
    if decimation < 1 or abs(decimation * physics_dt - cfg.control_dt) > _TIME_TOLERANCE:
        raise ValueError(f"physics_dt {physics_dt} s does not divide the control period {cfg.control_dt} s")
    low, high = cfg.action.delay_range_s
    delay = (min(low, delay_capacity_s), min(high, delay_capacity_s))
    return dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, physics_dt=physics_dt, decimation=decimation),
                               action=dataclasses.replace(cfg.action, delay_range_s=delay))


def apply_physics(sim: Simulator, cfg: SkateboardConfig, settings: PhysicsSettings) -> SkateboardConfig:
    """Write `settings` into every env of `sim` (before the task is built on it) and return the
    task config that fits the changed model."""
    options: dict[str, float | int] = {}
    if settings.cone is not None:
        options["opt.cone"] = CONES[settings.cone]
    if settings.impratio is not None:
        options["opt.impratio"] = settings.impratio
    if settings.solver is not None:
        options["opt.solver"] = SOLVERS[settings.solver]
    if settings.iterations is not None:
        options["opt.iterations"] = settings.iterations
    if settings.integrator is not None:
        options["opt.integrator"] = INTEGRATORS[settings.integrator]
    if settings.noslip_iterations is not None:
        options["opt.noslip_iterations"] = settings.noslip_iterations
    if settings.physics_dt is not None:
        options["opt.timestep"] = settings.physics_dt
    for name, value in options.items():
        sim.model_field(name)[:] = value
    if settings.contact_timeconst_scale is not None:
        solref = sim.model_field("geom_solref")
        solref[..., 0] = sim.nominal_field("geom_solref")[..., 0].to(solref.dtype) * settings.contact_timeconst_scale
    if settings.physics_dt is None:
        return cfg
    # The task checks its timestep against the model's; the model now runs at the new one.
    sim.info = dataclasses.replace(sim.info, physics_dt=settings.physics_dt)
    samples = int(sim.nominal_field("actuator_history")[:, 0].min())
    return retimed_config(cfg, settings.physics_dt, (samples - 1) * settings.physics_dt)


# The sim-to-sim variants `dhal eval --suite sim2sim` runs by default.
SIM2SIM_SETTINGS: tuple[PhysicsSettings, ...] = (
    PhysicsSettings("trained", "the physics the policy was trained with"),
    PhysicsSettings("timestep_2.5ms", "half the timestep (2.5 ms, 8 substeps); the command delay is cut to the "
                    "17.5 ms the actuator history holds at 2.5 ms", physics_dt=0.0025),
    PhysicsSettings("elliptic_cone", "elliptic friction cone (impratio 1; > 1 diverges on this board)",
                    cone="elliptic", impratio=1.0),
    PhysicsSettings("cg_solver", "conjugate-gradient solver instead of Newton, 100 iterations", solver="cg",
                    iterations=100),
    PhysicsSettings("pgs_solver", "projected Gauss-Seidel solver, 50 iterations", solver="pgs", iterations=50),
    PhysicsSettings("euler", "semi-implicit Euler integrator instead of implicitfast", integrator="euler"),
    PhysicsSettings("soft_contacts", "contacts twice as soft (solref time constant x2)", contact_timeconst_scale=2.0),
    PhysicsSettings("noslip", "noslip post-processing (10 iterations): no creeping contacts",
                    noslip_iterations=10),
    PhysicsSettings("mujoco_warp", "the other backend: MuJoCo Warp (GPU; on the CPU where no GPU is given)",
                    backend="mujoco_warp"),
)


def select_settings(names: tuple[str, ...] | None) -> list[PhysicsSettings]:
    """The named settings in their listed order (all for None), always with "trained" first, the
    baseline the others are compared against."""
    known = {s.name: s for s in SIM2SIM_SETTINGS}
    if not names:
        return list(SIM2SIM_SETTINGS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown physics settings {unknown}; choose from {', '.join(known)}")
    return [s for s in SIM2SIM_SETTINGS if s.name == "trained" or s.name in names]
