"""The env-vs-raw denominator on the Warp backend: bare `mujoco_warp.step` throughput on a model,
with the simulator's layout and none of its checks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import mujoco
import torch

from .model_info import keyframe_control_bank
from .warp_setup import (
    DEFAULT_NCONMAX,
    DEFAULT_NJMAX,
    RANDOMIZED_FIELDS,
    batched_fields,
    capture_graph,
    graphs_supported,
    mjw,
    put_model_and_data,
    resolve_device,
    wp,
)

__all__ = ["raw_step_throughput_warp"]


def raw_step_throughput_warp(
    xml_path: str | Path,
    num_envs: int,
    nsteps_per_call: int = 4,
    seconds: float = 2.0,
    device: str | torch.device = "cuda",
    *,
    nconmax: int | None = None,
    njmax: int | None = None,
    randomized_fields: Sequence[str] = RANDOMIZED_FIELDS,
    keyframe: str | int | None = None,
    noise: float = 0.1,
    seed: int = 0,
    warmup_calls: int = 2,
    graphs: bool | None = None,
) -> float:
    """Physics steps per second of bare `mujoco_warp.step` on the model: the env-vs-raw
    denominator on the Warp backend.

    The same Model/Data layout as MujocoWarpSimulator (same per-world fields, nconmax, njmax),
    every world at `keyframe` (name or index; default the first keyframe). Each call writes new
    controls (keyframe ctrl, or the keyframe joint positions as position targets, plus
    N(0, noise), clipped; drawn ahead of time) and runs nsteps_per_call steps (one CUDA graph
    launch each where supported, as the simulator does); no divergence or overflow checks. Timed with device
    synchronisation at both ends; returns num_envs * nsteps_per_call * calls / seconds.
    """
    torch_device, wp_name = resolve_device(device)
    wp_device = wp.get_device(wp_name)
    model = mujoco.MjModel.from_xml_path(str(xml_path))
    batched = batched_fields(randomized_fields)
    key, bank_np = keyframe_control_bank(model, keyframe, num_envs, noise, seed)
    bank = torch.as_tensor(bank_np, dtype=torch.float32, device=torch_device)

    with wp.ScopedDevice(wp_device):
        mw, dw, _ = put_model_and_data(
            model,
            num_envs,
            batched,
            DEFAULT_NCONMAX if nconmax is None else int(nconmax),
            DEFAULT_NJMAX if njmax is None else int(njmax),
            keyframe=key,
        )
        ctrl = wp.to_torch(dw.ctrl)
        mjw.step(mw, dw)  # compiles (or loads) the kernels
        graph = None
        if graphs_supported(wp_device) if graphs is None else graphs:
            graph = capture_graph(wp_device, lambda: mjw.step(mw, dw))

        def call(i: int) -> None:
            ctrl.copy_(bank[i % len(bank)])
            for _ in range(nsteps_per_call):
                if graph is not None:
                    wp.capture_launch(graph)
                else:
                    mjw.step(mw, dw)

        for i in range(max(0, warmup_calls)):
            call(i)
        wp.synchronize_device(wp_device)
        calls = 0
        start = time.perf_counter()
        while True:
            call(calls + 1)
            calls += 1
            # sync every few calls so the host does not queue far ahead of the clock
            if calls % 8 == 0 or not wp_device.is_cuda:
                wp.synchronize_device(wp_device)
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    break
        return num_envs * nsteps_per_call * calls / elapsed
