"""`dhal bench modes --num-seeds`: each seed is the plain benchmark of that seed; the table and spread."""

from __future__ import annotations

import json

import pytest

from dhal.policies.bench_modes import BenchModesConfig, run_modes_benchmark
from dhal.policies.bench_modes_seeds import SeedRow, report, seed_rows, spread

TINY = dict(steps=20, train_sequences=4, test_sequences=2, sequence_length=60)


def test_each_seed_is_the_plain_benchmark_of_that_seed(tmp_path) -> None:
    rows, results = seed_rows(BenchModesConfig.smoke(seed=3, num_seeds=2, out_dir=tmp_path, **TINY))
    assert [row.seed for row in rows] == [3, 4]
    single = run_modes_benchmark(BenchModesConfig.smoke(seed=4, **TINY))
    assert rows[1].error_ratio == pytest.approx(single.error_ratio, rel=1e-6)
    assert rows[1].accuracy == single.accuracy and results[1].config["seed"] == 4
    assert rows[0].error_ratio != pytest.approx(rows[1].error_ratio)  # another system
    for seed in (3, 4):
        assert (tmp_path / f"seed_{seed}" / "results.json").exists()
    saved = json.loads((tmp_path / "seeds.json").read_text())
    assert [row["seed"] for row in saved["rows"]] == [3, 4] and saved["summary"]["seeds"] == 2


def test_the_spread_counts_the_seeds_that_meet_each_goal_and_both() -> None:
    rows = [SeedRow(seed=s, accuracy=a, switch_step_accuracy=0.9, error_k1=0.3, error_k=0.3 / r, error_ratio=r,
                    bayes_error=0.05, ratio_above_bayes=0.25 / (0.3 / r - 0.05))
            for s, a, r in ((0, 0.99, 2.5), (1, 0.94, 1.5), (2, 0.96, 2.0), (3, 0.90, 3.0))]
    s = spread(rows)
    assert (s["ratio_min"], s["ratio_median"], s["ratio_max"]) == (1.5, 2.25, 3.0)
    assert s["seeds_meeting_ratio_goal"] == 3 and s["seeds_meeting_accuracy_goal"] == 2
    assert s["seeds_meeting_both_goals"] == 2  # seeds 0 and 2: seed 3 meets only the ratio goal
    assert s["accuracy_min"] == 0.90
    assert s["ratio_above_floor_median"] == pytest.approx(0.25 / (0.12 - 0.05) / 2 + 0.25 / (0.15 - 0.05) / 2)


def test_one_seed_reports_the_full_summary_and_several_a_table() -> None:
    assert "switch steps" in report(BenchModesConfig.smoke(**TINY))
    table = report(BenchModesConfig.smoke(num_seeds=2, **TINY))
    assert table.splitlines()[0].startswith("seed  accuracy") and "of 2 seeds" in table
    assert "ratio above floor" in table.splitlines()[0]


def test_the_table_shows_the_supervised_reference_when_it_was_run() -> None:
    table = report(BenchModesConfig.smoke(num_seeds=2, supervised_reference=True, **TINY))
    assert "ratio given the true mode" in table.splitlines()[0]
    assert "ratio given the true mode" not in report(BenchModesConfig.smoke(num_seeds=2, **TINY))


def test_zero_seeds_is_refused() -> None:
    with pytest.raises(ValueError, match="num_seeds must be >= 1, got 0"):
        seed_rows(BenchModesConfig.smoke(num_seeds=0, **TINY))


def test_seeds_in_parallel_processes_give_the_results_of_one_at_a_time(tmp_path) -> None:
    one_at_a_time, _ = seed_rows(BenchModesConfig.smoke(seed=5, num_seeds=3, **TINY))
    parallel, results = seed_rows(BenchModesConfig.smoke(seed=5, num_seeds=3, jobs=2, out_dir=tmp_path, **TINY))
    assert repr(parallel) == repr(one_at_a_time)  # same order, bit for bit (repr: nan equals nan)
    assert [result.config["seed"] for result in results] == [5, 6, 7]
    assert all((tmp_path / f"seed_{seed}" / "results.json").exists() for seed in (5, 6, 7))


def test_zero_jobs_is_refused() -> None:
    with pytest.raises(ValueError, match="jobs must be >= 1, got 0"):
        seed_rows(BenchModesConfig.smoke(num_seeds=2, jobs=0, **TINY))
