"""The command implementations on the counter env: policies, overrides, sim outputs, bench maths."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from dhal.commands import bench_env, sim
from dhal.commands.env_options import parse_overrides
from dhal.commands.errors import CommandError
from dhal.commands.policies import PUSH_LEGS, PUSH_PERIOD_S, make_policy
from dhal.envs.robots.go1 import JOINT_NAMES

GO1_ACTIONS = len(JOINT_NAMES)


def test_overrides_parse_literals_and_fall_back_to_strings():
    assert parse_overrides(["sim.decimation=4", "rewards.scale_by_dt=False", "scene=go1_flat", "a.b=(1, 2)"]) == {
        "sim.decimation": 4,
        "rewards.scale_by_dt": False,
        "scene": "go1_flat",
        "a.b": (1, 2),
    }
    with pytest.raises(CommandError):
        parse_overrides(["=3"])


def test_overrides_take_lower_case_booleans_and_none():
    assert parse_overrides(["sim.compile=true", "a=FALSE", "b=none", "c=null", "d=truthy"]) == {
        "sim.compile": True, "a": False, "b": None, "c": None, "d": "truthy"}


def test_scripted_push_swings_only_the_right_legs_with_a_4_s_period(make_counter_env):
    env = make_counter_env(num_actions=GO1_ACTIONS)
    policy = make_policy("scripted", env)
    period_steps = round(PUSH_PERIOD_S / env.step_dt)
    actions = torch.stack([policy(step) for step in range(period_steps + 1)])  # [T, N, A]
    moving = {JOINT_NAMES[i] for i in range(GO1_ACTIONS) if actions[:, 0, i].abs().max() > 0}
    assert moving and all(name.split("_")[0] in PUSH_LEGS for name in moving)
    assert torch.allclose(actions[0], actions[period_steps], atol=1e-5)
    assert actions.abs().max() <= env.action_high
    assert torch.equal(actions[:, 0], actions[:, -1]), "every env gets the same motion"


def test_random_policy_is_seeded_and_within_bounds(make_counter_env):
    env = make_counter_env()
    first = make_policy("random", env, seed=3)(0)
    assert torch.equal(first, make_policy("random", env, seed=3)(0))
    assert first.min() >= env.action_low and first.max() <= env.action_high


@pytest.mark.parametrize("policy", ["zero", "random", "scripted"])
def test_sim_writes_video_plot_and_data(make_counter_env, tmp_path, policy):
    env = make_counter_env(num_envs=3, num_actions=GO1_ACTIONS)
    cfg = sim.SimConfig(policy=policy, num_envs=3, seconds=0.2, out=tmp_path, width=64, height=48)
    outputs = sim.run(cfg, env=env)

    assert env.closed
    assert outputs.steps == 10
    assert outputs.plot.stat().st_size > 0
    assert outputs.video is not None
    reader = imageio.get_reader(outputs.video)
    assert reader.get_meta_data()["fps"] == pytest.approx(1 / env.step_dt)
    assert reader.get_meta_data()["size"] == (64, 48)
    data = np.load(outputs.data)
    assert data["time"][-1] == pytest.approx(0.2)
    assert data["reward/groups/env0"].shape == (10, 2)
    assert data["metrics/actions/mean"].shape == (10, GO1_ACTIONS)
    if policy != "random":  # random actions may end env 0's episode early
        assert data["metrics/episode_step/env0"][:5, 0].tolist() == [1, 2, 3, 4, 5]


def test_sim_without_video_and_with_a_render_failure(make_counter_env, tmp_path):
    env = make_counter_env(num_actions=GO1_ACTIONS)
    assert sim.run(sim.SimConfig(seconds=0.1, out=tmp_path, video=False), env=env).video is None

    def broken_render(*args: object) -> np.ndarray:
        raise RuntimeError("no GL context")

    env = make_counter_env(num_actions=GO1_ACTIONS)
    env.render = broken_render
    with pytest.raises(CommandError, match="--no-video"):
        sim.run(sim.SimConfig(seconds=0.1, out=tmp_path / "broken"), env=env)



def test_sim_refuses_a_video_too_small_to_encode_before_running(make_counter_env, tmp_path):
    env = make_counter_env(num_actions=GO1_ACTIONS)
    with pytest.raises(CommandError, match="at least 16 pixels, got 8x480"):
        sim.run(sim.SimConfig(seconds=0.1, out=tmp_path / "tiny", width=8), env=env)
    assert not (tmp_path / "tiny").exists()
    # without a video the size does not matter
    assert sim.run(sim.SimConfig(seconds=0.1, out=tmp_path, width=8, video=False),
                   env=make_counter_env(num_actions=GO1_ACTIONS)).video is None

def test_env_throughput_counts_steps_of_all_envs(make_counter_env):
    env = make_counter_env(num_envs=8)
    rate = bench_env.measure_env_throughput(env, seconds=0.05, warmup_steps=3).env_steps_per_s
    assert rate > 0
    assert env.global_step >= 3 and rate == pytest.approx(8 * (env.global_step - 3) / 0.05, rel=0.5)


def test_env_throughput_reports_the_workloads_done_rate_and_its_warmup(make_counter_env):
    every_step = bench_env.measure_env_throughput(make_counter_env(num_envs=4, max_episode_length=1),
                                                  seconds=0.05, warmup_steps=2)
    assert every_step.steps >= bench_env.DONE_SAMPLE_EVERY and every_step.done_fraction == 1.0
    assert every_step.warmup_s > 0
    never = bench_env.measure_env_throughput(make_counter_env(num_envs=4, max_episode_length=10**9),
                                             seconds=0.05, warmup_steps=2, time_out_in_warmup=False)
    assert never.done_fraction == 0.0


@dataclass
class _Sim:
    decimation: int


@dataclass
class _Cfg:
    sim: _Sim


def test_decimation_comes_from_the_env_config():
    assert bench_env.decimation_of(_Cfg(_Sim(decimation=2))) == 2
    assert bench_env.decimation_of({"decimation": 8}) == 8
    assert bench_env.decimation_of(object()) == bench_env.DEFAULT_DECIMATION


def test_table_and_json_report_the_ratio_against_the_goal(tmp_path: Path):
    results = [
        bench_env.BenchResult(num_envs=64, env_steps_per_s=900.0, physics_steps_per_s=1000.0,
                              bare_physics_steps_per_s=4000.0, decimation=4),
        bench_env.BenchResult(num_envs=512, env_steps_per_s=500.0, physics_steps_per_s=1000.0,
                              bare_physics_steps_per_s=None, decimation=4),
    ]
    assert results[0].ratio == pytest.approx(0.9) and results[1].ratio == pytest.approx(0.5)
    table = bench_env.format_table(results)
    assert "0.90  met" in table and "0.50  missed" in table and "env/raw >= 0.80" in table

    path = tmp_path / "bench.json"
    bench_env.write_json(bench_env.BenchEnvConfig(sizes=(64, 512)), results, path)
    payload = json.loads(path.read_text())
    assert payload["goal_ratio"] == 0.8
    assert [r["bare_steps_per_s"] for r in payload["results"]] == [1000.0, None]
    assert math.isclose(payload["results"][0]["ratio"], 0.9)


def test_physics_clock_times_only_the_simulator_step(make_counter_env):
    """A fake simulator whose step sleeps: the physics rate must exclude the env's own work."""
    import time as _time

    class SleepySim:
        def step(self, *args, **kwargs):
            _time.sleep(0.002)

    env = make_counter_env(num_envs=4)
    env.sim = SleepySim()
    inner_step = env.step

    def step_with_physics(actions):
        env.sim.step()
        _time.sleep(0.002)  # the "task layer"
        return inner_step(actions)

    env.step = step_with_physics
    run = bench_env.measure_env_throughput(env, seconds=0.2, warmup_steps=1)
    assert run.physics_steps_per_s > run.env_steps_per_s
    assert 0.3 < run.env_steps_per_s / run.physics_steps_per_s < 0.7  # about half the time is physics
    assert "step" not in vars(env.sim)  # the clock was removed again


def test_physics_clock_adds_up_host_time_on_the_cpu_and_starts_over_on_reset(monkeypatch):
    ticks = iter(range(100))
    monkeypatch.setattr(bench_env.time, "perf_counter", lambda: float(next(ticks)))
    calls = []
    clock = bench_env.PhysicsClock(lambda *a, **k: calls.append((a, k)) or "done", "cpu")
    assert clock(1, x=2) == "done" and calls == [((1,), {"x": 2})]  # passes arguments and result through
    clock()
    assert clock.seconds == 2.0  # each call: one tick between its two readings
    clock.reset()
    assert clock.seconds == 0.0
    clock()
    assert clock.seconds == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_physics_clock_on_a_gpu_times_the_queued_work_not_the_launch():
    x = torch.randn(4096, 4096, device="cuda")
    clock = bench_env.PhysicsClock(lambda: [x @ x for _ in range(20)], "cuda")
    start = time.perf_counter()
    clock()
    launched = time.perf_counter() - start
    torch.cuda.synchronize()
    assert clock.seconds > 0 and len(clock._events) == 1
    assert clock.seconds > launched  # 20 large matmuls outlast queueing them
