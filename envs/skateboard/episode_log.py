"""What the training log says about finished episodes.

Totals are kept on the device and added to at every step; they are read back (one
device-to-host copy) only when the env checks in with the host (`SimConfig.check_every`), so
the steps in between wait for nothing. Each report covers the episodes that ended since the
last one: mean reward per term (per second of the configured episode length), the share of
those episodes ended by each reason, and their mean length.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dhal.envs.compilation import maybe_compile


def episode_totals(done: torch.Tensor, ended_sums: torch.Tensor, ended_steps: torch.Tensor,
                   reasons: dict[str, torch.Tensor]) -> torch.Tensor:
    """[T + R + 2]: the reward-term sums, end-reason counts, summed length in steps and number of
    the episodes in `done`: a pure function, so SimConfig.compile fuses it."""
    weight = done.float()
    return torch.cat((
        (ended_sums * weight.unsqueeze(-1)).sum(0),
        (torch.stack(tuple(reasons.values()), dim=-1) & done.unsqueeze(-1)).float().sum(0),
        (ended_steps.float() * weight).sum().unsqueeze(0),
        weight.sum().unsqueeze(0),
    ))


class EpisodeLog:
    def __init__(self, term_names: Sequence[str], reason_names: Sequence[str], episode_length_s: float,
                 step_dt: float, device: torch.device, compiled: bool = False) -> None:
        self.term_names, self.reason_names = tuple(term_names), tuple(reason_names)
        self.episode_length_s, self.step_dt = float(episode_length_s), float(step_dt)
        self.names = ([f"Episode_Reward/{k}" for k in self.term_names]
                      + [f"Episode_Termination/{k}" for k in self.reason_names] + ["Episode/length_s"])
        # term sums, reason counts, summed length in steps, episode count
        self._totals = torch.zeros(len(self.term_names) + len(self.reason_names) + 2, device=device)
        self._recorded = False  # whether flush has anything to read back
        self._episode_totals = maybe_compile(episode_totals, compiled, device)

    def record(self, done: torch.Tensor, ended_sums: torch.Tensor, ended_steps: torch.Tensor,
               reasons: dict[str, torch.Tensor]) -> None:
        """Add the episodes in `done` ([N] bool): their reward-term sums [N, T], lengths [N] in
        steps and end reasons ([N] bool each). No host synchronisation."""
        if tuple(reasons) != self.reason_names:
            raise KeyError(f"end reasons {tuple(reasons)} differ from the log's {self.reason_names}")
        self._recorded = True
        self._totals += self._episode_totals(done, ended_sums, ended_steps, reasons)

    def flush(self) -> dict[str, float] | None:
        """The report on the episodes recorded since the last flush (None if none ended); starts
        the next period."""
        if not self._recorded:
            return None
        values = self._totals.tolist()
        self._totals.zero_()
        self._recorded = False
        count = values.pop()
        if count == 0:
            return None
        steps = values.pop()
        t = len(self.term_names)
        report = [v / count / self.episode_length_s for v in values[:t]] + [v / count for v in values[t:]]
        report.append(steps / count * self.step_dt)
        return dict(zip(self.names, report, strict=True))
