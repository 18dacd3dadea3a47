"""Optional torch.compile for the task's pure per-step functions (SimConfig.compile).

On a GPU an env step is a few hundred small tensor operations, each a kernel of about 2 us of
GPU time. Compiling the pure functions (no generators, no host reads) fuses them into a few
kernels. Measured on an H200 (BENCHMARKS.md, 2026-11-27 fourth run) it raised env throughput by
4-9 % at 1,024-8,192 envs (env/raw 0.81 at 8,192) for about 100 s of compiling and warm-up per
process on a cold machine, which is why it is off by default; long GPU runs may turn it on.
Since then the task's step and restart are one pure function each (transition.py, resets.py):
five graphs as before, and 55 instead of 234 operators left to run eagerly per step on
the GPU path (counted on the CPU); not yet timed on a GPU.
"""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable)


def maybe_compile(fn: F, enabled: bool) -> F:
    """`fn` compiled for any batch size (one compilation serves every number of envs), or `fn`.
    fullgraph: a construct that would split the graph is an error here, not a silent slowdown.

    The first call runs eagerly: constants built lazily on first use (the contract's scale and
    noise vectors, the rotation table of quat_to_rpy) then exist before dynamo traces, so its
    guards on those caches hold and do not force a second compilation."""
    if not enabled:
        return fn
    compiled = torch.compile(fn, dynamic=True, fullgraph=True)
    calls = 0

    @functools.wraps(fn)
    def first_eager(*args, **kwargs):
        nonlocal calls
        calls += 1
        return (fn if calls == 1 else compiled)(*args, **kwargs)

    return first_eager  # type: ignore[return-value]
