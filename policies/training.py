"""The training loop around rsl-rl's OnPolicyRunner: checkpoints, resume, logging, export.

`DHALRunner(OnPolicyRunner)` changes four things and reuses the rest (algorithm construction,
TensorBoard writer, episode/loss/perf scalars):
* `learn` counts COMPLETED iterations: a run of n iterations writes `model_<n>.pt` with
  iter = n, and a resumed run continues at n (upstream re-runs iteration n-1, LEARNER.md §5).
  A tqdm bar shows rate and ETA; rsl-rl's per-iteration console block is suppressed unless
  `verbose`.
* `save` writes atomically (temp file in the same folder, fsync, os.replace) and puts the run's
  resolved config, the learner's signature and the torch RNG state inside the checkpoint.
* `load` reads with `weights_only=True` and checks the checkpoint against this learner first:
  a file that is not a torch checkpoint, missing entries, a different observation layout, reward
  groups, critics, distribution or network shapes each give a `CheckpointError` that names the
  problem (and the config keys that differ), never a tensor-size stack trace.
* The logger writes every key of the update's dict that contains "/" under its own tag
  (Dynamics/, Modes/, Policy/, Reward/, Value/) and the rest as rsl-rl's Loss/<key>.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rsl_rl.runners import OnPolicyRunner
from tqdm import tqdm

import dhal
from dhal.policies.nan_watch import NanWatch
from dhal.policies.ppo import DHALPPO
from dhal.policies.run_logger import DHALLogger

CHECKPOINT_FORMAT = "dhal-ppo/1"
CHECKPOINT_PATTERN = re.compile(r"^model_(\d+)\.pt$")
CONFIG_NAME = "config.json"
REQUIRED_KEYS = ("actor_state_dict", "critic_state_dict", "optimizer_state_dict", "iter", "infos")
MAX_LISTED_PROBLEMS = 8
TORCH_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's zip container
PICKLE_PROTOCOL_MAGIC = b"\x80"  # legacy (pre-1.6) torch.save: a bare pickle


class CheckpointError(Exception):
    """A checkpoint that cannot be used here, explained."""


# ---- files --------------------------------------------------------------------------------------

def checkpoint_name(iteration: int) -> str:
    return f"model_{iteration}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    found = []
    for path in Path(run_dir).iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the newest `model_<k>.pt` of a run folder."""
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise CheckpointError(f"no checkpoint (model_<iteration>.pt) in {path}")
        return found[-1][1]
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    return path


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    with _atomic_target(Path(path)) as handle:
        torch.save(obj, handle)


