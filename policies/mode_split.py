"""Reviving a dead mode by splitting the busiest one (beyond the paper).

Nothing in DHAL's loss stops two true modes from settling in one expert while another expert goes
unused: the classifier then hardly ever picks the idle expert, so it gets almost no data and never
recovers. Load balancing (ModesConfig.load_balance_weight) pushes the classifier's batch-mean
probabilities apart, but a classifier can keep a spread-out mean while its argmax never picks the
idle expert, and a weight strong enough to prevent merges costs prediction accuracy
(docs/results/bench_modes.md).

`DeadModeSplitter` watches how often each expert is the classifier's argmax over a window of
training steps. When one falls below `dead_share / K`, it is replaced by a perturbed copy of the
busiest expert and the classifier's output for the busiest mode is shared between the two (the
split move of split-and-merge EM, and the dead-code restart of vector quantisers). The two copies
then divide the busiest expert's data between them; where that data really is two modes, each copy
follows one. Experts that share the data evenly are never touched, so a run with no dead mode is
the same, bit for bit, as a run without the splitter.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dhal.policies.modes import HybridModes


@dataclass(frozen=True)
class SplitConfig:
    window: int = 100
    """Training steps over which each expert's argmax share is averaged before a check."""
    dead_share: float = 0.25
    """An expert whose argmax share is below dead_share / K over a window is dead."""
    start: int = 200
    """First step at which a split may happen (the first windows sort the data out)."""
    stop_fraction: float = 0.5
    """No split after this fraction of the training steps, so a split expert has time to learn."""
    noise: float = 0.01
    """Perturbation of the copy, relative to each parameter tensor's root mean square."""

    def __post_init__(self) -> None:
        if self.window < 1 or self.start < 0:
            raise ValueError(f"SplitConfig needs window >= 1 and start >= 0, got {self.window}, {self.start}")
        if not 0.0 < self.dead_share < 1.0:
            raise ValueError(f"SplitConfig.dead_share is a fraction of 1/K in (0, 1), got {self.dead_share}")
        if not 0.0 <= self.stop_fraction <= 1.0:
            raise ValueError(f"SplitConfig.stop_fraction must be in [0, 1], got {self.stop_fraction}")
        if not self.noise >= 0.0:
            raise ValueError(f"SplitConfig.noise must be >= 0, got {self.noise}")


@dataclass(frozen=True)
class Split:
    step: int
    dead: int
    donor: int
    dead_share: float
    donor_share: float


class DeadModeSplitter:
    """Call `after_step(step, stats)` after every optimiser step with `dynamics_loss`'s statistics."""

    def __init__(self, model: HybridModes, optimizer: torch.optim.Optimizer, cfg: SplitConfig, total_steps: int,
                 seed: int) -> None:
        self.model, self.optimizer, self.cfg = model, optimizer, cfg
        self.num_modes = model.cfg.num_modes
        self.last_step = int(cfg.stop_fraction * total_steps)
        self.generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
        self.share_sum = torch.zeros(self.num_modes)
        self.steps_seen = 0
        self.splits: list[Split] = []

    def after_step(self, step: int, stats: dict[str, Tensor]) -> Split | None:
        """`step` counts from 0. Returns the split made at this step, if any."""
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
        donor = int(shares.argmax())
        split_mode(self.model, self.optimizer, dead, donor, self.cfg.noise, self.generator)
        made = Split(step=step + 1, dead=dead, donor=donor, dead_share=float(shares[dead]),
                     donor_share=float(shares[donor]))
        self.splits.append(made)
        return made


@torch.no_grad()
def split_mode(model: HybridModes, optimizer: torch.optim.Optimizer, dead: int, donor: int, noise: float,
               generator: torch.Generator) -> None:
    """Expert `dead` becomes a perturbed copy of expert `donor`, and the two share the donor's
    classifier probability (each gets half). The optimiser's moments follow the parameters."""
    if dead == donor:
        raise ValueError(f"split_mode needs two different modes, got {dead} twice")
    experts = model.experts
    for target, source in zip(experts[dead].parameters(), experts[donor].parameters()):
        rms = source.square().mean().sqrt()
        target.copy_(source + noise * rms * torch.randn(source.shape, generator=generator, device=source.device,
                                                        dtype=source.dtype))
        _copy_moments(optimizer, target, source)
    head = model.classifier[-1]
    assert isinstance(head, nn.Linear)
    rows: list[Tensor] = [head.weight, head.bias]
    if model.cfg.learned_noise:
        rows.append(model.log_noise_var)
    for param in rows:
        param[dead] = param[donor]
        state = optimizer.state.get(param, {})
        for value in state.values():
            if isinstance(value, Tensor) and value.shape == param.shape:
                value[dead] = value[donor]
    head.bias[[dead, donor]] -= math.log(2.0)


def _copy_moments(optimizer: torch.optim.Optimizer, target: Tensor, source: Tensor) -> None:
    if source in optimizer.state:
        optimizer.state[target] = copy.deepcopy(optimizer.state[source])
    else:
        optimizer.state.pop(target, None)
