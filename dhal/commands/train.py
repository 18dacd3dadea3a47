"""`dhal train`: multi-critic PPO with a Beta policy and hybrid modes on the skateboard task.

    dhal train --preset smoke --iterations 2             seconds, 4 envs
    dhal train --preset cpu --iterations 1000             about an hour on 2 cores
    dhal train --preset paper --device cuda --backend mujoco_warp
    dhal train --resume runs/20250101-120000_cpu --iterations 500
    dhal train --train-override critic.mode=single --train-override actor.distribution=gaussian

A run folder holds config.json (the resolved env + train config), model_<iterations>.pt
checkpoints (written atomically, config inside) and the TensorBoard events.

Resume: the run's saved config is the starting point; options given on the command line
(--preset, --num-envs, --override, --train-override, ...) are applied on top, and the checkpoint
is checked against the resulting learner (a mismatch is an error that names it). The iteration
count continues from the checkpoint; the env seed defaults to the saved seed + that count, so the
continuation does not replay the first episodes.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import tyro

from dhal.commands.env_options import EnvOptions, checked_backend, open_env, parse_overrides
from dhal.commands.errors import CommandError

DEFAULT_PRESET = "cpu"
DEFAULT_TASK = "dhal-skateboard"
DEFAULT_BACKEND = "mujoco_batch"
DEFAULT_DEVICE = "cpu"
DEFAULT_SEED = 0
RUNS_ROOT = Path("runs")


@dataclass
class TrainCommandConfig:
    """Train the DHAL policy: multi-critic PPO, Beta policy, mode classifier + per-mode VAEs."""

    preset: Literal["paper", "cpu", "smoke"] | None = None
    """Sizes and hyperparameters: paper (DHAL, 4096 envs; GPU), cpu (128 envs, ~1 h on 2 cores), smoke (seconds). Default: cpu, or the resumed run's."""
    iterations: int = 100
    """PPO iterations to run now (a resumed run continues counting from its checkpoint)."""
    num_envs: int | None = None
    """Parallel envs; default: the preset's."""
    task: str | None = None
    """Registered task name; default: dhal-skateboard (or the resumed run's)."""
    backend: str | None = None
    """Simulator backend; default: mujoco_batch (or the resumed run's)."""
    device: str | None = None
    """Torch device of the env and the learner; default: cpu (or the resumed run's)."""
    seed: int | None = None
    """Seed of the env and of torch; default 0 (resume: the saved seed + the iterations done)."""
    override: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Env config override KEY=VALUE, e.g. --override observations.critic=lean; repeatable."""
    train_override: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Train config override KEY=VALUE, e.g. --train-override ppo.learning_rate=1e-3, critic.mode=single, actor.distribution=gaussian, modes.num_modes=2; repeatable."""
    run_dir: Path | None = None
    """Output folder; default runs/<timestamp>_<preset> (resume: the checkpoint's folder)."""
    resume: Path | None = None
    """Continue from this checkpoint, or from the newest model_<k>.pt of this run folder."""
    save_interval: int | None = None
    """Iterations between checkpoints; default: the preset's (a final one is always written)."""
    time_limit: float | None = None
    """Stop after the iteration that passes this many seconds of training (then --iterations is
    an upper bound), with the final checkpoint as usual: for runs sized by a machine's lease."""
    verbose: bool = False
    """Also print rsl-rl's per-iteration console block."""
    progress: bool = True
    """Show the progress bar (--no-progress to hide it)."""


@dataclass(frozen=True)
class TrainOutputs:
    run_dir: Path
    checkpoint: Path | None
    first_iteration: int
    last_iteration: int
    seconds: float
    rank: int = 0  # this process in a torchrun launch
    world_size: int = 1


