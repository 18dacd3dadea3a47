"""Shared plot helpers: mode colours and the mode timeline figure."""

from __future__ import annotations

import numpy as np

from dhal.policies.plotting import FREE_FOOT_NAMES, draw_mode_timeline, mode_colours, pyplot_agg


def test_mode_colours_are_distinct():
    for k in (1, 3, 10, 16):
        colours = mode_colours(k)
        assert len(colours) == k and len(set(colours)) == k


def test_mode_timeline_colours_the_strip_by_the_argmax_mode(tmp_path):
    plt = pyplot_agg()
    steps, modes = 40, np.repeat([0, 2, 1, 2], 10)
    figure, axes = plt.subplots(3, 1)
    probs = np.eye(3)[modes]
    draw_mode_timeline(axes, np.arange(1, steps + 1) * 0.02, modes, probs, np.zeros((steps, len(FREE_FOOT_NAMES))),
                       np.sin(np.arange(steps) / 5.0), np.arange(steps) % 2 == 0, num_modes=3)
    strip = axes[0].images[0].get_array()  # [1, T, 3] RGB of the argmax strip
    assert np.allclose(strip[0, :, :3], np.asarray(mode_colours(3))[modes])
    figure.savefig(tmp_path / "timeline.png")
    plt.close(figure)
    assert (tmp_path / "timeline.png").stat().st_size > 0
