"""Noticing a dead mode during training (beyond the paper).

Nothing in DHAL's loss stops two true modes from settling in one expert while another expert goes
unused: the classifier then hardly ever picks the idle expert, it gets almost no data, and it never
recovers. Load balancing (ModesConfig.load_balance_weight) pushes the classifier's batch-mean
probabilities apart, but a classifier can keep a spread-out mean while its argmax never picks the
idle expert, and a weight strong enough to prevent merges costs prediction accuracy
(docs/results/bench_modes.md).

`DeadModeWatch` reads how often each expert is the classifier's argmax (`dynamics_loss`'s
`argmax_share_mode_k`), averaged over windows of training steps, and reports an expert whose share
falls below `dead_share / K`. What to do about it is the caller's choice: `dhal bench modes
--restart-dead-modes` starts the K-mode model again from a fresh initialisation (random restarts,
the usual remedy for a mixture stuck in a poor optimum). A perturbed copy of the busiest expert
(the split move of split-and-merge EM) was tried first and does not work here: the copy dies again
(docs/results/bench_modes.md, "A dead expert").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class DeadModeConfig:
    window: int = 100
    """Training steps over which each expert's argmax share is averaged before a check."""
    dead_share: float = 0.25
    """An expert whose argmax share is below dead_share / K over a window is dead."""
    start: int = 200
    """No expert is declared dead before this step (the first windows sort the data out)."""
    stop_fraction: float = 0.5
    """Nor after this fraction of the training steps, when acting on it would leave little time to learn."""

    def __post_init__(self) -> None:
        if self.window < 1 or self.start < 0:
            raise ValueError(f"DeadModeConfig needs window >= 1 and start >= 0, got {self.window}, {self.start}")
        if not 0.0 < self.dead_share < 1.0:
            raise ValueError(f"DeadModeConfig.dead_share is a fraction of 1/K in (0, 1), got {self.dead_share}")
        if not 0.0 <= self.stop_fraction <= 1.0:
            raise ValueError(f"DeadModeConfig.stop_fraction must be in [0, 1], got {self.stop_fraction}")


@dataclass(frozen=True)
class DeadMode:
    step: int  # steps taken when it was noticed
    mode: int
    share: float  # its argmax share over the last window
    busiest_share: float  # the busiest expert's, over the same window


class DeadModeWatch:
    """Call `after_step(step, stats)` after every optimiser step with `dynamics_loss`'s statistics."""

    def __init__(self, num_modes: int, cfg: DeadModeConfig, total_steps: int) -> None:
        self.num_modes, self.cfg = num_modes, cfg
        self.last_step = int(cfg.stop_fraction * total_steps)
        self.share_sum = torch.zeros(num_modes)
        self.steps_seen = 0

    def after_step(self, step: int, stats: dict[str, Tensor]) -> DeadMode | None:
        """`step` counts from 0. The dead expert noticed at this step, if any."""
        if self.num_modes < 2 or step >= self.last_step:
            return None
        self.share_sum += torch.stack([stats[f"argmax_share_mode_{k}"] for k in range(self.num_modes)]).cpu()
        self.steps_seen += 1
        if self.steps_seen < self.cfg.window:
            return None
        shares = self.share_sum / self.steps_seen
        self.share_sum.zero_()
        self.steps_seen = 0
        dead = int(shares.argmin())
        if step + 1 < self.cfg.start or float(shares[dead]) >= self.cfg.dead_share / self.num_modes:
            return None
        return DeadMode(step=step + 1, mode=dead, share=float(shares[dead]), busiest_share=float(shares.max()))
