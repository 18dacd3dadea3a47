"""Task registry: task name -> (config factory, env class). One place to add tasks and variants."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import dhal.assets
from dhal.assets.terrain import terrain_scene
from dhal.envs.api import BatchedEnv
from dhal.envs.backends import Simulator, canonical_backend, make_simulator
from dhal.envs.compilation import compiles
from dhal.envs.overrides import apply_overrides
from dhal.envs.skateboard.config import SimConfig, SkateboardConfig
from dhal.envs.skateboard.task import SkateboardEnv


def _play_config() -> SkateboardConfig:
    """For rendering and evaluation of a trained policy: no noise, pushes or randomisation."""
    base = SkateboardConfig()
    return dataclasses.replace(
        base,
        observations=dataclasses.replace(base.observations, noise=False),
        randomization=dataclasses.replace(base.randomization, enabled=False),
    )


@dataclass(frozen=True)
class TaskSpec:
    config: Callable[[], SkateboardConfig]
    description: str


TASKS: dict[str, TaskSpec] = {
    "dhal-skateboard": TaskSpec(SkateboardConfig, "DHAL: Go1 pushes and glides on a board, FL foot attached"),
    "dhal-skateboard-play": TaskSpec(_play_config, "the same task without noise, pushes or randomisation"),
}


def scene_path(scene: str) -> Path:
    path = Path(dhal.assets.__file__).parent / "scenes" / f"{scene}.xml"
    if not path.is_file():
        raise FileNotFoundError(f"no scene {scene!r} at {path}")
    return path


def task_names() -> list[str]:
    return sorted(TASKS)


def make_config(task: str = "dhal-skateboard", overrides: Mapping[str, Any] | None = None) -> SkateboardConfig:
    if task not in TASKS:
        raise KeyError(f"unknown task {task!r}; available tasks: {', '.join(task_names())}")
    return apply_overrides(TASKS[task].config(), overrides)


def make_env(
    task: str = "dhal-skateboard",
    num_envs: int = 16,
    backend: str = "mujoco_batch",
    device: str = "cpu",
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> BatchedEnv:
    cfg = make_config(task, overrides)
    return SkateboardEnv(cfg, make_task_simulator(cfg, backend, num_envs, device), seed=seed)


def make_task_simulator(cfg: SkateboardConfig, backend: str, num_envs: int, device: str = "cpu") -> Simulator:
    """`num_envs` copies of the task's scene (its terrain included) on `backend`, sized by its
    sim config."""
    return make_simulator(backend, terrain_scene(scene_path(cfg.scene), cfg.terrain), num_envs, device=device,
                          **simulator_options(cfg.sim, backend, device))


def simulator_options(sim: SimConfig, backend: str, device: str = "cpu") -> dict[str, Any]:
    """The simulator's keyword arguments that the task config sets: MuJoCo Warp's buffer sizes
    where given (the CPU backend has no fixed buffers), whether it compiles its checks on
    `device` and whether it refreshes the constraints' body velocities."""
    if canonical_backend(backend) != "mujoco_warp":
        return {}
    buffers = {name: value for name, value in (("nconmax", sim.nconmax), ("njmax", sim.njmax)) if value is not None}
    return {**buffers, "compile_checks": compiles(sim.compile, device), "fresh_constraint_velocities": sim.fresh_constraint_velocities}
