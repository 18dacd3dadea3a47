"""Plot helpers shared by evaluation, play, replay and the sim-to-real suites: a headless pyplot, the
colour of each mode (the same in videos and plots) and the mode/contact/clock timeline."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from typing import Any

import numpy as np

FREE_FOOT_NAMES = ("FR", "RR", "RL")  # the order of the env's next_contacts (rewards.FREE_FEET)

# matplotlib's tab10, so the video and the plots use the same colour per mode
TAB10: tuple[tuple[float, float, float], ...] = tuple(
    tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[misc]
    for h in ("1f77b4", "ff7f0e", "2ca02c", "d62728", "9467bd", "8c564b", "e377c2", "7f7f7f", "bcbd22", "17becf")
)


def mode_colours(num_modes: int) -> list[tuple[float, float, float]]:
    """K distinct RGB colours in [0, 1]: tab10 up to 10 modes, evenly spaced hues beyond."""
    if num_modes <= len(TAB10):
        return list(TAB10[:num_modes])
    return [colorsys.hsv_to_rgb(k / num_modes, 0.75, 0.9) for k in range(num_modes)]


def draw_mode_timeline(axes: Sequence[Any], time: np.ndarray, modes: np.ndarray, probs: np.ndarray | None,
                       free_contacts: np.ndarray, phase: np.ndarray, push: np.ndarray, num_modes: int,
                       resets: Sequence[float] = ()) -> None:
    """Three panels over time: the mode (probabilities stacked, argmax as a colour strip), the
    free feet's contacts and the clock phase; the argmax mode tints each panel's background."""
    colours = np.asarray(mode_colours(num_modes))
    strip = colours[np.asarray(modes, dtype=np.int64)][None]  # [1, T, 3]
    dt = float(time[1] - time[0]) if len(time) > 1 else 1.0
    extent_x = (float(time[0]) - dt, float(time[-1]))
    ax_mode, ax_contact, ax_phase = axes
    if probs is not None:
        ax_mode.stackplot(time, np.asarray(probs).T, colors=colours, step="pre", alpha=0.85,
                          labels=[f"mode {k}" for k in range(num_modes)])
        ax_mode.set_ylim(0.0, 1.25)
        ax_mode.imshow(strip, aspect="auto", extent=(*extent_x, 1.05, 1.25), interpolation="nearest")
        ax_mode.set_ylabel("mode prob.\n(strip: argmax)")
    else:
        ax_mode.imshow(strip, aspect="auto", extent=(*extent_x, 0.0, 1.0), interpolation="nearest")
        ax_mode.set_ylabel("argmax mode")
    ax_mode.legend(handles=[_patch(colours[k], f"mode {k}") for k in range(num_modes)], fontsize=7,
                   ncol=num_modes, loc="upper right")
    contacts = np.asarray(free_contacts, dtype=np.float64)
    for j, name in enumerate(FREE_FOOT_NAMES[:contacts.shape[1]]):
        ax_contact.fill_between(time, j, j + 0.8 * contacts[:, j], step="pre", color="0.25", linewidth=0)
    ax_contact.set_yticks(np.arange(contacts.shape[1]) + 0.4, FREE_FOOT_NAMES[:contacts.shape[1]])
    ax_contact.set_ylim(-0.1, contacts.shape[1])
    ax_contact.set_ylabel("free-foot contact")
    ax_phase.plot(time, phase, color="k", linewidth=1.0, label="phase sin(2πt/T)")
    ax_phase.fill_between(time, -1.1, 1.1, where=np.asarray(push, dtype=bool), step="pre", color="C1", alpha=0.25,
                          linewidth=0, label="push phase")
    ax_phase.set_ylim(-1.1, 1.1)
    ax_phase.set_ylabel("clock")
    ax_phase.legend(fontsize=7, loc="upper right")
    for axis in (ax_contact, ax_phase):
        low, high = axis.get_ylim()
        axis.imshow(strip, aspect="auto", extent=(*extent_x, low, high), alpha=0.18, interpolation="nearest",
                    zorder=0)
        axis.set_ylim(low, high)
    for axis in axes:
        axis.set_xlim(*extent_x)
        for t in resets:
            axis.axvline(t, color="k", linestyle="--", linewidth=0.8)


def _patch(colour: Any, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(color=colour, label=label)


def pyplot_agg() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
