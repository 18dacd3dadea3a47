"""Watching a trained policy: env 0 rendered with the robot coloured by its current mode, and a plot
of the modes against the free feet's contacts, the clock phase and the commands.

Colours are `plotting.mode_colours(K)` (tab10), the same in the video and the plots. The robot's
geoms (trunk, hips, thighs, calves; the feet stay dark so contacts remain visible) take the
colour of the argmax mode that chose the step's action; a banner on top repeats the mode and
shows the time, board speed and command.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dhal.policies.evaluate import StepLog
from dhal.policies.plotting import draw_mode_timeline, mode_colours, pyplot_agg

ROBOT_ROOT_BODY = "trunk"
BANNER_HEIGHT = 18


def robot_geom_ids(model: Any, root_body: str = ROBOT_ROOT_BODY, skip_suffix: str = "_foot") -> list[int]:
    """Ids of the geoms of every body under `root_body`, except bodies named *`skip_suffix`."""
    import mujoco

    root = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, root_body)
    if root < 0:
        raise KeyError(f"model has no body named {root_body!r}")
    ids = []
    for geom in range(model.ngeom):
        body = int(model.geom_bodyid[geom])
        if int(model.body_rootid[body]) == root and not model.body(body).name.endswith(skip_suffix):
            ids.append(geom)
    return ids


class ModeRenderer:
    """Frames of one env with the robot coloured by mode, through the backend's `render`."""

    def __init__(self, env: Any, num_modes: int, width: int, height: int, env_id: int = 0) -> None:
        self.env, self.env_id, self.width, self.height = env, env_id, width, height
        self.colours = mode_colours(num_modes)
        sim = env.sim
        self.coloured = "geom_rgba" in inspect.signature(sim.render).parameters
        self.geoms = robot_geom_ids(sim.model) if self.coloured else []

    def frame(self, mode: int, text: str) -> np.ndarray:
        rgb = self.colours[mode]
        if self.coloured:
            rgba = (float(rgb[0]), float(rgb[1]), float(rgb[2]), 1.0)
            image = self.env.sim.render(self.env_id, self.width, self.height,
                                        geom_rgba={g: rgba for g in self.geoms})
        else:  # a backend without per-image colours: the banner alone shows the mode
            image = self.env.sim.render(self.env_id, self.width, self.height)
        return annotate(image, rgb, text)


def annotate(image: np.ndarray, rgb: tuple[float, float, float], text: str) -> np.ndarray:
    """A banner in the mode's colour across the top of the frame, with `text` in it."""
    from PIL import Image, ImageDraw

    out = np.array(image, copy=True)
    band = min(BANNER_HEIGHT, out.shape[0])
    out[:band] = (np.asarray(rgb) * 255).astype(np.uint8)
    picture = Image.fromarray(out)
    ImageDraw.Draw(picture).text((4, 3), text, fill=(255, 255, 255))
    return np.asarray(picture)


@dataclass
class PlayResult:
    arrays: dict[str, np.ndarray]  # StepLog fields of env 0, [T, ...]
    resets: list[float]  # times (s) at which env 0's episode ended
    steps: int
    seconds: float  # wall time


def play(env: Any, policy: Callable[[dict[str, torch.Tensor]], torch.Tensor], actor: Any, steps: int,
         writer: Any | None = None, renderer: ModeRenderer | None = None, progress: bool = True) -> PlayResult:
    """Step `env` for `steps` control steps with the deterministic policy; record env 0 and, with a
    writer, append one mode-coloured frame per step."""
    log = StepLog(env)
    obs = env.observations()
    resets: list[float] = []
    start = time.perf_counter()
    try:
        for step in tqdm(range(steps), desc="play", unit="step", disable=not progress, dynamic_ncols=True,
                         mininterval=0.5):
            actions = policy(obs)
            mode, probs = actor.last_mode, actor.last_mode_probs
            result = env.step(actions.to(env.device))
            log.add(result, mode, probs)
            t = (step + 1) * env.step_dt
            if bool(result.terminated[0] | result.truncated[0]):
                resets.append(t)
            if writer is not None and renderer is not None:
                m = int(mode[0])
                metrics = result.extras["metrics"]
                text = (f"mode {m}  t {t:5.2f} s  board {float(metrics['board_speed'][0]):+.2f} m/s  "
                        f"cmd {float(metrics['command_vx'][0]):+.2f} m/s {float(metrics['command_yaw_rate'][0]):+.2f} rad/s")
                writer.append_data(renderer.frame(m, text))
            obs = result.observations
    finally:
        log.close()
    arrays = {key: value[:, 0] for key, value in log.arrays().items()}
    return PlayResult(arrays=arrays, resets=resets, steps=steps, seconds=time.perf_counter() - start)


def plot_play(result: PlayResult, dt: float, num_modes: int, path: Path, title: str) -> None:
    """Mode timeline against the free-foot contacts and the phase; board speed and yaw rate
    against their commands (env 0; dashed lines: episode ends)."""
    plt = pyplot_agg()
    a = result.arrays
    time_s = np.arange(1, len(a["mode"]) + 1) * dt
    figure, axes = plt.subplots(5, 1, figsize=(12, 11), sharex=True)
    draw_mode_timeline(axes[:3], time_s, a["mode"], a.get("mode_probs"), a["free_contacts"], a["phase"], a["push"],
                       num_modes, resets=result.resets)
    axes[3].plot(time_s, a["board_speed"], label="board speed")
    axes[3].plot(time_s, a["command_vx"], linestyle="--", label="command vx")
    axes[3].set_ylabel("m/s")
    axes[4].plot(time_s, a["yaw_rate"], label="base yaw rate")
    axes[4].plot(time_s, a["command_yaw"], linestyle="--", label="command yaw rate")
    axes[4].set_ylabel("rad/s")
    axes[4].set_xlabel("time (s)")
    for axis in axes[3:]:
        axis.legend(fontsize=7, loc="upper right")
        axis.grid(alpha=0.3)
        for t in result.resets:
            axis.axvline(t, color="k", linestyle="--", linewidth=0.8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