def atomic_write_json(obj: Any, path: str | Path) -> None:
    with _atomic_target(Path(path)) as handle:
        handle.write((json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_checkpoint(path: str | Path, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict; anything that is not one of ours is a CheckpointError."""
    path = find_checkpoint(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head:
        raise CheckpointError(f"{path} is not a readable torch checkpoint (the file is empty)")
    if not (head.startswith(TORCH_ZIP_MAGIC) or head[:1] == PICKLE_PROTOCOL_MAGIC):
        raise CheckpointError(f"{path} is not a readable torch checkpoint (not a torch file: it starts with {head!r})")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path} is not a readable torch checkpoint (it holds objects other than tensors "
                              "and plain values, or its pickle data is damaged)") from error
    except Exception as error:  # zip, EOF and stream errors all mean the same to the user
        detail = str(error).strip().splitlines()[0].split(". ")[0][:200] if str(error).strip() else "no details"
        raise CheckpointError(f"{path} is not a readable torch checkpoint, perhaps truncated or damaged "
                              f"({type(error).__name__}: {detail})") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a checkpoint dict")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise CheckpointError(f"{path} is not a DHAL training checkpoint: it lacks {missing}")
    infos = data["infos"]
    if not isinstance(infos, dict) or infos.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} was not written by this trainer (no {CHECKPOINT_FORMAT!r} format tag); "
                              "it may be a plain rsl-rl checkpoint")
    return data


# ---- compatibility --------------------------------------------------------------------------------

def learner_signature(alg: DHALPPO, obs_sizes: Mapping[str, int]) -> dict[str, Any]:
    """What must match for a checkpoint to load into a learner."""
    cfg = alg.actor.modes_cfg
    return {
        "obs_sizes": {k: int(v) for k, v in sorted(obs_sizes.items())},
        "num_actions": int(alg.storage.actions_shape[0]),
        "reward_group_names": list(alg.reward_group_names),
        "critic_names": list(alg.critic_names),
        "distribution": type(alg.actor.distribution).__name__,
        "mode_sampling": alg.actor.mode_sampling,
        "num_modes": cfg.num_modes,
        "latent_dim": cfg.latent_dim,
        "history_length": cfg.history_length,
        "frame_size": cfg.frame_size,
        "state_dim": cfg.state_dim,
        "contact_dim": cfg.contact_dim,
    }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """'key: checkpoint -> now' for each differing leaf of two nested config dicts."""
    a, b = _flatten(saved), _flatten(current)
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            lines.append(f"{key}: {a.get(key, '<absent>')!r} (checkpoint) vs {b.get(key, '<absent>')!r} (now)")
    return lines


def _state_dict_problems(name: str, saved: Mapping[str, torch.Tensor], current: Mapping[str, torch.Tensor]) -> list[str]:
    problems = []
    missing = [k for k in current if k not in saved]
    unexpected = [k for k in saved if k not in current]
    if missing:
        problems.append(f"{name}: {len(missing)} parameter(s) missing from the checkpoint, e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{name}: {len(unexpected)} unexpected parameter(s) in the checkpoint, e.g. {unexpected[:3]}")
    for key, tensor in current.items():
        other = saved.get(key)
        if isinstance(other, torch.Tensor) and tuple(other.shape) != tuple(tensor.shape):
            problems.append(f"{name}: {key} is {list(other.shape)} in the checkpoint, {list(tensor.shape)} here")
    return problems


def check_compatible(ckpt: Mapping[str, Any], alg: DHALPPO, signature: Mapping[str, Any],
                     run_config: Mapping[str, Any] | None = None, path: str | Path = "checkpoint") -> None:
    """Raise CheckpointError listing every reason `ckpt` cannot be loaded into `alg`."""
    problems: list[str] = []
    saved_sig = ckpt["infos"].get("signature", {})
    for key, now in signature.items():
        before = saved_sig.get(key, "<absent>")
        if key == "obs_sizes" and isinstance(before, Mapping):
            for group in sorted(set(before) | set(now)):
                if before.get(group) != now.get(group):
                    problems.append(f"observation group {group!r} has {before.get(group, 'no')} values in the "
                                    f"checkpoint, {now.get(group, 'no')} here")
        elif before != now:
            problems.append(f"{key} is {before!r} in the checkpoint, {now!r} here")
    problems += _state_dict_problems("actor", ckpt["actor_state_dict"], alg.get_policy().state_dict())
    problems += _state_dict_problems("critic", ckpt["critic_state_dict"], alg._raw_critic.state_dict())
    if not problems:
        return
    if len(problems) > MAX_LISTED_PROBLEMS:
        problems = problems[:MAX_LISTED_PROBLEMS] + [f"... and {len(problems) - MAX_LISTED_PROBLEMS} more"]
    text = f"checkpoint {path} does not fit this learner:\n  - " + "\n  - ".join(problems)
    saved_config = ckpt["infos"].get("config")
    if run_config is not None and isinstance(saved_config, Mapping):
        diffs: list[str] = []
        sections: tuple[tuple[str, str | None], ...] = (("env", "config"), ("train", None))
        for section, sub in sections:
            before, current = saved_config.get(section, {}), run_config.get(section, {})
            if sub is not None:
                before = before.get(sub, {}) if isinstance(before, Mapping) else {}
                current = current.get(sub, {}) if isinstance(current, Mapping) else {}
            diffs += [f"{section}.{line}" for line in config_differences(before, current)]
        if diffs:
            text += "\nconfig differences (checkpoint vs this run):\n  - " + "\n  - ".join(diffs[:MAX_LISTED_PROBLEMS])
    raise CheckpointError(text)


# ---- the runner ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DistributedProcess:
    world_size: int
    rank: int
    local_rank: int


def distributed_process(environ: Mapping[str, str] | None = None) -> DistributedProcess:
    """This process's place in a torchrun launch (world size 1 when not launched by torchrun)."""
    env = os.environ if environ is None else environ
    try:
        process = DistributedProcess(int(env.get("WORLD_SIZE", "1")), int(env.get("RANK", "0")),
                                     int(env.get("LOCAL_RANK", "0")))
    except ValueError as error:
        raise ValueError(f"WORLD_SIZE, RANK and LOCAL_RANK must be integers: {error}") from None
    if process.world_size < 1 or not 0 <= process.rank < process.world_size \
            or not 0 <= process.local_rank < process.world_size:
        raise ValueError(f"inconsistent torchrun environment: {process}")
    return process


class DHALRunner(OnPolicyRunner):
    alg: DHALPPO
    logger: DHALLogger
    current_learning_iteration: int

    def __init__(self, env: Any, train_cfg: dict, log_dir: str | Path | None = None, device: str = "cpu",
                 run_config: Mapping[str, Any] | None = None, verbose: bool = False, progress: bool = True) -> None:
        with contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO()):
            super().__init__(env, train_cfg, None if log_dir is None else str(log_dir), device)
        if not isinstance(self.alg, DHALPPO):
            raise TypeError(f"DHALRunner needs a DHALPPO algorithm, got {type(self.alg).__name__}")
        self.logger = DHALLogger(
            log_dir=self.logger.log_dir, cfg=self.cfg, env_cfg=self.env.cfg, num_envs=self.env.num_envs,
            is_distributed=self.is_distributed, gpu_world_size=self.gpu_world_size,
            gpu_global_rank=self.gpu_global_rank, device=self.device)
        self.logger.verbose = verbose
        self.logger.git_status_repos.append(dhal.__file__)  # git diff of this project into <run>/git/
        self.run_config = {**(run_config or {}), "rsl_rl": self.cfg}  # saved in every checkpoint
        self.progress = progress
        self.obs_sizes = {k: int(v.shape[-1]) for k, v in self.env.get_observations().items()}
        self.signature = learner_signature(self.alg, self.obs_sizes)
        self.last_saved: Path | None = None

    @property
    def log_dir(self) -> Path | None:
        return None if self.logger.log_dir is None else Path(self.logger.log_dir)

    @property
    def writes_files(self) -> bool:
        """Checkpoints and logs come from one process (rank 0) of a multi-process run."""
        return self.log_dir is not None and self.gpu_global_rank == 0

    def _configure_multi_gpu(self) -> None:
        """rsl-rl's multi-GPU set-up (torchrun's WORLD_SIZE, RANK, LOCAL_RANK), extended to the CPU:
        several CPU processes average gradients over gloo, as GPU processes do over nccl."""
        process = distributed_process()
        self.gpu_world_size, self.is_distributed = process.world_size, process.world_size > 1
        self.gpu_local_rank, self.gpu_global_rank = process.local_rank, process.rank
        if not self.is_distributed:
            self.cfg["multi_gpu"] = None
            return
        self.cfg["multi_gpu"] = {"global_rank": process.rank, "local_rank": process.local_rank,
                                 "world_size": process.world_size}
        on_gpu = str(self.device).startswith("cuda")
        if on_gpu and str(self.device) != f"cuda:{process.local_rank}":
            raise ValueError(f"process {process.rank} (local rank {process.local_rank}) runs on {self.device}; "
                             f"each process must use cuda:<its local rank>")
        torch.distributed.init_process_group(backend="nccl" if on_gpu else "gloo", rank=process.rank,
                                             world_size=process.world_size)
        if on_gpu:
            torch.cuda.set_device(process.local_rank)

    # ---- loop ------------------------------------------------------------------------------------
    def learn(self, num_learning_iterations: int, init_at_random_ep_len: bool = False,
              time_limit_s: float | None = None) -> None:
        """rsl-rl's loop with checkpoints at the interval and at the end, a progress bar, and an
        optional wall-clock limit: training stops after the iteration that passes `time_limit_s`
        (every process of a multi-process run stops at the same iteration)."""
        if time_limit_s is not None and time_limit_s < 0:
            raise ValueError(f"time_limit_s must be >= 0, got {time_limit_s}")
        started = time.monotonic()
        if init_at_random_ep_len:
            self.env.episode_length_buf = torch.randint_like(
                self.env.episode_length_buf, high=int(self.env.max_episode_length))
        obs = self.env.get_observations().to(self.device)
        self.alg.train_mode()
        if self.is_distributed:  # every process starts from rank 0's parameters
            self.alg.broadcast_parameters()
        self.logger.init_logging_writer()
        start_it = self.current_learning_iteration
        total_it = start_it + num_learning_iterations
        saved_at = None
        checkpoint_dir = self.log_dir if self.writes_files else None
        nan_watch = NanWatch()  # rsl-rl's per-step check_nan, read once per rollout
        bar = tqdm(total=num_learning_iterations, desc="train", unit="it",
                   disable=not self.progress or self.gpu_global_rank != 0, dynamic_ncols=True, mininterval=1.0)
        try:
            for it in range(start_it, total_it):
                start = time.time()
                with torch.inference_mode():
                    for _ in range(self.cfg["num_steps_per_env"]):
                        actions = self.alg.act(obs)
                        obs, rewards, dones, extras = self.env.step(actions.to(self.env.device))
                        if self.cfg.get("check_for_nan", True):
                            nan_watch.add(obs, rewards, dones)
                        obs, rewards, dones = obs.to(self.device), rewards.to(self.device), dones.to(self.device)
                        self.alg.process_env_step(obs, rewards, dones, extras)
                        self.logger.process_env_step(rewards, dones, extras, None)
                    nan_watch.raise_if_found(f"in the rollout of iteration {it + 1}")
                    collect_time = time.time() - start
                    start = time.time()
                    self.alg.compute_returns(obs)
                loss_dict = self.alg.update()
                learn_time = time.time() - start
                self.current_learning_iteration = it + 1
                self.logger.log(it=it, start_it=start_it, total_it=total_it, collect_time=collect_time,
                                learn_time=learn_time, loss_dict=loss_dict, learning_rate=self.alg.learning_rate,
                                action_std=self.alg.get_policy().output_std, rnd_weight=None)
                if checkpoint_dir is not None and (it + 1) % self.cfg["save_interval"] == 0:
                    self.save(checkpoint_dir / checkpoint_name(it + 1))
                    saved_at = it + 1
                reward = self.logger.mean_reward()
                bar.set_postfix_str(
                    f"iter {it + 1}/{total_it}, reward {'-' if reward is None else f'{reward:.2f}'}, "
                    f"collect {collect_time:.1f}s, learn {learn_time:.1f}s", refresh=False)
                bar.update(1)
                if time_limit_s is not None and self._out_of_time(time.monotonic() - started > time_limit_s):
                    break
        finally:
            bar.close()
            # Also after an interrupt or an error: keep what the completed iterations learned.
            if checkpoint_dir is not None and saved_at != self.current_learning_iteration \
                    and self.current_learning_iteration > start_it:
                self.save(checkpoint_dir / checkpoint_name(self.current_learning_iteration))
            self.logger.close()

    def _out_of_time(self, expired: bool) -> bool:
        """Whether to stop; in a multi-process run, whether any process's clock has expired."""
        if not self.is_distributed:
            return expired
        flag = torch.tensor([float(expired)], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    # ---- checkpoints -------------------------------------------------------------------------------
    def save(self, path: str | Path, infos: dict | None = None) -> None:
        saved = self.alg.save()
        saved["iter"] = self.current_learning_iteration
        saved["infos"] = {
            "format": CHECKPOINT_FORMAT,
            "signature": self.signature,
            "config": self.run_config,
            "rng_state": torch.get_rng_state(),
            **(infos or {}),
        }
        atomic_torch_save(saved, path)
        self.last_saved = Path(path)

    def load(self, path: str | Path, load_cfg: dict | None = None, strict: bool = True,
             map_location: str | None = None) -> dict:
        path = find_checkpoint(path)
        ckpt = read_checkpoint(path, map_location=map_location or self.device)
        check_compatible(ckpt, self.alg, self.signature, self.run_config, path)
        try:
            load_iteration = self.alg.load(ckpt, load_cfg, strict)
        except (RuntimeError, ValueError, KeyError) as error:
            raise CheckpointError(f"checkpoint {path} could not be loaded: {str(error).splitlines()[0]}") from error
        if load_iteration:
            self.current_learning_iteration = int(ckpt["iter"])
        rng = ckpt["infos"].get("rng_state")
        if isinstance(rng, torch.Tensor) and (load_cfg is None or load_cfg.get("iteration")):
            torch.set_rng_state(rng.cpu())
        return ckpt["infos"]


# ---- export -----------------------------------------------------------------------------------------

def export_onnx(alg_or_actor: Any, path: str | Path, dynamo: bool = False) -> Path:
    """The deterministic policy history [B, H*F] -> (actions, mode_probs, latent) as ONNX, dynamic
    batch. deploy/export.py adds the contract as metadata and checks ONNX Runtime against torch.

    `dynamo=False` (TorchScript-based exporter): one file, 0.2 s (LEARNER.md §4)."""
    actor = alg_or_actor.get_policy() if hasattr(alg_or_actor, "get_policy") else alg_or_actor
    model = actor.as_onnx(verbose=False).to("cpu").eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = model.input_names + model.output_names
    kwargs: dict[str, Any] = {"dynamo": dynamo, "opset_version": 18, "input_names": model.input_names,
                              "output_names": model.output_names}
    if not dynamo:
        kwargs["dynamic_axes"] = {name: {0: "batch"} for name in names}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is deprecated, not gone
        torch.onnx.export(model, model.get_dummy_inputs(), str(path), **kwargs)
    return path
