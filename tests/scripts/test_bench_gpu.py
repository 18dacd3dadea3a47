"""scripts/gpu/bench_gpu.py pieces that decide what is compared (the whole script runs in
test_gpu_run.py)."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", REPO / f"scripts/gpu/{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_bench_gpu():
    return load_script("bench_gpu")


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

    profiling = load_script("step_profile")
    fused = torch.compile(lambda x: (x * 2.0 + 1.0).sin(), fullgraph=True)
    x = torch.randn(8)
    fused(x)  # compiled before profiling
    with profile() as prof:
        y = x.view(2, 4)  # a view: no kernel
        y.add(1.0)  # one eager kernel
        fused(x)  # one compiled graph: its work is not eager
        x.sum()  # another eager kernel
    top, eager = profiling.operator_counts(prof.events())
    assert eager == 2
    assert top >= 3  # the view, add and sum at least


def test_device_gaps_merge_overlaps_and_name_what_the_device_waited_for():
    profiling = load_script("step_profile")
    intervals = [  # (start us, end us, name), two steps
        (0, 10, "physics"), (5, 12, "copy"),  # overlapping: busy 0-12
        (20, 30, "transition"),  # an 8 us gap before it
        (30, 40, "physics"),  # back to back: no gap
        (43, 50, "transition"),  # 3 us: idle, but under the 5 us threshold
        (60, 80, "transition"),  # 10 us
    ]
    gaps = profiling.device_gaps(intervals, steps=2)
    assert gaps["window_us_per_step"] == 40.0  # 0-80 over two steps
    assert gaps["idle_us_per_step"] == (8 + 3 + 10) / 2
    assert gaps["busy_fraction"] == (80 - 21) / 80
    assert gaps["gaps_over_5us_per_step"] == 1.0
    assert gaps["waited_for"] == [{"next": "transition", "gaps_per_step": 1.0, "idle_us_per_step": 9.0}]
    assert profiling.device_gaps([], steps=1) == {}


def test_device_intervals_keep_only_device_events():
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    profiling = load_script("step_profile")

    def event(name, device, start, end):
        return SimpleNamespace(name=name, device_type=device, time_range=SimpleNamespace(start=start, end=end))

    events = [event("aten::add", DeviceType.CPU, 0, 5), event("kernel", DeviceType.CUDA, 1, 4),
              event("empty", DeviceType.CUDA, 6, 6)]
    assert profiling.device_intervals(events) == [(1, 4, "kernel")]


def test_every_variant_is_described_in_the_help() -> None:
    bench = load_bench_gpu()
    assert set(bench.DESCRIPTIONS) == set(bench.VARIANTS)
    with pytest.raises(SystemExit), mock.patch("sys.stdout", new_callable=io.StringIO) as out:
        bench.parse_args(["--help"])
    squeezed = "".join(out.getvalue().split())  # argparse wraps, and breaks after hyphens
    assert all(f"{name}:{''.join(text.split())}" in squeezed for name, text in bench.DESCRIPTIONS.items())


def test_compiled_plain_leaves_out_the_cuda_inductor_options_only_while_it_is_measured():
    from dhal.envs import compilation

    bench = load_bench_gpu()
    assert bench.VARIANTS["compiled_plain"]["sim.compile"] is True
    assert bench.VARIANTS["eager"]["sim.compile"] is False
    cuda_options = dict(compilation.CUDA_INDUCTOR_OPTIONS)
    assert cuda_options
    with bench.variant_setup("compiled_plain"):
        assert compilation.CUDA_INDUCTOR_OPTIONS == {}
    with bench.variant_setup("compiled"):
        assert compilation.CUDA_INDUCTOR_OPTIONS == cuda_options
    assert compilation.CUDA_INDUCTOR_OPTIONS == cuda_options


def test_leaving_the_imu_out_of_the_update_changes_nothing_the_task_observes():
    """compiled_no_imu drops the position/velocity sensors from the update after a step; the task
    does not read them, so observations, rewards and resets are those of the full update."""
    pytest.importorskip("mujoco_warp")
    import torch

    from dhal.envs.backends import warp_programs
    from dhal.envs.registry import make_env

    bench = load_bench_gpu()
    full_observe = warp_programs.WarpPrograms._observe
    overrides = {"sim.queue_resets": True, "sim.check_every": 2}
    full = make_env(num_envs=3, seed=6, backend="mujoco_warp", device="cpu", overrides=overrides)
    with bench.variant_setup("compiled_no_imu"):
        lean = make_env(num_envs=3, seed=6, backend="mujoco_warp", device="cpu", overrides=overrides)
        assert warp_programs.WarpPrograms._observe is not full_observe
    assert warp_programs.WarpPrograms._observe is full_observe
    draws = torch.Generator().manual_seed(3)
    imu = [lean.sim.info.sensor_slices[name] for name in ("imu_gyro", "imu_linvel")]
    stale = False
    for i in range(6):
        actions = 0.5 * torch.randn(3, 12, generator=draws)
        with torch.inference_mode():
            if i == 2:
                for env in (full, lean):
                    env.episode_length_buf[1] = env.max_episode_length - 1
            a, b = full.step(actions), lean.step(actions)
        assert torch.equal(a.reward, b.reward) and torch.equal(a.truncated, b.truncated), i
        for key in a.observations:
            assert torch.equal(a.observations[key], b.observations[key]), (i, key)
        # what the update leaves out is really left out: the IMU reads differ
        fa, fb = full.sim.read().sensordata, lean.sim.read().sensordata
        stale |= any(not torch.equal(fa[:, s:s + d], fb[:, s:s + d]) for s, d in imu)
    assert stale
    full.close()
    lean.close()


def test_profiled_variants_default_to_the_measured_ones():
    bench = load_bench_gpu()
    assert bench.parse_args(["--variants", "env", "fresh"]).profile_variants == ["env", "fresh"]
    chosen = bench.parse_args(["--variants", "env", "compiled", "--profile-variants", "compiled"])
    assert chosen.profile_variants == ["compiled"]
