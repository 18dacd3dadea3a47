"""`dhal play`: watch a trained policy. Env 0 is rendered with the robot coloured by its mode.

    dhal play runs/<run>                                   newest checkpoint, 20 s, random commands
    dhal play runs/<run>/model_300.pt --command-vx 1.0 --command-yaw 0.0
    dhal play runs/<run> --no-video --seconds 8            only the plot

Writes play.mp4 (one frame per control step), play.png (mode timeline against the free feet's
contacts and the clock phase; board speed and yaw rate against the command) and play.npz.
The policy acts deterministically (argmax mode, mean latent, Beta mean). The env is the play
task (no noise, pushes or randomisation) with the run's own env overrides, then yours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import tyro

from dhal.commands.env_options import open_env, parse_overrides
from dhal.commands.errors import CommandError
from dhal.commands.video import VideoOptions, open_video, rendering_error

if TYPE_CHECKING:
    from dhal.policies.inference import LoadedPolicy

VIDEO_NAME = "play.mp4"
PLOT_NAME = "play.png"
DATA_NAME = "play.npz"


@dataclass
class CheckpointOptions:
    """A checkpoint and the env it runs in (shared by `dhal play` and `dhal eval`)."""

    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A checkpoint model_<k>.pt, or a run folder (its newest checkpoint)."""
    task: str = "dhal-skateboard-play"
    """Registered task; the play task has no noise, pushes or randomisation."""
    backend: str = "mujoco_batch"
    """Simulator backend."""
    device: str = "cpu"
    """Torch device of the env and the policy."""
    seed: int = 0
    """Seed of the env's randomness (reset poses, commands)."""
    override: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Env config override KEY=VALUE on top of the run's own, e.g. --override sim.episode_length_s=10; repeatable."""
    command_vx: float | None = None
    """Fixed forward velocity command (m/s) in every episode; giving it or --command-yaw fixes the whole command (the other part is 0)."""
    command_yaw: float | None = None
    """Fixed yaw-rate command (rad/s); see --command-vx. Default: the task's random commands."""
    progress: bool = True
    """Show the progress bar (--no-progress to hide it)."""


def open_checkpoint(cfg: CheckpointOptions, num_envs: int) -> tuple[LoadedPolicy, Any]:
    """The deterministic policy of cfg.checkpoint and a fresh env of `num_envs` for it; a
    CommandError for a corrupt or unfitting checkpoint."""
    from dhal.commands.env_options import EnvOptions
    from dhal.policies.inference import check_env_fits, load_checkpoint_policy
    from dhal.policies.training import CheckpointError

    try:
        loaded = load_checkpoint_policy(cfg.checkpoint, cfg.device)
    except CheckpointError as error:
        raise CommandError(str(error)) from error
    overrides = env_overrides(cfg, loaded)
    options = EnvOptions(task=cfg.task, backend=cfg.backend, device=cfg.device, seed=cfg.seed,
                         override=tuple(f"{k}={v!r}" for k, v in overrides.items()))
    env = open_env(options, num_envs)
    try:
        check_env_fits(env, loaded)
    except CheckpointError as error:
        env.close()
        raise CommandError(str(error)) from error
    return loaded, env


def env_overrides(cfg: CheckpointOptions, loaded: LoadedPolicy) -> dict[str, Any]:
    """The env overrides of a checkpoint's env: the run's own, then --override, then the fixed command's."""
    from dhal.policies.inference import checkpoint_env_overrides, fixed_command_overrides

    return {**checkpoint_env_overrides(loaded.config), **parse_overrides(cfg.override),
            **fixed_command_overrides(cfg.command_vx, cfg.command_yaw)}


def command_text(cfg: CheckpointOptions) -> str:
    if cfg.command_vx is None and cfg.command_yaw is None:
        return "random commands"
    return f"command vx {cfg.command_vx or 0.0:+.2f} m/s, yaw {cfg.command_yaw or 0.0:+.2f} rad/s"


@dataclass
class PlayConfig(VideoOptions, CheckpointOptions):
    """Render a trained policy with the robot coloured by its mode, and plot modes against contacts."""

    seconds: float = 20.0
    """Simulated time."""
    num_envs: int = 1
    """Parallel envs (only env 0 is rendered and plotted)."""
    out: Path = Path("outputs/play")
    """Folder for play.mp4, play.png and play.npz."""


@dataclass(frozen=True)
class PlayOutputs:
    checkpoint: Path
    iteration: int
    plot: Path
    data: Path
    video: Path | None
    steps: int
    seconds: float
    mode_occupancy: list[float]


def run(cfg: PlayConfig) -> PlayOutputs:
    import numpy as np
    import torch

    from dhal.policies.play import ModeRenderer, play, plot_play

    if cfg.seconds <= 0 or cfg.num_envs < 1:
        raise CommandError("--seconds must be > 0 and --num-envs >= 1")
    cfg.check_size()
    loaded, env = open_checkpoint(cfg, cfg.num_envs)
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
        steps = max(1, round(cfg.seconds / env.step_dt))
        video = cfg.out / VIDEO_NAME if cfg.video else None
        renderer = writer = None
        if video is not None:
            renderer = ModeRenderer(env, loaded.num_modes, cfg.width, cfg.height)
            _check_render(renderer)
            writer = open_video(video, fps=1.0 / env.step_dt)
        try:
            with torch.inference_mode():
                result = play(env, loaded.policy, loaded.actor, steps, writer, renderer, cfg.progress)
        finally:
            if writer is not None:
                writer.close()
        data = cfg.out / DATA_NAME
        arrays = {"time": np.arange(1, steps + 1) * env.step_dt, "resets": np.asarray(result.resets), **result.arrays}
        np.savez_compressed(data, **arrays)
        plot = cfg.out / PLOT_NAME
        title = (f"{loaded.checkpoint} (iteration {loaded.iteration}), {cfg.task}, {command_text(cfg)}, "
                 f"K={loaded.num_modes}")
        plot_play(result, env.step_dt, loaded.num_modes, plot, title)
        counts = np.bincount(result.arrays["mode"], minlength=loaded.num_modes) / steps
        return PlayOutputs(checkpoint=loaded.checkpoint, iteration=loaded.iteration, plot=plot, data=data,
                           video=video, steps=steps, seconds=result.seconds,
                           mode_occupancy=[float(c) for c in counts])
    finally:
        env.close()


def _check_render(renderer: Any) -> None:
    try:
        renderer.frame(0, "")
    except Exception as error:
        raise rendering_error(error) from error


def report(outputs: PlayOutputs) -> str:
    lines = [f"played {outputs.checkpoint} (iteration {outputs.iteration}): {outputs.steps} control steps "
             f"in {outputs.seconds:.1f} s",
             "mode occupancy: " + ", ".join(f"{k}: {share:.2f}" for k, share in enumerate(outputs.mode_occupancy))]
    if outputs.video is not None:
        lines.append(f"video: {outputs.video}")
    lines += [f"plot:  {outputs.plot}", f"data:  {outputs.data}"]
    return "\n".join(lines)
