"""What every rendering command shares: the video options, the mp4 writer and the rendering error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dhal.commands.errors import CommandError

MIN_SIZE = 16  # pixels; smaller frames are not encodable by libx264 with our macro block size


@dataclass
class VideoOptions:
    video: bool = True
    """Render env 0 to an mp4 (--no-video to skip, e.g. without headless OpenGL)."""
    width: int = 640
    """Video width in pixels."""
    height: int = 480
    """Video height in pixels."""

    def check_size(self) -> None:
        if self.video and (self.width < MIN_SIZE or self.height < MIN_SIZE):
            raise CommandError(f"--width and --height must be at least {MIN_SIZE} pixels, "
                               f"got {self.width}x{self.height}")


def open_video(path: Path, fps: float) -> Any:
    import imageio.v2 as imageio

    # macro_block_size=8 keeps sizes such as 640x480 untouched and small test sizes encodable.
    return imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=8)


def rendering_error(error: Exception) -> CommandError:
    """GL errors differ by platform; all mean the same to the user."""
    return CommandError(
        f"rendering failed ({type(error).__name__}: {error}). Headless machines need "
        "MUJOCO_GL=egl (or osmesa) and the system packages `make demo` installs; or run with --no-video."
    )
