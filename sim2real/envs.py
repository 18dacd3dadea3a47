"""Envs for evaluating a checkpoint under changed conditions: the checkpoint's own env overrides,
then the caller's, then a scenario's, on the config's terrain, optionally on changed physics or
another backend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dhal.envs.backends.base import SimulatorCapacityError
from dhal.envs.registry import make_config, make_task_simulator
from dhal.envs.skateboard.task import SkateboardEnv
from dhal.policies.inference import LoadedPolicy, check_env_fits, checkpoint_env_overrides
from dhal.sim2real.physics import PhysicsSettings, apply_physics


class EnvUnavailable(RuntimeError):
    """The env cannot be built here (e.g. a GPU backend on a machine without a GPU)."""


@dataclass(frozen=True)
class EnvRequest:
    task: str = "dhal-skateboard-play"
    backend: str = "mujoco_batch"
    device: str = "cpu"
    seed: int = 0
    overrides: Mapping[str, Any] | None = None  # the caller's, applied after the checkpoint's


def build_env(loaded: LoadedPolicy, request: EnvRequest, num_envs: int, extra: Mapping[str, Any] | None = None,
              physics: PhysicsSettings | None = None) -> SkateboardEnv:
    """A fresh env for `loaded` with overrides checkpoint -> request -> extra, on `physics`.
    Raises EnvUnavailable for a backend this machine cannot run, SimulatorCapacityError (with the
    overrides that fit) for buffers too small for the scene, CheckpointError if the env does not
    fit the policy, ConfigError for a bad override."""
    overrides = {**checkpoint_env_overrides(loaded.config), **(request.overrides or {}), **(extra or {})}
    cfg = make_config(request.task, overrides)
    backend = physics.backend if physics is not None and physics.backend else request.backend
    device = physics.device if physics is not None and physics.device else request.device
    try:
        sim = make_task_simulator(cfg, backend, num_envs, device)
    except SimulatorCapacityError:
        raise  # the backend runs here; its buffers need the overrides the error names
    except (ImportError, RuntimeError, ValueError) as error:
        raise EnvUnavailable(f"backend {backend!r} on {device!r} is not available here: "
                             f"{type(error).__name__}: {error}") from error
    if physics is not None:
        cfg = apply_physics(sim, cfg, physics)
    env = SkateboardEnv(cfg, sim, seed=request.seed)
    try:
        check_env_fits(env, loaded)
    except Exception:
        env.close()
        raise
    return env
