"""`dhal sim`: roll out a hand-made policy, render env 0 to an mp4 and plot what happened."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dhal.commands.env_options import EnvOptions, open_env
from dhal.commands.errors import CommandError
from dhal.commands.video import VideoOptions, open_video, rendering_error
from dhal.commands.policies import PolicyName, make_policy
from dhal.commands.rollout_record import RolloutRecorder, plot_rollout, save_arrays
from dhal.envs.api import BatchedEnv

VIDEO_NAME = "rollout.mp4"
PLOT_NAME = "rollout.png"
DATA_NAME = "rollout.npz"


@dataclass
class SimConfig(VideoOptions, EnvOptions):
    """Roll out a zero, random or scripted policy; write a video of env 0 and a plot."""

    policy: PolicyName = "zero"
    """zero: default pose; random: uniform actions; scripted: a rhythmic push with the right legs."""
    num_envs: int = 4
    """Parallel envs; the plot shows env 0 and the mean over all of them."""
    seconds: float = 4.0
    """Simulated time."""
    out: Path = Path("outputs/sim")
    """Folder for the video, the plot and the recorded data."""


@dataclass(frozen=True)
class SimOutputs:
    plot: Path
    data: Path
    video: Path | None
    steps: int


def run(cfg: SimConfig, env: BatchedEnv | None = None) -> SimOutputs:
    """Run `cfg`; `env` replaces the one `cfg` describes (tests pass a fake)."""
    if cfg.num_envs < 1 or cfg.seconds <= 0:
        raise CommandError("--num-envs must be >= 1 and --seconds > 0")
    cfg.check_size()
    env = env if env is not None else open_env(cfg, cfg.num_envs)
    try:
        return _roll_out(cfg, env)
    finally:
        env.close()


def _roll_out(cfg: SimConfig, env: BatchedEnv) -> SimOutputs:
    cfg.out.mkdir(parents=True, exist_ok=True)
    steps = max(1, round(cfg.seconds / env.step_dt))
    policy = make_policy(cfg.policy, env, seed=cfg.seed)
    recorder = RolloutRecorder(env.step_dt, env.reward_group_names)
    video_path = cfg.out / VIDEO_NAME if cfg.video else None
    writer = open_video(video_path, fps=1.0 / env.step_dt) if video_path else None
    env.reset()
    try:
        with torch.inference_mode():
            for step in tqdm(range(steps), desc=f"sim {cfg.policy}", unit="step", mininterval=0.5):
                recorder.add(env.step(policy(step)))
                if writer is not None:
                    writer.append_data(_render(env, cfg.width, cfg.height))
    finally:
        if writer is not None:
            writer.close()

    arrays = recorder.arrays()
    data_path = cfg.out / DATA_NAME
    save_arrays(arrays, data_path)
    plot_path = cfg.out / PLOT_NAME
    title = f"{cfg.task}, {cfg.policy} policy, {cfg.num_envs} envs"
    plot_rollout(arrays, recorder.reward_group_names, plot_path, title)
    return SimOutputs(plot=plot_path, data=data_path, video=video_path, steps=steps)


def _render(env: BatchedEnv, width: int, height: int) -> np.ndarray:
    try:
        return env.render(0, width, height)
    except Exception as error:
        raise rendering_error(error) from error


def report(outputs: SimOutputs) -> str:
    lines = [f"simulated {outputs.steps} control steps"]
    if outputs.video is not None:
        lines.append(f"video: {outputs.video}")
    lines += [f"plot:  {outputs.plot}", f"data:  {outputs.data}"]
    return "\n".join(lines)
