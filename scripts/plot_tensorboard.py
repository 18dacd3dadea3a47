#!/usr/bin/env python3
"""Plot a training run's key TensorBoard scalars into one PNG (for runs brought back from a GPU).

    python scripts/plot_tensorboard.py EVENTS_FILE_OR_RUN_DIR OUT.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from dhal.policies.learning_check import plot_curves

PANELS = (
    ("mean reward", ("Train/mean_reward",)),
    ("mean episode length (steps)", ("Train/mean_episode_length",)),
    ("reward per step by group", ("Reward/glide_per_step", "Reward/push_per_step", "Reward/sim2real_per_step")),
    ("value loss by critic", ("Loss/value_glide", "Loss/value_push", "Loss/value_sim2real")),
    ("mode occupancy (acting)", ("Modes/acting_occupancy_0", "Modes/acting_occupancy_1", "Modes/acting_occupancy_2")),
    ("mode vs contact NMI, switch rate", ("Modes/argmax_contact_nmi", "Modes/argmax_switch_rate")),
    ("dynamics: selected-expert state MSE", ("Dynamics/selected_state_mse",)),
    ("seconds per iteration", ("Perf/collection_time", "Perf/learning_time")),
)

if __name__ == "__main__":
    plot_curves(Path(sys.argv[1]), Path(sys.argv[2]), panels=PANELS)
