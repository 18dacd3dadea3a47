#!/usr/bin/env python3
"""What a policy that knows nothing scores: uniform random actions in the task's action range.

The yardstick for the CPU learning check in BENCHMARKS.md: mean length of completed episodes
and mean per-step reward of each group, as `dhal train` logs them (Train/mean_episode_length,
Reward/<group>_per_step).

    python scripts/random_policy_baseline.py --num-envs 128 --steps 2400
"""

from __future__ import annotations

import argparse

import torch

from dhal.envs.registry import make_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = make_env(num_envs=args.num_envs, seed=args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    group_sums = torch.zeros(len(env.reward_group_names))
    lengths: list[float] = []
    with torch.inference_mode():
        for _ in range(args.steps):
            actions = env.action_low + (env.action_high - env.action_low) * torch.rand(
                env.num_envs, env.num_actions, generator=generator)
            before = env.episode_length_buf.clone()
            out = env.step(actions)
            group_sums += out.extras["reward_groups"].sum(0)
            done = out.terminated | out.truncated
            lengths += (before[done] + 1).float().tolist()
    per_step = group_sums / (args.steps * args.num_envs)
    print(f"random policy, {args.num_envs} envs x {args.steps} steps: {len(lengths)} episodes, "
          f"mean length {sum(lengths) / max(1, len(lengths)):.1f} steps")
    for name, value in zip(env.reward_group_names, per_step.tolist()):
        print(f"  {name} reward per step: {value:.5f}")


if __name__ == "__main__":
    main()
