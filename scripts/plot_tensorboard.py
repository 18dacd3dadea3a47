#!/usr/bin/env python3
"""Plot a training run's key TensorBoard scalars into one PNG (for runs brought back from a GPU).

    python scripts/plot_tensorboard.py EVENTS_FILE OUT.png
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

PANELS = {
    "mean reward": ["Train/mean_reward"],
    "mean episode length (steps)": ["Train/mean_episode_length"],
    "reward per step by group": ["Reward/glide_per_step", "Reward/push_per_step", "Reward/sim2real_per_step"],
    "value loss by critic": ["Loss/value_glide", "Loss/value_push", "Loss/value_sim2real"],
    "mode occupancy (acting)": ["Modes/acting_occupancy_0", "Modes/acting_occupancy_1", "Modes/acting_occupancy_2"],
    "mode vs contact NMI, switch rate": ["Modes/argmax_contact_nmi", "Modes/argmax_switch_rate"],
    "dynamics: selected-expert state MSE": ["Dynamics/selected_state_mse"],
    "seconds per iteration": ["Perf/collection_time", "Perf/learning_time"],
}


def main(events: str, out: str) -> None:
    ea = EventAccumulator(events, size_guidance={"scalars": 0})
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    fig, axes = plt.subplots(4, 2, figsize=(12, 13))
    for ax, (title, keys) in zip(axes.flat, PANELS.items()):
        for key in keys:
            if key in tags:
                points = ea.Scalars(key)
                ax.plot([p.step for p in points], [p.value for p in points], label=key.split("/")[-1])
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