def run(cfg: TrainCommandConfig) -> TrainOutputs:
    # Imported here so that `dhal --help` stays fast.
    from dhal.envs.adapters.rsl_rl import RslRlVecEnv
    from dhal.envs.backends import SimulatorCapacityError
    from dhal.envs.overrides import ConfigError, apply_overrides
    from dhal.policies import presets
    from dhal.policies.training import (
        CONFIG_NAME, CheckpointError, DHALRunner, atomic_write_json, distributed_process, find_checkpoint,
        read_checkpoint,
    )

    if cfg.iterations < 1:
        raise CommandError("--iterations must be >= 1")
    if cfg.num_envs is not None and cfg.num_envs < 1:
        raise CommandError("--num-envs must be >= 1")
    if cfg.save_interval is not None and cfg.save_interval < 1:
        raise CommandError("--save-interval must be >= 1")
    if cfg.time_limit is not None and cfg.time_limit < 0:
        raise CommandError("--time-limit must be >= 0 seconds")

    saved: dict[str, Any] = {}
    checkpoint = None
    done = 0
    if cfg.resume is not None:
        try:
            checkpoint = find_checkpoint(cfg.resume)
            ckpt = read_checkpoint(checkpoint)
        except CheckpointError as error:
            raise CommandError(str(error)) from error
        saved = dict(ckpt["infos"].get("config") or {})
        done = int(ckpt["iter"])
        if "train" not in saved or "env" not in saved:
            raise CommandError(f"checkpoint {checkpoint} carries no run config; cannot resume from it")

    # ---- train config -----------------------------------------------------------------------------
    preset_name = cfg.preset or saved.get("preset") or DEFAULT_PRESET
    try:
        if cfg.preset is None and saved:
            train_cfg = presets.from_dict(presets.TrainConfig, saved["train"])
        else:
            train_cfg = presets.preset(preset_name)
        new_train_overrides = parse_overrides(cfg.train_override)
        train_cfg = apply_overrides(train_cfg, new_train_overrides)
    except (ConfigError, ValueError, KeyError) as error:
        raise CommandError(f"train config: {error}") from error
    if cfg.num_envs is not None:
        train_cfg = dataclasses.replace(train_cfg, num_envs=cfg.num_envs)
    if cfg.save_interval is not None:
        train_cfg = dataclasses.replace(train_cfg, save_interval=cfg.save_interval)
    train_overrides = {**(saved.get("train_overrides", {}) if cfg.preset is None else {}), **new_train_overrides}

    # ---- env -------------------------------------------------------------------------------------
    saved_env = saved.get("env", {})
    task = cfg.task or saved_env.get("task", DEFAULT_TASK)
    backend = checked_backend(cfg.backend or saved_env.get("backend", DEFAULT_BACKEND))  # recorded by its full name
    device = cfg.device or saved_env.get("device", DEFAULT_DEVICE)
    seed = cfg.seed if cfg.seed is not None else int(saved_env.get("seed", DEFAULT_SEED)) + done
    # Under torchrun every process trains on its own envs and device; rank 0 writes the files.
    try:
        process = distributed_process()
    except ValueError as error:
        raise CommandError(str(error)) from error
    if process.world_size > 1:
        if cfg.run_dir is None and checkpoint is None:
            raise CommandError("a multi-process run (torchrun) needs --run-dir, the same for every process")
        if device == "cuda":
            device = f"cuda:{process.local_rank}"
        seed_for_envs = seed + process.rank  # different rollouts per process; the learners stay in sync
    else:
        seed_for_envs = seed
    env_overrides = {**saved_env.get("overrides", {}), **parse_overrides(cfg.override)}

    if train_cfg.torch_threads is not None:
        torch.set_num_threads(train_cfg.torch_threads)
    torch.manual_seed(seed)
    options = EnvOptions(task=task, backend=backend, device=device, seed=seed_for_envs,
                         override=tuple(f"{k}={v!r}" for k, v in env_overrides.items()))
    env = open_env(options, train_cfg.num_envs)
    start = time.perf_counter()
    try:
        run_dir = cfg.run_dir or (checkpoint.parent if checkpoint is not None else
                                  RUNS_ROOT / f"{time.strftime('%Y%m%d-%H%M%S')}_{preset_name}")
        run_dir.mkdir(parents=True, exist_ok=True)
        rsl_cfg = presets.rsl_rl_config(train_cfg, run_name=run_dir.name)
        run_config: dict[str, Any] = {
            "preset": preset_name,
            "train": presets.to_dict(train_cfg),
            "train_overrides": train_overrides,
            "env": {
                "task": task, "backend": backend, "device": device, "seed": seed,
                "num_envs": train_cfg.num_envs, "overrides": env_overrides,
                "config": presets.to_dict(env.cfg),
                "observation_sizes": dict(env.observation_sizes),
                "reward_group_names": list(env.reward_group_names),
            },
            "resumed_from": None if checkpoint is None else {"checkpoint": str(checkpoint), "iteration": done},
        }
        try:
            runner = DHALRunner(RslRlVecEnv(env), rsl_cfg, log_dir=run_dir, device=device, run_config=run_config,
                                verbose=cfg.verbose, progress=cfg.progress)
        except ValueError as error:
            raise CommandError(f"cannot build the learner: {error}") from error
        run_config = runner.run_config  # now with the resolved rsl-rl config dict
        if checkpoint is not None:
            try:
                runner.load(checkpoint)
            except CheckpointError as error:
                raise CommandError(str(error)) from error
        if process.rank == 0:
            atomic_write_json(run_config, run_dir / CONFIG_NAME)
        first = runner.current_learning_iteration
        try:
            runner.learn(cfg.iterations, init_at_random_ep_len=train_cfg.init_at_random_ep_len,
                         time_limit_s=cfg.time_limit)
        except KeyboardInterrupt:
            saved_note = f"checkpoint {runner.last_saved}" if runner.last_saved else "no checkpoint written"
            raise CommandError(f"interrupted after iteration {runner.current_learning_iteration} ({saved_note}); "
                               f"continue with: dhal train --resume {run_dir}") from None
        except SimulatorCapacityError as error:  # hours into a GPU run: say how to go on
            saved_note = f"checkpoint {runner.last_saved}" if runner.last_saved else "no checkpoint written"
            larger = "".join(f" --override {key}={value}" for key, value in error.overrides.items())
            resume = f"dhal train --resume {run_dir}" if runner.last_saved else "the same command"
            raise CommandError(f"stopped after iteration {runner.current_learning_iteration} ({saved_note}): "
                               f"{error}\ncontinue with: {resume}{larger}") from error
        return TrainOutputs(run_dir=run_dir, checkpoint=runner.last_saved, first_iteration=first,
                            last_iteration=runner.current_learning_iteration, seconds=time.perf_counter() - start,
                            rank=process.rank, world_size=process.world_size)
    finally:
        env.close()


def report(outputs: TrainOutputs) -> str:
    done = outputs.last_iteration - outputs.first_iteration
    if outputs.rank != 0:
        return (f"process {outputs.rank} of {outputs.world_size}: trained iterations {outputs.first_iteration}.."
                f"{outputs.last_iteration} in step with process 0, which wrote {outputs.run_dir}")
    return "\n".join([
        f"trained iterations {outputs.first_iteration}..{outputs.last_iteration} "
        f"({done} in {outputs.seconds:.1f} s)",
        f"checkpoint:  {outputs.checkpoint}",
        f"config:      {outputs.run_dir / 'config.json'}",
        f"tensorboard: tensorboard --logdir {outputs.run_dir}",
    ])
