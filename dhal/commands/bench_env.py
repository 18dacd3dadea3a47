"""`dhal bench env`: what the task layer costs on top of the physics it drives.

Two numbers per number of envs, from one run:
* env steps/s: the task's control steps per second (observations, rewards, terminations,
  resets, randomisation, torch glue, physics);
* physics steps/s: the same run's control steps divided by the time spent inside the
  simulator's `step` alone, i.e. raw mujoco.batch throughput on exactly the env's model, states
  and controls. Their ratio is the share of time that is physics; the goal is >= 0.8.
A bare mujoco.batch run of the same MJCF from its keyframe (robots standing still, nominal
parameters) is printed too. It is a different workload (no falls, no resets, no randomisation),
so it is reported, not used for the goal.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from dhal.commands.env_options import EnvOptions, open_env
from dhal.commands.errors import CommandError
from dhal.envs.api import BatchedEnv

GOAL_RATIO = 0.8
DEFAULT_DECIMATION = 4  # DHAL's 200 Hz physics under a 50 Hz policy
ACTION_BANK_SIZE = 16  # random action batches drawn ahead, so the timed loop only steps
# Joint targets = default pose + N(0, 0.1 rad) on both the env and the bare run.
TARGET_NOISE_RAD = 0.1


@dataclass
class BenchEnvConfig(EnvOptions):
    """Measure the task's control steps/s against its own physics time, for each number of envs."""

    sizes: tuple[int, ...] = (64, 512, 2048)
    """Numbers of parallel envs to measure."""
    seconds: float = 5.0
    """Timed duration of each measurement (env and bare run, per size)."""
    warmup_steps: int = 10
    """Env steps run before timing starts."""
    rounds: int = 2
    """Each size is measured this many times and the run with the best env rate is kept, so a
    burst of load from another process does not decide the result."""
    bare: bool = True
    """Also time bare mujoco.batch stepping of the MJCF from its keyframe (--no-bare to skip)."""
    json: Path | None = None
    """Also write the results to this JSON file."""


@dataclass(frozen=True)
class BenchResult:
    num_envs: int
    env_steps_per_s: float  # control steps summed over envs, whole task
    physics_steps_per_s: float  # the same steps over the time inside the simulator's step
    bare_physics_steps_per_s: float | None  # bare stepping from the keyframe, physics steps
    decimation: int

    @property
    def ratio(self) -> float:
        """Share of the env's time spent in physics: env rate / its own physics rate."""
        return self.env_steps_per_s / self.physics_steps_per_s

    @property
    def bare_steps_per_s(self) -> float | None:
        """Bare throughput in control steps, comparable with the other two."""
        return None if self.bare_physics_steps_per_s is None else self.bare_physics_steps_per_s / self.decimation


@dataclass(frozen=True)
class EnvThroughput:
    env_steps_per_s: float
    physics_steps_per_s: float
    steps: int  # timed control steps (each of all envs)
    warmup_s: float  # the warm-up steps' time: includes compiling with sim.compile
    done_fraction: float | None  # envs done per step, sampled every DONE_SAMPLE_EVERY steps


DONE_SAMPLE_EVERY = 50  # a host read of the done flags that often: the workload's reset rate


def action_scale_of(cfg: Any) -> float:
    action = getattr(cfg, "action", None)
    return float(getattr(action, "scale", 1.0))


