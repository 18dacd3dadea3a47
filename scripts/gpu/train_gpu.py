#!/usr/bin/env python3
"""Time `paper`-preset DHAL training iterations on the MuJoCo Warp backend, then keep training
until a wall-clock budget is spent, and bring back the actor, the TensorBoard events and a JSON
of per-iteration timings and rewards.

An iteration is 4096 envs x 24 steps (98,304 transitions) of rollout plus 5 epochs x 4
minibatches of the multi-critic PPO + dynamics-model update. Runs from the checkout without an
install (the repo root goes on sys.path):

    python scripts/gpu/train_gpu.py --budget 150                                    # GPU
    python scripts/gpu/train_gpu.py --device cpu --num-envs 4 --preset smoke --budget 20   # test
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--backend", default="mujoco_warp")
    p.add_argument("--preset", default="paper")
    p.add_argument("--num-envs", type=int, default=None, help="default: the preset's")
    p.add_argument("--budget", type=float, default=150.0, help="seconds of training after construction")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_out")))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from dhal.envs.adapters.rsl_rl import RslRlVecEnv
    from dhal.envs.registry import make_env
    from dhal.policies import presets
    from dhal.policies.training import DHALRunner

    args.out.mkdir(parents=True, exist_ok=True)
    train_cfg = presets.preset(args.preset)
    if args.num_envs is not None:
        train_cfg = dataclasses.replace(train_cfg, num_envs=args.num_envs)
    t0 = time.perf_counter()
    env = make_env(num_envs=train_cfg.num_envs, backend=args.backend, device=args.device, seed=0)
    run_dir = Path(tempfile.mkdtemp(prefix="dhal_gpu_run_"))
    rsl_cfg = presets.rsl_rl_config(train_cfg, run_name="gpu")
    rsl_cfg["save_interval"] = 10**9  # only the final checkpoint
    runner = DHALRunner(RslRlVecEnv(env), rsl_cfg, log_dir=run_dir, device=args.device, progress=False,
                        run_config={"train": presets.to_dict(train_cfg)})
    construct_s = time.perf_counter() - t0
    print(f"env + learner built in {construct_s:.1f}s ({train_cfg.num_envs} envs)", flush=True)

    def synchronize() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def timed_learn(n: int, first: bool = False) -> float:
        synchronize()
        t = time.perf_counter()
        runner.learn(n, init_at_random_ep_len=first)
        synchronize()
        return time.perf_counter() - t

    # One iteration to warm up (kernel compiles, allocator), one to time a steady iteration, then
    # as many as the budget allows in one call, so TensorBoard gets one continuous run.
    iterations: list[dict] = []
    start = time.perf_counter()
    for first in (True, False):
        seconds = timed_learn(1, first)
        iterations.append({"iterations": 1, "seconds": seconds, "mean_reward": runner.logger.mean_reward()})
        print(f"iteration {runner.current_learning_iteration}: {seconds:.2f}s", flush=True)
    steady_s = iterations[-1]["seconds"]
    remaining = args.budget - (time.perf_counter() - start)
    bulk = int(remaining // steady_s)
    if bulk > 0:
        seconds = timed_learn(bulk)
        iterations.append({"iterations": bulk, "seconds": seconds, "mean_reward": runner.logger.mean_reward()})
        print(f"{bulk} more iterations: {seconds / bulk:.2f}s each", flush=True)
    per_iteration = [it["seconds"] / it["iterations"] for it in iterations[1:]]
    result = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "backend": args.backend,
        "preset": args.preset,
        "num_envs": train_cfg.num_envs,
        "steps_per_env": train_cfg.num_steps_per_env,
        "transitions_per_iteration": train_cfg.num_envs * train_cfg.num_steps_per_env,
        "construct_seconds": construct_s,
        "first_iteration_seconds": iterations[0]["seconds"],
        "steady_iteration_seconds": min(per_iteration),
        "total_iterations": runner.current_learning_iteration,
        "iterations": iterations,
    }
    (args.out / "train_gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    torch.save(runner.alg.get_policy().state_dict(), args.out / "actor.pt")
    events = sorted(run_dir.rglob("events.out.tfevents.*"), key=lambda p: p.stat().st_size)
    if events:  # the longest continuous run
        shutil.copy(events[-1], args.out / "tensorboard.tfevents")
    print(json.dumps({k: v for k, v in result.items() if k != "iterations"}, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
