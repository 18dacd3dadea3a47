"""Success rates with honest uncertainty: the Wilson score interval of a binomial proportion.

Wilson rather than the normal approximation because suites run few episodes and rates near 0 or 1
(the paper's 5 trials at 100% give [0.57, 1], not [1, 1])."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Proportion:
    successes: int
    trials: int
    low: float  # Wilson interval
    high: float

    @property
    def rate(self) -> float:
        return self.successes / self.trials

    def as_dict(self) -> dict[str, float | int]:
        return {"successes": self.successes, "trials": self.trials, "rate": self.rate, "ci_low": self.low,
                "ci_high": self.high}

    def text(self) -> str:
        return f"{100 * self.rate:3.0f}% [{100 * self.low:3.0f}, {100 * self.high:3.0f}]"


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> Proportion:
    """The Wilson score interval of `successes` out of `trials` (95% by default)."""
    if trials < 1:
        raise ValueError(f"a success rate needs at least one trial, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], got {successes}")
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    # At p = 0 or 1 the bound is exactly p; keep float rounding from putting it past p.
    return Proportion(successes, trials, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))
