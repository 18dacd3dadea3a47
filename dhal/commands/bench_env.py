"""`dhal bench env`: the task's control steps/s against bare physics of the same model.

The ratio says how much the task layer (observations, rewards, resets, torch glue) costs on
top of the simulator; the goal is that it keeps at least 80% of raw throughput.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from dhal.commands.env_options import EnvOptions, open_env
from dhal.commands.errors import CommandError
from dhal.envs.api import BatchedEnv

GOAL_RATIO = 0.8
DEFAULT_DECIMATION = 4  # DHAL's 200 Hz physics under a 50 Hz policy
ACTION_BANK_SIZE = 16  # random action batches drawn ahead, so the timed loop only steps
# Both sides drive the same workload: joint targets = default pose + N(0, 0.1 rad). The raw side
# adds the noise to the keyframe's targets; the env side divides it by its action scale.
TARGET_NOISE_RAD = 0.1


@dataclass
class BenchEnvConfig(EnvOptions):
    """Measure the task's control steps/s and raw physics throughput for each number of envs."""

    sizes: tuple[int, ...] = (64, 512, 2048)
    """Numbers of parallel envs to measure."""
    seconds: float = 5.0
    """Timed duration of each measurement (env and raw, per size)."""
    warmup_steps: int = 10
    """Env steps run before timing starts."""
    rounds: int = 2
    """Env and raw are measured alternately this many times; the best of each is kept, which
    keeps a burst of load from another process from deciding the ratio."""
    json: Path | None = None
    """Also write the results to this JSON file."""


@dataclass(frozen=True)
class BenchResult:
    num_envs: int
    env_steps_per_s: float  # control steps summed over envs
    raw_physics_steps_per_s: float  # bare simulator, summed over envs
    decimation: int

    @property
    def raw_steps_per_s(self) -> float:
        """Raw throughput in control steps, comparable with env_steps_per_s."""
        return self.raw_physics_steps_per_s / self.decimation

    @property
    def ratio(self) -> float:
        return self.env_steps_per_s / self.raw_steps_per_s


def action_scale_of(cfg: Any) -> float:
    action = getattr(cfg, "action", None)
    return float(getattr(action, "scale", 1.0))


def measure_env_throughput(env: BatchedEnv, seconds: float, warmup_steps: int, seed: int = 0) -> float:
    """Control steps per second summed over envs, for joint targets default + N(0, 0.1 rad)."""
    generator = torch.Generator(device=env.device).manual_seed(seed)
    sigma = TARGET_NOISE_RAD / action_scale_of(env.cfg)
    bank = sigma * torch.randn(
        (ACTION_BANK_SIZE, env.num_envs, env.num_actions), generator=generator, device=env.device
    )
    bank = bank.clamp(env.action_low, env.action_high)
    with torch.inference_mode():  # as in a learner's rollout
        for step in range(warmup_steps):
            env.step(bank[step % ACTION_BANK_SIZE])
        steps = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            env.step(bank[steps % ACTION_BANK_SIZE])
            steps += 1
    return env.num_envs * steps / elapsed


def decimation_of(cfg: Any) -> int:
    """Physics steps per control step from the env config (`sim.decimation` or `decimation`)."""
    for holder in (getattr(cfg, "sim", None), cfg):
        value = holder.get("decimation") if isinstance(holder, dict) else getattr(holder, "decimation", None)
        if value is not None:
            return int(value)
    return DEFAULT_DECIMATION


def run(cfg: BenchEnvConfig) -> list[BenchResult]:
    if not cfg.sizes or min(cfg.sizes) < 1 or cfg.seconds <= 0:
        raise CommandError("--sizes must be positive numbers of envs and --seconds > 0")
    # Small torch ops gain nothing from a second thread, and OpenMP's spin-waiting would take a
    # core from MuJoCo's own thread pool.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    results = []
    try:
        for num_envs in cfg.sizes:
            results.append(_measure(cfg, num_envs))
    finally:
        torch.set_num_threads(threads)
    if cfg.json is not None:
        write_json(cfg, results, cfg.json)
    return results


def _measure(cfg: BenchEnvConfig, num_envs: int) -> BenchResult:
    from dhal.envs.backends import raw_step_throughput
    from dhal.envs.registry import scene_path

    env_rate = raw_rate = 0.0
    for _ in range(max(1, cfg.rounds)):
        env = open_env(cfg, num_envs)
        try:
            env_rate = max(env_rate, measure_env_throughput(env, cfg.seconds, cfg.warmup_steps, cfg.seed))
            decimation = decimation_of(env.cfg)
            xml_path = scene_path(env.cfg.scene)
        finally:
            env.close()  # before the raw run, so the two never share the CPU
        raw_rate = max(raw_rate, raw_step_throughput(
            cfg.backend, xml_path, num_envs, nsteps_per_call=decimation, seconds=cfg.seconds,
            device=cfg.device, noise=TARGET_NOISE_RAD))
    result = BenchResult(num_envs, env_rate, raw_rate, decimation)
    print(
        f"  {num_envs} envs: {env_rate:,.0f} env steps/s, "
        f"raw {result.raw_steps_per_s:,.0f}, ratio {result.ratio:.2f}"
    )
    return result


def format_table(results: list[BenchResult]) -> str:
    header = f"{'num_envs':>8}  {'env steps/s':>12}  {'raw steps/s':>12}  {'env/raw':>7}  goal"
    rows = [
        f"{r.num_envs:>8}  {r.env_steps_per_s:>12,.0f}  {r.raw_steps_per_s:>12,.0f}  {r.ratio:>7.2f}  "
        + ("met" if r.ratio >= GOAL_RATIO else "missed")
        for r in results
    ]
    note = (
        f"goal: env/raw >= {GOAL_RATIO:.2f}. Steps are control steps summed over envs; raw is bare "
        "mujoco.batch stepping of the same model, physics steps / decimation."
    )
    return "\n".join([header, *rows, note])


def write_json(cfg: BenchEnvConfig, results: list[BenchResult], path: Path) -> None:
    payload = {
        "task": cfg.task,
        "backend": cfg.backend,
        "device": cfg.device,
        "seconds_per_measurement": cfg.seconds,
        "goal_ratio": GOAL_RATIO,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "results": [
            {**asdict(r), "raw_steps_per_s": r.raw_steps_per_s, "ratio": r.ratio} for r in results
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
