"""Warp plumbing shared by the simulator (`mujoco_warp.py`) and its raw-stepping baseline
(`warp_raw.py`): the import of MuJoCo Warp, buffer sizes, which model fields get a per-world copy,
device resolution, graph capture and the upload of a model and its data."""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import mujoco
import torch

try:
    import mujoco_warp as mjw
    import warp as wp
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the mujoco_warp backend needs MuJoCo Warp: `pip install mujoco-warp` (pulls warp-lang); "
        f"import failed with: {_err}"
    ) from _err

if not os.environ.get("DHAL_WARP_VERBOSE") and wp.config.log_level <= wp.LOG_INFO:
    # Warp logs one line per kernel module load at LOG_INFO; DHAL_WARP_VERBOSE=1 keeps them
    wp.config.log_level = wp.LOG_WARNING

__all__ = [
    "DEFAULT_NCONMAX",
    "DEFAULT_NJMAX",
    "RANDOMIZED_FIELDS",
    "batched_fields",
    "capture_graph",
    "graphs_supported",
    "put_model_and_data",
    "resolve_device",
]

# Model fields the skateboard task edits per env (envs/skateboard/events.py).
RANDOMIZED_FIELDS: tuple[str, ...] = (
    "geom_friction",
    "body_mass",
    "body_ipos",
    "body_inertia",
    "actuator_gainprm",
    "actuator_biasprm",
    "jnt_stiffness",
    "dof_damping",
    "dof_frictionloss",
    "actuator_delay",
)
# Constants set_const derives from mass/inertia; batched with them so each world keeps its own.
DERIVED_CONST_FIELDS: tuple[str, ...] = (
    "body_subtreemass",
    "dof_invweight0",
    "body_invweight0",
    "actuator_acc0",
)
# Per world: constraint rows (hard limit per world) and contacts (pooled: nconmax * num_envs in
# all). The Go1 + board uses <= 69 rows / 17 contacts in random falls (CPU MuJoCo, 12 rollouts of
# 7.5 s); Warp's own defaults (64 / 48) overflow on it.
DEFAULT_NJMAX = 192
DEFAULT_NCONMAX = 48


def batched_fields(randomized: Sequence[str]) -> tuple[str, ...]:
    """The randomised fields plus the constants set_const derives from mass/inertia, so that
    `commit_model()` can recompute them per world."""
    batched = list(dict.fromkeys(randomized))
    if {"body_mass", "body_inertia", "body_ipos", "dof_armature"} & set(batched):
        batched += [f for f in DERIVED_CONST_FIELDS if f not in batched]
    return tuple(batched)


@contextmanager
def _suspend_gc() -> Iterator[None]:
    """No garbage collection during graph capture: a collected Warp graph/array would record its
    destructor into the graph being captured (mjlab does the same)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def resolve_device(device: str | torch.device) -> tuple[torch.device, str]:
    """(torch device with an explicit index for CUDA, the Warp device name)."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return dev, "cpu"
    if dev.type != "cuda":
        raise ValueError(f"the mujoco_warp backend runs on 'cpu' or 'cuda', got {str(dev)!r}")
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"device {str(dev)!r} requested but torch has no CUDA (torch {torch.__version__}); "
            "install a CUDA build of torch, or use device='cpu' (slow, for tests)"
        )
    index = torch.cuda.current_device() if dev.index is None else dev.index
    return torch.device("cuda", index), f"cuda:{index}"


def graphs_supported(wp_device: Any) -> bool:
    """Graph capture: on CUDA it needs Warp's memory pool (allocations inside the captured step)
    and conditional graph nodes (the solver's early exit; driver >= 12.4); Warp >= 1.19 also
    captures and replays on the CPU (a recorded launch list, ~2.5x less launch overhead)."""
    if wp_device.is_cuda:
        return bool(wp.is_mempool_enabled(wp_device)) and bool(wp.is_conditional_graph_supported())
    return True


def capture_graph(wp_device: Any, program: Any) -> Any:
    """One Warp graph of `program()`; its modules must be loaded already (run it once first):
    force_module_load=False keeps Warp from compiling every registered module."""
    with _suspend_gc(), wp.ScopedDevice(wp_device):
        with wp.ScopedCapture(force_module_load=False) as capture:
            program()
    return capture.graph


def put_model_and_data(
    model: mujoco.MjModel,
    num_envs: int,
    batched: Sequence[str],
    nconmax: int,
    njmax: int,
    keyframe: int = -1,
) -> tuple[Any, Any, mujoco.MjData]:
    """Warp model (the listed fields per world) and data (num_envs worlds) on the current device."""
    data = mujoco.MjData(model)
    if keyframe >= 0:
        mujoco.mj_resetDataKeyframe(model, data, keyframe)
    mujoco.mj_forward(model, data)
    try:
        mw = mjw.put_model(model, batch_sizes={name: num_envs for name in batched})
    except ValueError as err:
        raise KeyError(f"cannot batch model fields {list(batched)} per world: {err}") from err
    mw.opt.warn_overflow = 0  # overflows are checked after each step and raised, not printed
    dw = mjw.put_data(model, data, nworld=num_envs, nconmax=nconmax, njmax=njmax)
    return mw, dw, data
