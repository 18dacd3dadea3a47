"""The figures `dhal eval` writes: a representative episode's mode timeline and the distance histogram."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dhal.policies.evaluate import Episode, Evaluation
from dhal.policies.plotting import draw_mode_timeline, pyplot_agg


def representative_episode(evaluation: Evaluation) -> Episode:
    """The first successful episode, else the longest (the first of equals)."""
    for episode in evaluation.episodes:
        if episode.success:
            return episode
    return max(evaluation.episodes, key=lambda e: e.stop - e.start)


def plot_episode_timeline(evaluation: Evaluation, episode: Episode, path: Path, title: str) -> None:
    plt = pyplot_agg()
    a, env, rows = evaluation.arrays, episode.env, slice(episode.start, episode.stop)
    time = np.arange(1, episode.stop - episode.start + 1) * evaluation.dt
    figure, axes = plt.subplots(4, 1, figsize=(12, 9), sharex=True)
    draw_mode_timeline(axes[:3], time, a["mode"][rows, env], a["mode_probs"][rows, env] if "mode_probs" in a else None,
                       a["free_contacts"][rows, env], a["phase"][rows, env], a["push"][rows, env], evaluation.num_modes)
    axes[3].plot(time, a["board_speed"][rows, env], label="board speed")
    axes[3].plot(time, a["command_vx"][rows, env], linestyle="--", label="command vx")
    axes[3].set_ylabel("m/s")
    axes[3].legend(fontsize=7, loc="upper right")
    axes[3].set_xlabel("time in episode (s)")
    outcome = "success" if episode.success else "failed: " + ", ".join(episode.failures)
    figure.suptitle(f"{title}\nenv {env}, episode {episode.index}: {episode.outcome.distance_m:.1f} m, {outcome}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_distance_histogram(evaluation: Evaluation, path: Path, title: str) -> None:
    plt = pyplot_agg()
    distances = np.array([e.outcome.distance_m for e in evaluation.episodes])
    success = np.array([e.success for e in evaluation.episodes])
    figure, axis = plt.subplots(figsize=(7, 4))
    high = max(float(distances.max()), evaluation.criterion.min_distance_m) * 1.05 + 1e-6
    bins = np.linspace(0.0, high, max(5, min(30, int(math.sqrt(len(distances))) * 3)))
    axis.hist([distances[success], distances[~success]], bins=bins, stacked=True, color=["C2", "C3"],
              label=[f"success ({int(success.sum())})", f"failure ({int((~success).sum())})"])
    axis.axvline(evaluation.criterion.min_distance_m, color="k", linestyle="--", label="success distance")
    axis.set_xlabel("board distance per episode (m)")
    axis.set_ylabel("episodes")
    axis.legend(fontsize=8)
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
