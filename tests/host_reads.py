"""Counting host reads of device values in tests. On a GPU each such read (`.item()`, `bool()`,
`.tolist()`, `nonzero`, a copy to the host) stalls the launch queue; torch's function hook sees
the same calls on the CPU."""

from __future__ import annotations

import collections
import sys

from torch.overrides import TorchFunctionMode

SYNCING = frozenset({"tolist", "item", "__bool__", "__int__", "__float__", "nonzero", "cpu", "numpy"})


class HostReads(TorchFunctionMode):
    """Counts syncing calls by name while `counting`; calls made from a source path containing
    one of `ignore_callers` are not counted (e.g. "torch/optim": Adam reads its host-side step
    counters, which waits for nothing)."""

    def __init__(self, ignore_callers: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()
        self.counting = True
        self._ignore = ignore_callers

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if self.counting and name in SYNCING:
            caller = sys._getframe(1).f_code.co_filename
            if not any(part in caller for part in self._ignore):
                self.calls[name] += 1
        return func(*args, **(kwargs or {}))
