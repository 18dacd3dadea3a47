"""A per-env hysteresis filter on mode probabilities, for deployment (LEDs, logging, gating).

DHAL's released code samples a fresh mode at every 50 Hz step (DHAL.md §6.6), which flickers. The
filter keeps each env's current mode until one other mode's probability exceeds the current
mode's by more than `margin` on `hold_steps` consecutive steps (the same challenger each time),
then switches to it. The first call after construction or `reset` takes the argmax.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class ModeHysteresis:
    def __init__(self, num_modes: int, margin: float, hold_steps: int) -> None:
        if num_modes < 1:
            raise ValueError(f"num_modes must be >= 1, got {num_modes}")
        if margin < 0.0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if hold_steps < 1:
            raise ValueError(f"hold_steps must be >= 1, got {hold_steps}")
        self.num_modes = num_modes
        self.margin = float(margin)
        self.hold_steps = int(hold_steps)
        self.mode: Tensor | None = None  # [N] int64, -1 = not initialised
        self.candidate: Tensor | None = None  # [N] int64, -1 = none
        self.count: Tensor | None = None  # [N] int64

    def _allocate(self, num_envs: int, device: torch.device) -> None:
        self.mode = torch.full((num_envs,), -1, dtype=torch.long, device=device)
        self.candidate = torch.full((num_envs,), -1, dtype=torch.long, device=device)
        self.count = torch.zeros(num_envs, dtype=torch.long, device=device)

    def reset(self, env_ids: Sequence[int] | Tensor | None = None) -> None:
        """Forget the state of `env_ids` (all envs if None); their next update takes the argmax."""
        if self.mode is None or self.candidate is None or self.count is None:
            return
        ids = slice(None) if env_ids is None else torch.as_tensor(env_ids, dtype=torch.long, device=self.mode.device)
        self.mode[ids] = -1
        self.candidate[ids] = -1
        self.count[ids] = 0

    def update(self, probs: Tensor) -> Tensor:
        """probs [N, K] -> filtered mode [N] (int64)."""
        if probs.dim() != 2 or probs.shape[1] != self.num_modes:
            raise ValueError(f"probs must be [N, {self.num_modes}], got {tuple(probs.shape)}")
        if self.mode is None or self.mode.shape[0] != probs.shape[0] or self.mode.device != probs.device:
            self._allocate(probs.shape[0], probs.device)
        assert self.mode is not None and self.candidate is not None and self.count is not None
        probs = probs.detach()
        best = probs.argmax(-1)
        fresh = self.mode < 0
        current = torch.where(fresh, best, self.mode)
        p_current = probs.gather(1, current.unsqueeze(1)).squeeze(1)
        p_best = probs.gather(1, best.unsqueeze(1)).squeeze(1)
        challenged = (best != current) & (p_best - p_current > self.margin)
        same = challenged & (best == self.candidate)
        count = torch.where(same, self.count + 1, torch.where(challenged, torch.ones_like(self.count), 0))
        switch = count >= self.hold_steps
        self.mode = torch.where(switch, best, current)
        self.candidate = torch.where(challenged & ~switch, best, torch.full_like(best, -1))
        self.count = torch.where(switch, torch.zeros_like(count), count)
        return self.mode.clone()

    __call__ = update
