"""DeadModeWatch, and the benchmark's restart of a K-mode run whose expert dies."""

from __future__ import annotations

import functools

import pytest
import torch

from dhal.policies import bench_modes
from dhal.policies.bench_modes import MAX_RESTARTS, RESTART_SEED_STRIDE, BenchModesConfig, run_modes_benchmark
from dhal.policies.dead_modes import DeadModeConfig, DeadModeWatch

torch.set_num_threads(1)


def shares(*values: float) -> dict[str, torch.Tensor]:
    return {f"argmax_share_mode_{k}": torch.tensor(v) for k, v in enumerate(values)}


def test_the_watch_reports_a_dead_expert_only_inside_its_steps() -> None:
    watch = DeadModeWatch(3, DeadModeConfig(window=10, start=20, stop_fraction=0.5, dead_share=0.25), total_steps=100)
    dead = shares(0.05, 0.35, 0.60)  # 0.05 < 0.25 / 3
    assert all(watch.after_step(step, dead) is None for step in range(10))  # before `start`
    assert all(watch.after_step(step, shares(0.3, 0.3, 0.4)) is None for step in range(10, 20))  # all alive
    noticed = [watch.after_step(step, dead) for step in range(20, 30)]
    assert noticed[:-1] == [None] * 9  # only at the end of a window
    last = noticed[-1]
    assert last is not None and (last.step, last.mode) == (30, 0)
    assert last.share == pytest.approx(0.05) and last.busiest_share == pytest.approx(0.60)
    assert all(watch.after_step(step, dead) is None for step in range(50, 70))  # past stop_fraction * total_steps


def test_the_watch_averages_over_its_window() -> None:
    watch = DeadModeWatch(2, DeadModeConfig(window=4, start=0, dead_share=0.5), total_steps=100)
    # the expert is below 0.5 / 2 on two steps of four, but not on average
    for step, share in enumerate((0.1, 0.1, 0.4, 0.5)):
        assert watch.after_step(step, shares(share, 1 - share)) is None


def test_a_single_mode_is_never_dead() -> None:
    watch = DeadModeWatch(1, DeadModeConfig(window=1, start=0), total_steps=10)
    assert all(watch.after_step(step, shares(0.0)) is None for step in range(5))


@pytest.mark.parametrize("option, message", [
    (dict(window=0), "window >= 1"), (dict(dead_share=1.0), "dead_share"), (dict(stop_fraction=1.5), "stop_fraction"),
])
def test_bad_watch_settings_are_refused(option, message) -> None:
    with pytest.raises(ValueError, match=message):
        DeadModeConfig(**option)


def test_a_restart_is_a_fresh_run_from_the_next_seed_on_the_same_data(monkeypatch) -> None:
    """A watch that always finds a dead expert restarts every attempt but the last; the model kept is
    the last attempt's, exactly as if it had been trained alone from that seed. K=1 is never restarted."""
    monkeypatch.setattr(bench_modes, "DeadModeConfig", functools.partial(DeadModeConfig, window=10, start=0,
                                                                         dead_share=0.99))
    cfg = BenchModesConfig.smoke(steps=60, restart_dead_modes=False)
    restarted = run_modes_benchmark(BenchModesConfig.smoke(steps=60, restart_dead_modes=True))
    assert [dead.step for dead in restarted.runs[3].restarts] == [10] * MAX_RESTARTS
    assert restarted.runs[1].restarts == [] and restarted.config["restart_dead_modes"]

    data_gen = torch.Generator().manual_seed(cfg.seed)
    system = bench_modes.make_system(cfg, data_gen)
    train = bench_modes.make_dataset(cfg, system, cfg.train_sequences, data_gen)
    test = bench_modes.make_dataset(cfg, system, cfg.test_sequences, data_gen)
    mean, std = train.histories.mean(0), train.histories.std(0).clamp_min(1e-3)
    last_seed = cfg.seed * 1000 + 17 * 3 + MAX_RESTARTS * RESTART_SEED_STRIDE
    _, alone, _, _ = bench_modes.train_one(cfg, 3, train, test, mean, std, seed=last_seed)
    assert alone.restarts == []
    assert restarted.runs[3].state_error == alone.state_error
    assert restarted.runs[3].loss_curve == alone.loss_curve


def test_without_a_dead_expert_the_restart_option_changes_nothing(monkeypatch) -> None:
    monkeypatch.setattr(bench_modes, "DeadModeConfig", functools.partial(DeadModeConfig, window=10, start=0,
                                                                         dead_share=1e-6))
    plain = run_modes_benchmark(BenchModesConfig.smoke(steps=60, restart_dead_modes=False))
    watched = run_modes_benchmark(BenchModesConfig.smoke(steps=60, restart_dead_modes=True))
    assert watched.runs[3].restarts == []
    assert watched.runs[3].loss_curve == plain.runs[3].loss_curve and watched.error_ratio == plain.error_ratio
