"""rsl-rl's check that the env returned no NaN, read once per rollout instead of every step.

`rsl_rl.utils.check_nan` reads five device values per step (each observation group, rewards,
dones); on a GPU every such read stalls the launch queue. `NanWatch` or-s the same tests into a
device flag per output and reads them when the rollout is collected, raising rsl-rl's errors.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict


class NanWatch:
    """Collects NaN tests of the env's outputs step by step; `raise_if_found` reads them."""

    def __init__(self) -> None:
        self._names: tuple[str, ...] = ()
        self._flags: torch.Tensor | None = None

    def add(self, obs: TensorDict, rewards: torch.Tensor, dones: torch.Tensor) -> None:
        outputs = [(f"observation group {key!r}", value) for key, value in obs.items()
                   if isinstance(value, torch.Tensor)] + [("rewards", rewards), ("dones", dones)]
        names = tuple(name for name, _ in outputs)
        flags = torch.stack([torch.isnan(value).any() for _, value in outputs])
        if self._flags is None or names != self._names:
            self._names, self._flags = names, flags
        else:
            self._flags |= flags

    def raise_if_found(self, where: str) -> None:
        """ValueError naming the first output that held NaN since the last call (one host read)."""
        if self._flags is None:
            return
        flags, self._flags = self._flags.tolist(), None
        for name, found in zip(self._names, flags):
            if found:
                raise ValueError(f"the {name} returned by the environment contained NaN values ({where}). This "
                                 "usually indicates a bug in the environment's step(), reset() or reward computation.")
