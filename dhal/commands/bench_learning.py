"""`dhal bench learning`: train for a fixed number of iterations, then check the policy beats random
actions by the required margins; exits with an error when it does not."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dhal.commands.errors import CommandError


@dataclass
class BenchLearningConfig:
    """A learning check that can fail: fixed-length training, then trained vs random actions."""

    preset: Literal["paper", "cpu", "smoke"] = "cpu"
    iterations: int = 300
    run_dir: Path = Path("runs/learning_check")
    """Training output; an existing checkpoint there is evaluated without training again with --no-train."""
    train: bool = True
    num_envs: int | None = None
    """Training envs (default: the preset's)."""
    eval_envs: int = 128
    eval_steps: int = 1200
    """Control steps of each evaluation rollout (1200 = 24 s)."""
    seed: int = 0
    min_length_ratio: float = 2.0
    """Trained episodes must last this many times longer than random ones."""
    min_return_ratio: float = 2.0
    """Trained glide and push returns (per episode) must be this many times the random policy's."""
    device: str = "cpu"
    backend: str = "mujoco_batch"
    progress: bool = True


def run(cfg: BenchLearningConfig) -> str:
    from dhal.commands import train
    from dhal.policies.learning_check import compare_with_random, plot_curves
    from dhal.policies.training import CheckpointError, find_checkpoint

    if cfg.train:
        if cfg.iterations < 1:
            raise CommandError("--iterations must be at least 1")
        train.run(train.TrainCommandConfig(preset=cfg.preset, iterations=cfg.iterations, num_envs=cfg.num_envs,
                                           run_dir=cfg.run_dir, seed=cfg.seed, device=cfg.device,
                                           backend=cfg.backend, progress=cfg.progress))
    try:
        checkpoint = find_checkpoint(cfg.run_dir)
        verdict = compare_with_random(checkpoint, cfg.eval_envs, cfg.eval_steps, cfg.seed + 1000,
                                      cfg.min_length_ratio, cfg.min_return_ratio)
    except CheckpointError as error:
        raise CommandError(str(error)) from error
    figure = plot_curves(cfg.run_dir, cfg.run_dir / "learning_check.png", verdict.random)
    (cfg.run_dir / "learning_check.json").write_text(json.dumps(
        {"checkpoint": str(checkpoint), "preset": cfg.preset, "eval_envs": cfg.eval_envs,
         "eval_steps": cfg.eval_steps, **verdict.to_dict()}, indent=2))
    text = "\n".join([f"learning check of {checkpoint} ({cfg.eval_envs} envs x {cfg.eval_steps} steps each):",
                      verdict.table(), f"curves: {figure}; numbers: {cfg.run_dir / 'learning_check.json'}"])
    if not verdict.passed:
        raise CommandError(f"learning check FAILED\n{text}")
    return f"{text}\nlearning check PASSED"
