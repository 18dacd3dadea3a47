#!/usr/bin/env python3
"""How many kernels a `sim.compile` env step runs, counted on the CPU: the kernels inductor
generates for each compiled function (with the FX graph cache off, so every graph is generated
here), times how often a step calls it, plus the operators that still run eagerly (from
bench_gpu's profile). CPU inductor fuses less than Triton does on a GPU, so the totals rank
versions of the code; they are not the GPU's launch count.

    python scripts/gpu/count_kernels.py             # GPU-path defaults (queued resets, check-ins every 10)
    python scripts/gpu/count_kernels.py --steps 30  # more steps per count
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts" / "gpu"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="steps counted after 25 warm-up steps")
    args = p.parse_args(argv)

    import torch
    import torch._inductor.config as inductor_config
    from torch._inductor import metrics
    from torch.profiler import profile

    from bench_gpu import VARIANTS
    from step_profile import operator_counts
    from dhal.envs import compilation
    from dhal.commands.bench_env import warm_up
    from dhal.envs.registry import make_env

    inductor_config.fx_graph_cache = False  # generate every graph in this process, so it is counted
    generated: dict[str, list[int]] = defaultdict(list)  # kernels of each compilation of a function
    latest: dict[str, int] = {}  # kernels of the graph a function ran last
    calls: Counter[str] = Counter()
    compile_ = torch.compile

    def counting_compile(fn, **kwargs):
        compiled = compile_(fn, **kwargs)
        name = fn.__name__

        def call(*a, **k):
            before = metrics.generated_kernel_count
            out = compiled(*a, **k)
            new = metrics.generated_kernel_count - before
            if new:
                generated[name].append(new)
                latest[name] = new
            calls[name] += 1
            return out

        return call

    n = args.num_envs
    with mock.patch.object(compilation.torch, "compile", counting_compile):
        env = make_env(num_envs=n, backend="mujoco_warp", device="cpu", overrides=VARIANTS["gpu_compiled"])
    actions = torch.zeros(n, env.num_actions)
    with torch.inference_mode():
        warm_up(env, lambda step: actions, 25)  # compiles every graph, through a time-out's restart
        calls.clear()
        with profile() as prof:
            for _ in range(args.steps):
                env.step(actions)
    env.close()
    _, eager = operator_counts(prof.events())
    per_step = {name: calls[name] / args.steps for name in calls}
    compiled = sum(latest.get(name, 0) * rate for name, rate in per_step.items())
    result = {
        "kernels_per_graph": dict(latest), "kernels_per_compilation": dict(generated), "calls_per_step": per_step,
        "compiled_kernels_per_step": compiled, "eager_compute_ops_per_step": eager / args.steps,
        "total_per_step": compiled + eager / args.steps,
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
