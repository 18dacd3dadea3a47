"""Simulated counterparts of DHAL's six hardware scenarios (Table III).

Each scenario is a set of env overrides on top of the evaluation task: the robot and board at
their nominal parameters (no randomisation), with the scenario's own surface, disturbance or
terrain. The paper gives no surface numbers; ours are stated here and written into every result:
* ceramic: glazed tile under rubber feet and urethane wheels: friction 0.4 (below the training
  range 0.6-2.0), wheels 0.7, a smooth roll (C_rr 0.005).
* carpet: grippy feet (friction 1.8) but wheels that sink in: C_rr 0.04, twice the training
  maximum.
* disturbance: the trunk's horizontal velocity is set to U(-0.6, 0.6) m/s every 3 s while riding
  (training: 0.5 m/s every 8 s).
* slope: a hill 1.5 m ahead: 5 deg up over 3 m (0.26 m high), 2 m plateau, 5 deg down.
* single step: a 2 cm step up 1.5 m ahead (below the 3 cm wheel radius), 3 m on it, then down.
* uneven ground: a height field of random bumps up to 2 cm on a 10 cm grid over 8 m.
The terrain values are the `TerrainConfig` defaults, written out here so a change there shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dhal.envs.skateboard.config import NOMINAL_RANDOMIZATION
from dhal.sim2real.paper import SCENARIOS

# The command every suite episode rides at unless the user fixes another one: forward, straight.
SUITE_COMMAND_VX = 1.0
SUITE_COMMAND_YAW = 0.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


def nominal_physics(**values: float | tuple[float, float]) -> dict[str, Any]:
    """Overrides that fix every randomised parameter at its nominal value, except `values` (a
    number fixes that parameter, a pair keeps it a range), with no pushes."""
    unknown = set(values) - set(NOMINAL_RANDOMIZATION)
    if unknown:
        raise KeyError(f"not randomised parameters: {sorted(unknown)}; known: {sorted(NOMINAL_RANDOMIZATION)}")
    overrides: dict[str, Any] = {"randomization.enabled": True, "randomization.push_velocity": 0.0,
                                 "randomization.curriculum.enabled": False}
    for name, nominal in NOMINAL_RANDOMIZATION.items():
        value = values.get(name, nominal)
        overrides[f"randomization.{name}"] = tuple(value) if isinstance(value, tuple) else (float(value), float(value))
    return overrides


HARDWARE_SCENARIOS: dict[str, Scenario] = {
    "ceramic": Scenario(
        "ceramic", "low friction: feet and deck 0.4, wheels 0.7, C_rr 0.005",
        nominal_physics(friction=0.4, wheel_friction=0.7, wheel_rolling_resistance=0.005)),
    "carpet": Scenario(
        "carpet", "high friction and rolling resistance: feet and deck 1.8, wheels 1.2, C_rr 0.04",
        nominal_physics(friction=1.8, wheel_friction=1.2, wheel_rolling_resistance=0.04)),
    "disturbance": Scenario(
        "disturbance", "pushes while riding: trunk xy velocity set to U(-0.6, 0.6) m/s every 3 s",
        {**nominal_physics(), "randomization.push_velocity": 0.6, "randomization.push_interval_s": 3.0}),
    "slope": Scenario(
        "slope", "a hill: 5 deg up over 3 m, 2 m plateau, 5 deg down, from 1.5 m ahead",
        {**nominal_physics(), "terrain.kind": "slope", "terrain.start_x": 1.5, "terrain.slope_deg": 5.0,
         "terrain.slope_length": 3.0, "terrain.plateau_length": 2.0}),
    "single_step": Scenario(
        "single_step", "a 2 cm step up 1.5 m ahead, 3 m long, then down",
        {**nominal_physics(), "terrain.kind": "step", "terrain.start_x": 1.5, "terrain.step_height": 0.02,
         "terrain.step_length": 3.0}),
    "uneven": Scenario(
        "uneven", "height field: random bumps up to 2 cm on a 10 cm grid over 8 m, from 1.5 m ahead",
        {**nominal_physics(), "terrain.kind": "uneven", "terrain.start_x": 1.5, "terrain.uneven_amplitude": 0.02,
         "terrain.uneven_cell": 0.1, "terrain.uneven_length": 8.0, "terrain.seed": 0}),
}
assert tuple(HARDWARE_SCENARIOS) == SCENARIOS


def select(names: tuple[str, ...] | None) -> list[Scenario]:
    """The named scenarios in the paper's order (all six for None); an unknown name is an error."""
    if not names:
        return list(HARDWARE_SCENARIOS.values())
    unknown = [n for n in names if n not in HARDWARE_SCENARIOS]
    if unknown:
        raise KeyError(f"unknown scenarios {unknown}; choose from {', '.join(HARDWARE_SCENARIOS)}")
    return [s for s in HARDWARE_SCENARIOS.values() if s.name in names]
