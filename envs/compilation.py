"""Optional torch.compile for the task's pure per-step functions (SimConfig.compile).

On a GPU an env step is a few hundred small tensor operations whose launches cost the host more
than the kernels cost the device. Compiling the pure functions (no generators, no host reads, no
mutation) fuses them into a few kernels. Measured on an H200 (BENCHMARKS.md, 2026-11-27 fourth
run) it raised env throughput by 4-9 % at 1,024-8,192 envs (env/raw 0.81 at 8,192) for about
100 s of compiling and warm-up per process on a cold machine, which is why it is off by default;
long GPU runs may turn it on. (Since then two needless recompiles are gone: five compilations
instead of seven on the CPU, about 40 % less compile time there; not yet timed on a GPU.)
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
