"""Cost of one DHALPPO update on a synthetic rollout of the right shapes (no simulator).

    python -m dhal.policies.bench_update --preset paper          # 4096 x 24, 5 x 4 (LEARNER.md §7)
    from dhal.policies.bench_update import bench_update; bench_update("cpu")

`fill_synthetic_rollout` is also what the unit tests use to drive the algorithm without an env.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict

from dhal.policies import presets
from dhal.policies.ppo import DHALPPO, EnvSpec, build_algorithm

# DHAL's observation sizes (DHAL.md §2): 20 x 48 history, 1630-d privileged critic input.
DHAL_OBS_SIZES = {"history": 960, "proprio": 48, "privileged": 1630}
DHAL_GROUPS = ("glide", "push", "sim2real")


def synthetic_spec(num_envs: int, obs_sizes: dict[str, int] | None = None, num_actions: int = 12) -> EnvSpec:
    sizes = dict(obs_sizes or DHAL_OBS_SIZES)
    return EnvSpec(
        num_envs=num_envs, num_actions=num_actions, obs_sizes=sizes, action_low=-3.0, action_high=3.0,
        reward_group_names=DHAL_GROUPS, history_length=sizes["history"] // sizes["proprio"],
        frame_size=sizes["proprio"], state_dim=33, contact_dim=3,
    )


def random_observations(spec: EnvSpec, generator: torch.Generator, device: str = "cpu") -> TensorDict:
    obs = {k: torch.randn(spec.num_envs, d, generator=generator).to(device) for k, d in spec.obs_sizes.items()}
    obs["proprio"] = obs["history"][:, -spec.frame_size:].clone()
    return TensorDict(obs, batch_size=[spec.num_envs], device=device)


def random_extras(spec: EnvSpec, generator: torch.Generator, device: str = "cpu",
                  done_prob: float = 0.02, timeout_prob: float = 0.01) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    n, g = spec.num_envs, len(spec.reward_group_names)
    groups = torch.rand(n, g, generator=generator).to(device)
    time_outs = (torch.rand(n, generator=generator) < timeout_prob).to(device)
    dones = time_outs | (torch.rand(n, generator=generator) < done_prob).to(device)
    extras = {
        "time_outs": time_outs,
        "reward_groups": groups,
        "reward_group_names": spec.reward_group_names,
        "dynamics_targets": {
            "next_state": torch.randn(n, spec.state_dim, generator=generator).to(device),
            "next_contacts": (torch.rand(n, spec.contact_dim, generator=generator) < 0.5).float().to(device),
        },
    }
    return groups.sum(-1), dones, extras


def fill_synthetic_rollout(alg: DHALPPO, spec: EnvSpec, seed: int = 0, device: str = "cpu",
                           done_prob: float = 0.02, timeout_prob: float = 0.01) -> TensorDict:
    """Run act/process_env_step for one rollout on random data, then compute_returns."""
    generator = torch.Generator().manual_seed(seed)
    obs = random_observations(spec, generator, device)
    with torch.inference_mode():
        for _ in range(alg.storage.num_transitions_per_env):
            alg.act(obs)
            rewards, dones, extras = random_extras(spec, generator, device, done_prob, timeout_prob)
            obs = random_observations(spec, generator, device)
            alg.process_env_step(obs, rewards, dones, extras)
        alg.compute_returns(obs)
    return obs


def synthetic_algorithm(
    preset: str = "smoke", num_envs: int | None = None, overrides: dict[str, Any] | None = None,
    seed: int = 0, device: str = "cpu",
) -> tuple[DHALPPO, EnvSpec]:
    """A DHALPPO at a preset's sizes (with train-config overrides) on DHAL's observation shapes."""
    cfg = presets.preset(preset)
    if num_envs is not None:
        cfg = dataclasses.replace(cfg, num_envs=num_envs)
    if overrides:
        from dhal.envs.overrides import apply_overrides
        cfg = apply_overrides(cfg, overrides)
    torch.manual_seed(seed)
    spec = synthetic_spec(cfg.num_envs)
    with contextlib.redirect_stdout(io.StringIO()):  # rsl-rl prints the resolved observation sets
        alg = build_algorithm(spec, presets.rsl_rl_config(cfg), device)
    alg.train_mode()
    return alg, spec


@dataclass(frozen=True)
class UpdateBenchResult:
    preset: str
    num_envs: int
    num_steps_per_env: int
    num_learning_epochs: int
    num_mini_batches: int
    critic_mode: str
    torch_threads: int
    rollout_inference_s: float  # act + process_env_step + compute_returns, no simulator
    update_s: float  # the fastest of `repeats` updates
    device: str
    repeats: int = 1
    first_update_s: float = 0.0  # includes one-off costs (CUDA/cuDNN initialisation, allocator growth)
    peak_memory_gib: float = 0.0  # CUDA only

    @property
    def samples(self) -> int:
        return self.num_envs * self.num_steps_per_env

    def summary(self) -> str:
        minibatch = self.samples // self.num_mini_batches
        per_step = self.update_s / (self.num_learning_epochs * self.num_mini_batches)
        return (
            f"preset {self.preset}: {self.num_envs} envs x {self.num_steps_per_env} steps = {self.samples} samples, "
            f"{self.num_learning_epochs} epochs x {self.num_mini_batches} minibatches of {minibatch}, "
            f"critics {self.critic_mode}, {self.torch_threads} torch thread(s) on {self.device}\n"
            f"  rollout inference {self.rollout_inference_s:.2f} s, update {self.update_s:.2f} s "
            f"({per_step:.3f} s per minibatch step)"
            + (f"; best of {self.repeats}, first {self.first_update_s:.2f} s" if self.repeats > 1 else "")
            + (f"; peak GPU memory {self.peak_memory_gib:.1f} GiB" if self.peak_memory_gib else "")
        )


def bench_update(
    preset: str = "paper",
    num_envs: int | None = None,
    threads: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    repeats: int = 1,
) -> UpdateBenchResult:
    """Time one rollout's worth of inference and `update()` at the preset's sizes; with repeats > 1
    the rollout/update pair runs again and the fastest is reported (the first one too)."""
    cfg = presets.preset(preset)
    threads = threads if threads is not None else cfg.torch_threads
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        alg, spec = synthetic_algorithm(preset, num_envs, overrides, seed, device)
        cuda = device.startswith("cuda")
        rollouts, updates = [], []
        for repeat in range(max(repeats, 1)):
            start = time.perf_counter()
            fill_synthetic_rollout(alg, spec, seed + repeat, device)
            if cuda:
                torch.cuda.synchronize()
            rollouts.append(time.perf_counter() - start)
            start = time.perf_counter()
            alg.update()
            if cuda:
                torch.cuda.synchronize()
            updates.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
        return UpdateBenchResult(
            preset=preset, num_envs=spec.num_envs, num_steps_per_env=alg.storage.num_transitions_per_env,
            num_learning_epochs=alg.num_learning_epochs, num_mini_batches=alg.num_mini_batches,
            critic_mode=alg.critic_mode, torch_threads=torch.get_num_threads(),
            rollout_inference_s=min(rollouts), update_s=min(updates), device=device,
            repeats=max(repeats, 1), first_update_s=updates[0], peak_memory_gib=peak,
        )
    finally:
        torch.set_num_threads(previous_threads)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=sorted(presets.PRESETS))
    parser.add_argument("--num-envs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--critic-mode", default=None, choices=["multi", "single", "single_transferred"])
    args = parser.parse_args(argv)
    overrides = {"critic.mode": args.critic_mode} if args.critic_mode else None
    result = bench_update(args.preset, args.num_envs, args.threads, args.device, overrides=overrides,
                          repeats=args.repeats)
    print(result.summary())
    print(f"  machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
