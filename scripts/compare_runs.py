#!/usr/bin/env python3
"""Overlay the key TensorBoard curves of several training runs (an ablation, two seeds) in one PNG.

    python scripts/compare_runs.py runs/a=baseline runs/b="no entropy" --out compare.png

Each argument is RUN_DIR or RUN_DIR=LABEL; a run's event files (a resumed run has several) are read
together, a later file overriding an earlier one at the same iteration.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dhal.policies.plotting import pyplot_agg
from dhal.policies.run_scalars import read_scalars

PANELS = (
    ("mean episode length (steps)", "Train/mean_episode_length"),
    ("policy spread: mean std of the actions", "Policy/mean_std"),
    ("glide reward per step", "Reward/glide_per_step"),
    ("push reward per step", "Reward/push_per_step"),
    ("share of episodes ended by yaw mismatch", "Episode_Termination/yaw_mismatch"),
    ("learning rate (adaptive)", "Loss/learning_rate"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="RUN_DIR or RUN_DIR=LABEL")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smooth", type=int, default=10, help="moving-average window in iterations")
    args = parser.parse_args()
    plt = pyplot_agg()
    fig, axes = plt.subplots((len(PANELS) + 1) // 2, 2, figsize=(12, 3.2 * ((len(PANELS) + 1) // 2)))
    for spec in args.runs:
        path, _, label = spec.partition("=")
        try:
            series = read_scalars(Path(path), {tag for _, tag in PANELS})
        except FileNotFoundError as error:
            raise SystemExit(str(error)) from None
        for ax, (title, tag) in zip(axes.flat, PANELS):
            points = sorted(series.get(tag, {}).items())
            if not points:
                continue
            steps = [s for s, _ in points]
            values = [v for _, v in points]
            w = max(1, args.smooth)
            smooth = [sum(values[max(0, i - w + 1):i + 1]) / len(values[max(0, i - w + 1):i + 1])
                      for i in range(len(values))]
            ax.plot(steps, smooth, label=label or path)
            ax.set_title(title, fontsize=10)
    for ax in axes.flat:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
