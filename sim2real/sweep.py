"""`dhal eval --suite command-sweep`: velocity tracking over a grid of forward speed and yaw-rate
commands (after the PAPL paper's command sweeps), written as heatmaps.

Each grid cell holds the command fixed for its seeded episodes and records the mean absolute
forward-speed and yaw-rate errors over every control step, with the cell's success rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dhal.policies.plotting import pyplot_agg
from dhal.policies.inference import LoadedPolicy, fixed_command_overrides
from dhal.sim2real import paper
from dhal.sim2real.conditions import OK, SuiteSettings, evaluate_condition
from dhal.sim2real.envs import EnvRequest

SUITE = "command-sweep"


@dataclass(frozen=True)
class CommandGrid:
    vx: tuple[float, ...]  # m/s
    yaw_rate: tuple[float, ...]  # rad/s

    def __post_init__(self) -> None:
        for name, values in (("vx", self.vx), ("yaw_rate", self.yaw_rate)):
            if not values:
                raise ValueError(f"the command grid needs at least one {name} value")
            if len(set(values)) != len(values):
                raise ValueError(f"the command grid repeats {name} values: {list(values)}")


def run_sweep(policies: Sequence[LoadedPolicy], grid: CommandGrid, request: EnvRequest,
              settings: SuiteSettings) -> dict[str, Any]:
    """Per policy, [vx][yaw] grids of tracking errors and success rates."""
    methods = []
    bar = tqdm(total=len(policies) * len(grid.vx) * len(grid.yaw_rate), desc=SUITE, unit="command",
               disable=not settings.progress, dynamic_ncols=True)
    try:
        for loaded in policies:
            lin: list[list[float | None]] = []
            yaw: list[list[float | None]] = []
            success: list[list[float | None]] = []
            for vx in grid.vx:
                lin.append([])
                yaw.append([])
                success.append([])
                for yaw_rate in grid.yaw_rate:
                    bar.set_postfix_str(f"vx {vx:+.2f}, yaw {yaw_rate:+.2f}", refresh=True)
                    cell = evaluate_condition(loaded, request, settings.episodes, settings.num_envs,
                                              fixed_command_overrides(vx, yaw_rate),
                                              min_distance_m=settings.min_distance_m, progress=False)
                    ok = cell["status"] == OK
                    lin[-1].append(cell["lin_vel_abs_error_mps"] if ok else None)
                    yaw[-1].append(cell["yaw_rate_abs_error_radps"] if ok else None)
                    success[-1].append(cell["success"]["rate"] if ok else None)
                    bar.update(1)
            methods.append({"method": paper.method_of(loaded.config), "checkpoint": str(loaded.checkpoint),
                            "iteration": loaded.iteration, "lin_vel_abs_error_mps": lin,
                            "yaw_rate_abs_error_radps": yaw, "success_rate": success})
    finally:
        bar.close()
    return {
        "suite": SUITE, "task": request.task, "backend": request.backend, "seed": request.seed,
        "env_overrides": dict(request.overrides or {}), "episodes_per_command": settings.episodes,
        "vx": list(grid.vx), "yaw_rate": list(grid.yaw_rate),
        "layout": "each grid is [vx index][yaw-rate index]; errors are means over every control step of the cell's "
                  "episodes of |command - board forward speed| and |command - base yaw rate|",
        "methods": methods,
    }


def format_table(results: Mapping[str, Any]) -> str:
    lines = []
    yaw = results["yaw_rate"]
    for m in results["methods"]:
        lines.append(f"{m['method']} ({m['checkpoint']}): |v err| m/s / |yaw err| rad/s / success")
        lines.append("vx \\ yaw   " + "  ".join(f"{w:+18.2f}" for w in yaw))
        for i, vx in enumerate(results["vx"]):
            cells = [f"{m['lin_vel_abs_error_mps'][i][j]:.2f} / {m['yaw_rate_abs_error_radps'][i][j]:.2f} / "
                     f"{100 * m['success_rate'][i][j]:3.0f}%" for j in range(len(yaw))]
            lines.append(f"{vx:+8.2f}   " + "  ".join(f"{c:>18}" for c in cells))
        lines.append("")
    return "\n".join(lines).rstrip()


def plot_heatmaps(results: Mapping[str, Any], path: Path) -> None:
    """Per method a row of two heatmaps: forward-speed and yaw-rate tracking error over the grid."""
    import numpy as np

    plt = pyplot_agg()
    methods = results["methods"]
    vx, yaw = results["vx"], results["yaw_rate"]
    figure, axes = plt.subplots(len(methods), 2, figsize=(11, 3.8 * len(methods)), squeeze=False)
    for row, m in zip(axes, methods):
        for axis, key, unit in ((row[0], "lin_vel_abs_error_mps", "m/s"), (row[1], "yaw_rate_abs_error_radps", "rad/s")):
            grid = np.array([[np.nan if v is None else v for v in r] for r in m[key]], dtype=float)
            image = axis.imshow(grid, origin="lower", cmap="magma_r", aspect="auto")
            axis.set_xticks(range(len(yaw)), [f"{w:+.2f}" for w in yaw])
            axis.set_yticks(range(len(vx)), [f"{v:+.2f}" for v in vx])
            axis.set_xlabel("yaw-rate command (rad/s)")
            axis.set_ylabel("forward command (m/s)")
            for i in range(len(vx)):
                for j in range(len(yaw)):
                    if not np.isnan(grid[i, j]):
                        axis.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7, color="tab:cyan")
            figure.colorbar(image, ax=axis, label=f"mean |error| ({unit})")
            what = "forward speed" if key.startswith("lin") else "yaw rate"
            axis.set_title(f"{m['method']}: {what} tracking error", fontsize=10)
    figure.suptitle(f"command sweep: {results['episodes_per_command']} episodes per command, seed {results['seed']}",
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