class PhysicsClock:
    """Wraps a simulator's `step` and adds up the time spent inside it. On the CPU a step returns
    when its work is done, so that is host time. On a GPU it returns as soon as the work is
    queued, so each call is bracketed by CUDA events on torch's current stream (MuJoCo Warp's
    blocking stream is ordered with torch's default stream) and `seconds` is the device time
    between them; read it after synchronising."""

    def __init__(self, step: Callable[..., Any], device: torch.device | str) -> None:
        self.inner = step
        self._on_gpu = torch.device(device).type == "cuda"
        self._host_seconds = 0.0
        self._events: list[tuple[Any, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._on_gpu:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            try:
                return self.inner(*args, **kwargs)
            finally:
                end.record()
                self._events.append((begin, end))
        start = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self._host_seconds += time.perf_counter() - start

    def reset(self) -> None:
        self._host_seconds, self._events = 0.0, []

    @property
    def seconds(self) -> float:
        return self._host_seconds + sum(begin.elapsed_time(end) for begin, end in self._events) / 1e3


def warm_up(env: BatchedEnv, actions: Callable[[int], torch.Tensor], steps: int, time_out: bool = True) -> None:
    """Step `env` `steps` times with `actions(step)`. With `time_out` the second step times out
    env 0, so the reset path has run (and, with sim.compile, been compiled) as well."""
    for step in range(steps):
        if step == 1 and time_out:
            env.episode_length_buf[0] = env.max_episode_length - 1
        env.step(actions(step))


def measure_env_throughput(env: BatchedEnv, seconds: float, warmup_steps: int, seed: int = 0,
                           time_out_in_warmup: bool = True) -> EnvThroughput:
    """Control steps per second summed over envs, for joint targets default + N(0, 0.1 rad), and
    the same steps over the physics time alone (equal to the env rate if the env has no `sim`).

    `time_out_in_warmup` as `warm_up`'s `time_out`. Queued GPU work is waited for at
    the end of the warm-up and of the timed loop, so each is charged what it launched."""
    generator = torch.Generator(device=env.device).manual_seed(seed)
    sigma = TARGET_NOISE_RAD / action_scale_of(env.cfg)
    bank = sigma * torch.randn(
        (ACTION_BANK_SIZE, env.num_envs, env.num_actions), generator=generator, device=env.device
    )
    bank = bank.clamp(env.action_low, env.action_high)
    sim = getattr(env, "sim", None)
    clock = None
    if sim is not None:
        clock = PhysicsClock(sim.step, env.device)
        sim.step = clock
    try:
        with torch.inference_mode():  # as in a learner's rollout
            start = time.perf_counter()
            warm_up(env, lambda step: bank[step % ACTION_BANK_SIZE], warmup_steps, time_out_in_warmup)
            _wait_for_device(env.device)
            warmup_s = time.perf_counter() - start
            if clock is not None:
                clock.reset()
            steps, done, sampled = 0, 0, 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                result = env.step(bank[steps % ACTION_BANK_SIZE])
                steps += 1
                if steps % DONE_SAMPLE_EVERY == 0:
                    done += int((result.terminated | result.truncated).sum())
                    sampled += env.num_envs
            _wait_for_device(env.device)  # what was queued is part of the run; the clock reads events
            elapsed = time.perf_counter() - start
    finally:
        if sim is not None:
            del sim.step  # back to the class's method
    physics = clock.seconds if clock is not None and clock.seconds > 0 else elapsed
    return EnvThroughput(env.num_envs * steps / elapsed, env.num_envs * steps / physics, steps, warmup_s,
                         done / sampled if sampled else None)


def _wait_for_device(device: torch.device) -> None:
    if device.type == "cuda":  # the whole device: MuJoCo Warp's stream too
        torch.cuda.synchronize(device)


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

    best: EnvThroughput | None = None
    for _ in range(max(1, cfg.rounds)):
        env = open_env(cfg, num_envs)
        try:
            run = measure_env_throughput(env, cfg.seconds, cfg.warmup_steps, cfg.seed)
            decimation = decimation_of(env.cfg)
            xml_path = scene_path(env.cfg.scene)
        finally:
            env.close()
        if best is None or run.env_steps_per_s > best.env_steps_per_s:
            best = run
    assert best is not None
    bare = None
    if cfg.bare:
        bare = raw_step_throughput(cfg.backend, xml_path, num_envs, nsteps_per_call=decimation,
                                   seconds=cfg.seconds, device=cfg.device, noise=TARGET_NOISE_RAD)
    result = BenchResult(num_envs, best.env_steps_per_s, best.physics_steps_per_s, bare, decimation)
    print(f"  {num_envs} envs: {result.env_steps_per_s:,.0f} env steps/s, physics alone "
          f"{result.physics_steps_per_s:,.0f}, ratio {result.ratio:.2f}")
    return result


def format_table(results: list[BenchResult]) -> str:
    header = f"{'num_envs':>8}  {'env steps/s':>12}  {'physics steps/s':>15}  {'env/raw':>7}  goal    {'bare steps/s':>12}"
    rows = []
    for r in results:
        bare = "-" if r.bare_steps_per_s is None else f"{r.bare_steps_per_s:,.0f}"
        rows.append(f"{r.num_envs:>8}  {r.env_steps_per_s:>12,.0f}  {r.physics_steps_per_s:>15,.0f}  "
                    f"{r.ratio:>7.2f}  {'met   ' if r.ratio >= GOAL_RATIO else 'missed'}  {bare:>12}")
    note = (
        f"goal: env/raw >= {GOAL_RATIO:.2f}. Control steps summed over envs. physics = the same run's steps over "
        "the time inside the simulator's step (raw mujoco.batch on the env's own model, states and controls); "
        "bare = mujoco.batch stepping of the MJCF from its keyframe, robots standing, a lighter workload."
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
            {**asdict(r), "bare_steps_per_s": r.bare_steps_per_s, "ratio": r.ratio} for r in results
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
