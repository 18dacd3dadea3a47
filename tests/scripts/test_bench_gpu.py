"""scripts/gpu/bench_gpu.py pieces that decide what is compared (the whole script runs in
test_gpu_run.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_bench_gpu():
    spec = importlib.util.spec_from_file_location("bench_gpu_under_test", REPO / "scripts/gpu/bench_gpu.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_env_gets_the_buffers_the_raw_stepping_gets():
    pytest.importorskip("mujoco_warp")
    from dhal.envs.registry import make_env

    bench = load_bench_gpu()
    overrides = bench.env_overrides("sparse", {"njmax": 256, "nconmax": 40})
    assert overrides == {"sim.check_every": 50, "sim.njmax": 256, "sim.nconmax": 40}
    assert bench.env_overrides("env", {}) == {}
    env = make_env(num_envs=2, backend="mujoco_warp", device="cpu", overrides=overrides)
    assert (env.sim.njmax, env.sim.nconmax, env.check_every) == (256, 40, 50)
    env.close()


def test_operator_counts_tell_eager_kernels_from_compiled_graphs_and_views():
    import torch
    from torch.profiler import profile

    bench = load_bench_gpu()
    fused = torch.compile(lambda x: (x * 2.0 + 1.0).sin(), fullgraph=True)
    x = torch.randn(8)
    fused(x)  # compiled before profiling
    with profile() as prof:
        y = x.view(2, 4)  # a view: no kernel
        y.add(1.0)  # one eager kernel
        fused(x)  # one compiled graph: its work is not eager
        x.sum()  # another eager kernel
    top, eager = bench.operator_counts(prof.events())
    assert eager == 2
    assert top >= 3  # the view, add and sum at least
