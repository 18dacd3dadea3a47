"""`dhal bench update`: the cost of one PPO update (and its rollout inference) at a preset's sizes.

A synthetic rollout of the right shapes stands in for the simulator, so the number is the
learner's alone: DHAL's 3 critics, the Beta actor, the mode classifier and the K VAEs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from dhal.commands.errors import CommandError


@dataclass
class BenchUpdateConfig:
    """Time one PPO update at a preset's sizes on synthetic data."""

    preset: str = "paper"
    """Sizes and hyperparameters: paper (4096 envs x 24 steps, 5 x 4 minibatches), cpu or smoke."""
    num_envs: int | None = None
    """Override the preset's number of envs."""
    threads: int | None = None
    """torch threads (default: the preset's)."""
    device: str = "cpu"
    """cpu or cuda."""
    repeats: int = 1
    """Run the update this many times and report the fastest (and the first)."""
    critic_mode: Literal["multi", "single", "single_transferred"] | None = None
    """Override the preset's critic mode."""


def run(cfg: BenchUpdateConfig) -> str:
    from dhal.policies import presets
    from dhal.policies.bench_update import bench_update

    if cfg.preset not in presets.PRESETS:
        raise CommandError(f"unknown preset {cfg.preset!r}; choose one of {sorted(presets.PRESETS)}")
    overrides = {"critic.mode": cfg.critic_mode} if cfg.critic_mode else None
    result = bench_update(cfg.preset, cfg.num_envs, cfg.threads, cfg.device, overrides=overrides,
                          repeats=cfg.repeats)
    return f"{result.summary()}\n  machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
