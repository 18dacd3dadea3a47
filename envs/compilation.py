"""Optional torch.compile for the task's pure per-step functions (SimConfig.compile).

On a GPU an env step is a few hundred small tensor operations whose launches cost the host more
than the kernels cost the device. Compiling the pure functions (no generators, no host reads, no
mutation) fuses them into a few kernels. Measured on an H200 (BENCHMARKS.md) it raised env
throughput by 3-5 % at 1,024-8,192 envs for one to two minutes of compiling per process, which is
why it is off by default; long GPU runs may turn it on.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable)


def maybe_compile(fn: F, enabled: bool) -> F:
    """`fn` compiled for any batch size (one compilation serves every number of envs), or `fn`.
    fullgraph: a construct that would split the graph is an error here, not a silent slowdown."""
    if not enabled:
        return fn
    return torch.compile(fn, dynamic=True, fullgraph=True)  # type: ignore[return-value]
