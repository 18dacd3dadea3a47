#!/usr/bin/env python3
"""Per-iteration timings and learning progress of a `dhal train` run, from its TensorBoard events,
as JSON (for runs on a borrowed GPU, where only a few files come back).

    python scripts/gpu/summarize_run.py RUN_DIR OUT.json

The first iteration includes compiling (Warp kernels, torch.compile of the task); "steady" is the
median of the iterations after the first two.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def summarize(run_dir: Path) -> dict:
    from dhal.policies.run_scalars import read_scalars

    try:
        data = {tag: sorted(values.items()) for tag, values in read_scalars(run_dir).items()}
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None
    if "Perf/collection_time" not in data:
        raise SystemExit(f"{run_dir}: no Perf/collection_time scalars (not a dhal train run, or no iteration done)")
    learn = dict(data.get("Perf/learning_time", []))
    seconds = [collect + learn.get(step, 0.0) for step, collect in data["Perf/collection_time"]]
    config = json.loads((run_dir / "config.json").read_text())
    train = config["train"]

    def ends(tag: str) -> dict | None:
        values = data.get(tag)
        return None if not values else {"first": values[0][1], "last": values[-1][1], "at_iteration": values[-1][0] + 1}

    steady = statistics.median(seconds[2:]) if len(seconds) > 2 else None
    return {
        "run_dir": str(run_dir),
        "preset": config.get("preset"),
        "backend": config["env"]["backend"],
        "device": config["env"]["device"],
        "num_envs": train["num_envs"],
        "steps_per_env": train["num_steps_per_env"],
        "transitions_per_iteration": train["num_envs"] * train["num_steps_per_env"],
        "iterations": len(seconds),
        "first_iteration_seconds": seconds[0],
        "steady_iteration_seconds": steady,
        "transitions_per_second": None if steady is None else train["num_envs"] * train["num_steps_per_env"] / steady,
        "training_seconds": sum(seconds),
        "mean_reward": ends("Train/mean_reward"),
        "mean_episode_length": ends("Train/mean_episode_length"),
    }


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    summary = summarize(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
