"""torch.compile for the task's pure per-step functions (SimConfig.compile), on CUDA by default.

On a GPU an env step is a few hundred small tensor operations, each a kernel of about 2 us of
GPU time. Compiling the pure functions (no generators, no host reads: the step's transition and
the restart are one function each, transition.py and resets.py) fuses them into a few kernels:
on an H200 120 instead of about 436 launches per step, and env/raw 0.76 -> 0.84 at 4,096 envs,
0.79 -> 0.85 at 8,192 with inductor's combo kernels (BENCHMARKS.md, 2026-11-27 eighth and ninth
runs), for about 20 s of compiling in a fresh process. On the CPU the backend's physics dominates
a step and compiling costs minutes on a small machine, so there it stays off unless asked for.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable)

# Inductor options on CUDA. combo_kernels launches a graph's independent small kernels as one
# (Triton only): env/raw +0.01 at 1,024-8,192 envs on an H200, where a compiled step still launches
# about 90 Triton kernels (BENCHMARKS.md).
InductorOptions = dict[str, str | int | bool | Callable[..., Any]]
CUDA_INDUCTOR_OPTIONS: InductorOptions = {"combo_kernels": True}


class CompileError(RuntimeError):
    """torch.compile failed for a task function (no Triton for the GPU, no C++ compiler, an
    operation dynamo cannot trace); the message says how to run without compiling."""


def compiles(setting: bool | None, device: torch.device | str) -> bool:
    """Whether SimConfig.compile's `setting` compiles on `device`: None means on CUDA devices."""
    return torch.device(device).type == "cuda" if setting is None else bool(setting)


def maybe_compile(fn: F, enabled: bool, device: torch.device | str = "cpu") -> F:
    """`fn` compiled for the rollout, or `fn`. fullgraph: a construct that would split the graph
    is an error here, not a silent slowdown.

    Compiled graphs serve calls under torch.inference_mode, where every rollout here runs
    (training, `dhal eval`, `play`, `bench`); other calls, such as the constructor's first reset,
    run eagerly. Dynamo guards on grad mode and on each tensor's dispatch keys, which differ
    between inference tensors and normal ones, so compiling for both compiled each function
    twice (6 recompiles in a smoke training on CPU Warp, none now; there inductor's caches had
    made the repeats cheap; on an H200 the first `paper` iteration fell from 29 s to 11-13 s
    with this and static shapes). The first call under
    inference mode runs eagerly too: the state it returns replaces the constructor's normal
    tensors, and constants built lazily on first use (the contract's scale and noise vectors,
    the rotation table of quat_to_rpy) exist before dynamo traces, so its guards on them hold.

    Shapes are static at first (dynamo's default: a second batch size in the process compiles
    once more, with the sizes dynamic). Compiling with dynamic=True instead made every float the
    function reads from the config a graph input: each call boxed and guarded about thirty of
    them, and on a GPU inductor passed them to its kernels as host scalars: 88 `item` calls per
    step in an H200 profile, 0.1 with static shapes. Dynamo's host time per step of the GPU path
    halved as well on CPU Warp (guards and input boxing 1.10 -> 0.53 ms, profiled; BENCHMARKS.md)."""
    if not enabled:
        return fn
    options: InductorOptions | None = dict(CUDA_INDUCTOR_OPTIONS) if torch.device(device).type == "cuda" else None
    compiled = torch.compile(fn, fullgraph=True, options=options)
    warm = False

    @functools.wraps(fn)
    def compiled_in_rollouts(*args, **kwargs):
        nonlocal warm
        if not torch.is_inference_mode_enabled():
            return fn(*args, **kwargs)
        if warm:
            try:
                return compiled(*args, **kwargs)
            except torch._dynamo.exc.TorchDynamoException as err:
                raise CompileError(
                    f"torch.compile of {fn.__qualname__} failed on {device} ({type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''}); `--override sim.compile=false` runs the "
                    "env without compiling") from err
        warm = True
        return fn(*args, **kwargs)

    return compiled_in_rollouts  # type: ignore[return-value]
