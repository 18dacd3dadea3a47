"""The video options every rendering command shares."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class VideoOptions:
    video: bool = True
    """Render env 0 to an mp4 (--no-video to skip, e.g. without headless OpenGL)."""
    width: int = 640
    """Video width in pixels."""
    height: int = 480
    """Video height in pixels."""
