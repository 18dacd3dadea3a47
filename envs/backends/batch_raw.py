"""Bare `mujoco.batch` stepping on a model: the CPU denominator of `dhal bench env`'s env/raw
ratio (warp_raw.py is the GPU's)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import mujoco
from mujoco import batch as mjbatch

from .model_info import keyframe_control_bank
from .mujoco_batch import STAGES, default_nthread

__all__ = ["raw_step_throughput"]


def raw_step_throughput(
    xml_path: str | Path,
    num_envs: int,
    nsteps_per_call: int = 4,
    seconds: float = 2.0,
    *,
    nthread: int | None = None,
    keyframe: str | int | None = None,
    noise: float = 0.1,
    stage: Literal["none", "vel"] = "none",
    seed: int = 0,
    warmup_calls: int = 1,
) -> float:
    """Physics steps per second of a bare Batch on the model: the env-vs-raw denominator.

    Every env starts at `keyframe` (name or index; default the first keyframe, else the model
    defaults). Each call writes new controls: the keyframe's ctrl (or, where it is all zero, the
    keyframe qpos of each joint-driven actuator's joint, i.e. position targets) plus
    N(0, noise), clipped to ctrlrange, drawn ahead of time so the timed loop only copies and
    steps. Diverged envs are left to MuJoCo's automatic reset. stage="none" is bare physics;
    "vel" adds what the simulator's default step computes. Returns
    num_envs * nsteps_per_call * calls / elapsed seconds, after `warmup_calls` untimed calls.
    """
    model = mujoco.MjModel.from_xml_path(str(xml_path))
    nthread = default_nthread() if nthread is None else int(nthread)
    b = mjbatch.Batch(model, num_envs, nthread)
    key, bank = keyframe_control_bank(model, keyframe, num_envs, noise, seed)
    b.reset(None, keyframe=key)
    ctrl = b.bind("ctrl")
    stage_value = int(STAGES[stage])

    def call(i: int) -> None:
        ctrl[:] = bank[i % len(bank)]
        b.step(None, nsteps_per_call, stage_value)

    for i in range(max(0, warmup_calls)):
        call(i)
    calls = 0
    start = time.perf_counter()
    while True:
        call(calls + 1)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return num_envs * nsteps_per_call * calls / elapsed
