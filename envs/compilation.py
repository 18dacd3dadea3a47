"""torch.compile for the task's pure per-step functions.

On a GPU an env step is a few hundred small tensor operations; each is a kernel launch that
costs the host more time than the kernel costs the device, so the step is bound by Python and
the launch queue rather than by the physics. Compiling the pure functions (no generators, no
host reads, no mutation) fuses them into a few kernels. On a CPU the fused code is no faster
and compiling takes about a minute, so the default is to compile on CUDA devices only.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable)


def compile_enabled(setting: bool | None, device: torch.device) -> bool:
    """The config's choice (`SimConfig.compile`), with None meaning "on CUDA devices"."""
    return device.type == "cuda" if setting is None else bool(setting)


def maybe_compile(fn: F, enabled: bool) -> F:
    """`fn` compiled for any batch size (one compilation serves every number of envs), or `fn`.
    fullgraph: a construct that would split the graph is an error here, not a silent slowdown."""
    if not enabled:
        return fn
    return torch.compile(fn, dynamic=True, fullgraph=True)  # type: ignore[return-value]
