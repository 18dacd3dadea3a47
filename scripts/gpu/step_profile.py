"""Where an env step's time goes, for scripts/gpu/bench_gpu.py --profile-steps (and
count_kernels.py): operators and kernels per step, host synchronisations, and on a GPU the
device's idle gaps between its activities, which kernel waited after each, and a Chrome trace.

A step is GPU-bound only if the device never waits for the host; the gaps say where it did
(the kernel after a gap is what the host had not launched yet). Profiling slows the host, so
the gaps are larger than in an unprofiled run: compare them between variants, not with timings.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

# operators that make no kernel of their own (views, metadata, allocation, dtype/device no-ops)
NO_KERNEL = frozenset(f"aten::{name}" for name in (
    "view", "slice", "select", "unsqueeze", "squeeze", "as_strided", "expand", "expand_as", "t", "transpose",
    "permute", "narrow", "alias", "detach", "_reshape_alias", "unbind", "split", "split_with_sizes", "chunk",
    "reshape", "flatten", "unflatten", "view_as", "lift_fresh", "_unsafe_view", "to", "contiguous", "empty",
    "empty_like", "empty_strided", "result_type", "item", "_local_scalar_dense", "resolve_conj", "resolve_neg"))

DYNAMO_ENTRY = ("TorchDynamo Cache Lookup", "Pregraph bytecode")
SYNC_NAMES = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpy", "cudaMemcpyAsync",
              "aten::item", "aten::_local_scalar_dense", "aten::nonzero")


def sync(device: str) -> None:
    import torch
    import warp as wp

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wp.synchronize()


def operator_counts(events) -> tuple[int, int]:
    """(aten operators called from Python, those of them that compute and run outside a compiled
    graph). The second is the kernels the task layer launches one by one on a GPU, countable on
    the CPU too (there torch.profiler sees no kernel launches)."""
    top, eager = 0, 0
    for e in events:
        if not e.name.startswith("aten::"):
            continue
        ancestors, parent = [], e.cpu_parent
        while parent is not None:
            ancestors.append(parent.name)
            parent = parent.cpu_parent
        if any(name.startswith("aten::") for name in ancestors):
            continue  # called by another operator
        top += 1
        compiled = any("Compiled" in name for name in ancestors)
        eager += not compiled and e.name not in NO_KERNEL
    return top, eager


def device_gaps(intervals: Iterable[tuple[float, float, str]], steps: int, min_gap_us: float = 5.0,
                top: int = 12) -> dict:
    """The device's idle time in a profiled window of `steps` env steps, from its activities
    (start µs, end µs, name: kernels, copies, memsets; overlaps merged): busy share, idle µs per
    step, gaps of at least `min_gap_us` per step, and the activities that most often started
    after a gap (what the device waited for the host to launch), with their idle µs per step."""
    ordered = sorted(intervals)
    if not ordered:
        return {}
    first_start, busy_end, _ = ordered[0]
    busy, idle = 0.0, 0.0
    block_start = first_start
    waited: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    gaps = 0
    for start, end, name in ordered:
        if start > busy_end:
            gap = start - busy_end
            busy += busy_end - block_start
            idle += gap
            block_start = start
            if gap >= min_gap_us:
                gaps += 1
                waited[name][0] += 1
                waited[name][1] += gap
        busy_end = max(busy_end, end)
    busy += busy_end - block_start
    window = busy_end - first_start
    ranked = sorted(waited.items(), key=lambda kv: -kv[1][1])[:top]
    return {
        "window_us_per_step": window / steps,
        "busy_fraction": busy / window if window > 0 else 1.0,
        "idle_us_per_step": idle / steps,
        f"gaps_over_{min_gap_us:g}us_per_step": gaps / steps,
        "waited_for": [{"next": name[:90], "gaps_per_step": count / steps, "idle_us_per_step": total / steps}
                       for name, (count, total) in ranked],
    }


def device_intervals(events) -> list[tuple[float, float, str]]:
    """(start, end, name) of the device-side events of a torch.profiler run."""
    from torch.autograd import DeviceType

    return [(e.time_range.start, e.time_range.end, e.name) for e in events
            if e.device_type == DeviceType.CUDA and e.time_range.end > e.time_range.start]


def profile_env(task: str, n: int, device: str, steps: int, path: Path, variant: str, overrides: dict) -> dict:
    """Profile `steps` env steps of a variant (its env `overrides`): appends the operator tables
    to `path`, writes the gzipped Chrome trace beside it (gpu_trace_<variant>.json.gz) and, on a
    GPU, returns the device's gaps."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from dhal.commands.bench_env import warm_up
    from dhal.envs.registry import make_env

    env = make_env(task=task, num_envs=n, backend="mujoco_warp", device=device, overrides=overrides)
    on_gpu = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    try:
        # the benchmark's workload (falls, so resets happen), from a fixed draw
        gen = torch.Generator(device=env.device).manual_seed(0)
        actions = (0.4 * torch.randn((n, env.num_actions), generator=gen, device=env.device)).clamp(-3, 3)
        with torch.inference_mode():
            warm_up(env, lambda step: actions, 5, time_out=variant != "noreset")
            sync(device)
            with profile(activities=activities) as prof:
                for _ in range(steps):
                    env.step(actions)
                sync(device)
    finally:
        env.close()
    events = prof.key_averages()
    syncs = {e.key: e.count / steps for e in events if e.key in SYNC_NAMES}
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel")) / steps
    top_ops, eager_ops = operator_counts(prof.events())
    top_ops, eager_ops = top_ops / steps, eager_ops / steps
    # host time dynamo spends per step choosing and entering compiled graphs (guards, boxing inputs)
    dynamo_us = sum(e.cpu_time_total for e in events if e.key in DYNAMO_ENTRY) / steps
    result = {"profile_steps": steps, "num_envs": n, "variant": variant, "kernel_launches_per_step": launches,
              "host_syncs_per_step": syncs, "aten_ops_per_step": top_ops, "eager_compute_ops_per_step": eager_ops,
              "dynamo_entry_host_us_per_step": dynamo_us, "profile_path": str(path)}
    if on_gpu:
        result["device_gaps"] = device_gaps(device_intervals(prof.events()), steps)
    trace = path.with_name(f"gpu_trace_{variant}.json.gz")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(raw))
        with raw.open("rb") as src, gzip.open(trace, "wb") as dst:
            shutil.copyfileobj(src, dst)
    result["trace_path"] = str(trace)
    sort_device = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
    with path.open("a") as f:
        f.write(f"==== {steps} env steps, N={n}, {device}, {variant}\n")
        f.write(f"per step: {top_ops:.0f} aten operators called from Python, {eager_ops:.0f} of them computing "
                f"outside compiled graphs, {launches:.0f} kernel launches, {dynamo_us:.0f} us of dynamo's guards and "
                f"input boxing; possible host syncs {syncs}\n")
        if "device_gaps" in result:
            f.write(f"device gaps: {result['device_gaps']}\n")
        f.write("\n" + events.table(sort_by=sort_device, row_limit=40) + "\n\n")
        f.write(events.table(sort_by="cpu_time_total", row_limit=40) + "\n")
    return result
