"""The suites of `dhal eval --suite ...`: the paper's hardware table, sim-to-sim physics changes
and a velocity-command sweep, over one checkpoint and any number of `--compare` checkpoints.

    dhal eval runs/dhal --suite hardware-table --episodes 32 --compare runs/wo_mc runs/gauss
    dhal eval runs/dhal --suite sim2sim --physics elliptic_cone timestep_2.5ms
    dhal eval runs/dhal --suite command-sweep --sweep-vx 0.5 1.0 1.5 --sweep-yaw -0.5 0 0.5

Each writes <suite>.json and <suite>.png into --out and prints a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dhal.commands.errors import CommandError

if TYPE_CHECKING:
    from dhal.commands.eval import EvalConfig

SuiteName = Literal["hardware-table", "sim2sim", "command-sweep"]


@dataclass
class SuiteOptions:
    suite: SuiteName | None = None
    """Run a suite instead of one evaluation: hardware-table (DHAL Table III scenarios next to the paper's numbers), sim2sim (physics the policy was not trained with), command-sweep (tracking over a vx x yaw-rate grid)."""
    compare: tuple[Path, ...] = ()
    """More checkpoints for the same suite, e.g. the ablations (single critic, Gaussian actor, K=1)."""
    scenarios: tuple[str, ...] = ()
    """hardware-table: only these scenarios (default: all six)."""
    physics: tuple[str, ...] = ()
    """sim2sim: only these physics settings (default: all); "trained" always runs as the baseline."""
    sweep_vx: tuple[float, ...] = (0.4, 0.8, 1.2, 1.6)
    """command-sweep: forward speed commands (m/s)."""
    sweep_yaw: tuple[float, ...] = (-0.6, -0.3, 0.0, 0.3, 0.6)
    """command-sweep: yaw-rate commands (rad/s)."""


@dataclass(frozen=True)
class SuiteOutputs:
    suite: str
    json: Path
    plot: Path | None
    table: str
    results: dict[str, Any]


def _load_all(cfg: EvalConfig) -> list[Any]:
    from dhal.policies.inference import load_checkpoint_policy
    from dhal.policies.training import CheckpointError

    loaded = []
    for path in (cfg.checkpoint, *cfg.compare):
        try:
            loaded.append(load_checkpoint_policy(path, cfg.device))
        except CheckpointError as error:
            raise CommandError(str(error)) from error
    return loaded


def run_suite(cfg: EvalConfig) -> SuiteOutputs:
    from dhal.commands.env_options import parse_overrides
    from dhal.envs.backends import SimulatorCapacityError
    from dhal.envs.overrides import ConfigError
    from dhal.policies.training import CheckpointError, atomic_write_json
    from dhal.sim2real.conditions import SuiteSettings
    from dhal.sim2real.envs import EnvRequest

    if cfg.suite is None:
        raise CommandError("no suite given")
    policies = _load_all(cfg)
    request = EnvRequest(task=cfg.task, backend=cfg.backend, device=cfg.device, seed=cfg.seed,
                         overrides=parse_overrides(cfg.override))
    settings = SuiteSettings(cfg.episodes, cfg.num_envs, cfg.min_distance, cfg.progress)
    try:
        if cfg.suite == "hardware-table":
            results, table, plot = _hardware_table(cfg, policies, request, settings)
        elif cfg.suite == "sim2sim":
            results, table, plot = _sim2sim(cfg, policies, request, settings)
        else:
            results, table, plot = _command_sweep(cfg, policies, request, settings)
    except (ConfigError, CheckpointError, KeyError, SimulatorCapacityError) as error:
        raise CommandError(str(error).strip("'\"")) from error
    cfg.out.mkdir(parents=True, exist_ok=True)
    path = cfg.out / f"{cfg.suite}.json"
    atomic_write_json(results, path)
    plot_path = None
    if cfg.plots:
        plot_path = cfg.out / f"{cfg.suite}.png"
        plot(results, plot_path)
    return SuiteOutputs(cfg.suite, path, plot_path, table(results), results)


def _fixed_command(cfg: EvalConfig) -> dict[str, Any]:
    from dhal.policies.inference import fixed_command_overrides
    from dhal.sim2real.scenarios import SUITE_COMMAND_VX, SUITE_COMMAND_YAW

    if cfg.command_vx is None and cfg.command_yaw is None:
        return fixed_command_overrides(SUITE_COMMAND_VX, SUITE_COMMAND_YAW)
    return fixed_command_overrides(cfg.command_vx, cfg.command_yaw)


def _with_command(request: Any, command: dict[str, Any]) -> Any:
    from dataclasses import replace

    return replace(request, overrides={**(request.overrides or {}), **command})


def _hardware_table(cfg: EvalConfig, policies: list[Any], request: Any,
                    settings: Any) -> tuple[dict[str, Any], Any, Any]:
    from dhal.sim2real import hardware_table, scenarios

    chosen = scenarios.select(cfg.scenarios or None)
    results = hardware_table.run_hardware_table(policies, chosen, _with_command(request, _fixed_command(cfg)), settings)
    return results, hardware_table.format_table, hardware_table.plot_table


def _sim2sim(cfg: EvalConfig, policies: list[Any], request: Any,
             settings: Any) -> tuple[dict[str, Any], Any, Any]:
    from dhal.sim2real import physics, sim2sim

    chosen = physics.select_settings(cfg.physics or None)
    results = sim2sim.run_sim2sim(policies, chosen, _with_command(request, _fixed_command(cfg)), settings)
    return results, sim2sim.format_table, sim2sim.plot_sim2sim


def _command_sweep(cfg: EvalConfig, policies: list[Any], request: Any,
                   settings: Any) -> tuple[dict[str, Any], Any, Any]:
    from dhal.sim2real import sweep

    if cfg.command_vx is not None or cfg.command_yaw is not None:
        raise CommandError("--suite command-sweep sets the commands itself; use --sweep-vx and --sweep-yaw")
    grid = sweep.CommandGrid(tuple(cfg.sweep_vx), tuple(cfg.sweep_yaw))
    results = sweep.run_sweep(policies, grid, request, settings)
    return results, sweep.format_table, sweep.plot_heatmaps


def report(outputs: SuiteOutputs) -> str:
    lines = [outputs.table, f"results: {outputs.json}"]
    if outputs.plot is not None:
        lines.append(f"plot:    {outputs.plot}")
    return "\n".join(lines)
