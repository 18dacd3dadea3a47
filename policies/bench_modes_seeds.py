"""`dhal bench modes --num-seeds N`: the benchmark over several seeds, each its own system, and the spread.

One seed can mislead: on the clocked system the error ratio of the same settings is 2.49, 1.51 and
2.44 for seeds 0-2 on one machine, and seed 0 gives 1.35 on another, because training is chaotic at
float level (docs/results/bench_modes.md, "Twelve seeds"). With an out_dir, each seed writes its
results.json and plot under seed_<s>/ and the table goes to seeds.json. `--jobs N` runs N seeds at
once, each in its own process (16 seeds of the clocked system take 4 minutes on 16 cores).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from dhal.policies.bench_modes import BenchModesConfig, run_modes_benchmark
from dhal.policies.bench_modes_results import GOAL_ACCURACY, GOAL_ERROR_RATIO, BenchModesResult


@dataclass
class SeedRow:
    seed: int
    accuracy: float
    switch_step_accuracy: float
    error_k1: float
    error_k: float
    error_ratio: float
    bayes_error: float  # the best predictor from the history, a floor every K shares
    ratio_above_bayes: float  # (K=1 error - bayes_error) / (K error - bayes_error)
    ratio_true_modes: float = float("nan")  # supervised_reference: K=1 over the label-trained experts, true mode
    restarts: int = 0  # restart_dead_modes: K's training runs stopped for a dead expert


def runs_in_parallel(cfg: BenchModesConfig) -> bool:
    return cfg.jobs > 1 and cfg.num_seeds > 1


def seed_configs(cfg: BenchModesConfig) -> list[BenchModesConfig]:
    """One plain one-seed benchmark per seed; with several, each writes under out_dir/seed_<s>/. Run in
    parallel, the seeds keep their own bars quiet (run_seeds shows one over them)."""
    def out_dir(seed: int) -> Path | None:
        return cfg.out_dir if cfg.num_seeds == 1 or cfg.out_dir is None else Path(cfg.out_dir) / f"seed_{seed}"
    quiet = runs_in_parallel(cfg)
    return [replace(cfg, seed=seed, num_seeds=1, jobs=1, out_dir=out_dir(seed), progress=cfg.progress and not quiet)
            for seed in range(cfg.seed, cfg.seed + cfg.num_seeds)]


def run_seeds(cfg: BenchModesConfig) -> list[BenchModesResult]:
    """The results in seed order. With jobs > 1, in that many fresh processes (spawned, so no worker
    inherits this process's torch threads or RNG state) and one bar over the seeds instead of each
    seed's own."""
    configs = seed_configs(cfg)
    if not runs_in_parallel(cfg):
        return [run_modes_benchmark(one) for one in configs]
    results: dict[int, BenchModesResult] = {}
    with ProcessPoolExecutor(max_workers=min(cfg.jobs, len(configs)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_modes_benchmark, one): one.seed for one in configs}
        for future in tqdm(as_completed(futures), total=len(futures), desc=f"{len(configs)} seeds, {cfg.jobs} at once",
                           unit="seed", disable=not cfg.progress, dynamic_ncols=True):
            results[futures[future]] = future.result()
    return [results[one.seed] for one in configs]


def seed_rows(cfg: BenchModesConfig) -> tuple[list[SeedRow], list[BenchModesResult]]:
    """Run the benchmark for each seed; one-seed runs are the plain benchmark (same out_dir layout)."""
    cfg.validate()
    results = run_seeds(cfg)
    k = cfg.num_modes
    rows = [SeedRow(seed=result.config["seed"], accuracy=result.accuracy,
                    switch_step_accuracy=result.switch_step_accuracy,
                    error_k1=result.runs[1].state_error if 1 in result.runs else float("nan"),
                    error_k=result.runs[k].state_error, error_ratio=result.error_ratio,
                    bayes_error=result.bayes_error, ratio_above_bayes=result.error_ratio_above_bayes,
                    ratio_true_modes=(result.supervised_reference.ratio_true_modes
                                      if result.supervised_reference is not None else float("nan")),
                    restarts=len(result.runs[k].restarts))
                for result in results]
    if cfg.num_seeds > 1 and cfg.out_dir is not None:
        Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out_dir) / "seeds.json").write_text(json.dumps(
            {"rows": [row.__dict__ for row in rows], "summary": spread(rows)}, indent=1))
    return rows, results


def spread(rows: list[SeedRow]) -> dict[str, float | int]:
    ratios = [row.error_ratio for row in rows]
    ratio_met = [ratio >= GOAL_ERROR_RATIO for ratio in ratios]
    accuracy_met = [row.accuracy >= GOAL_ACCURACY for row in rows]
    return {
        "seeds": len(rows),
        "ratio_min": min(ratios), "ratio_median": statistics.median(ratios), "ratio_max": max(ratios),
        "ratio_above_floor_min": min(row.ratio_above_bayes for row in rows),
        "ratio_above_floor_median": statistics.median(row.ratio_above_bayes for row in rows),
        "accuracy_min": min(row.accuracy for row in rows),
        "seeds_meeting_ratio_goal": sum(ratio_met),
        "seeds_meeting_accuracy_goal": sum(accuracy_met),
        # the goals are per system: a seed counts only if it meets both
        "seeds_meeting_both_goals": sum(r and a for r, a in zip(ratio_met, accuracy_met)),
        "seeds_restarted": sum(row.restarts > 0 for row in rows),
    }


def seeds_table(rows: list[SeedRow], num_modes: int) -> str:
    k = num_modes
    reference = any(not math.isnan(row.ratio_true_modes) for row in rows)
    restarts = any(row.restarts > 0 for row in rows)
    lines = [f"seed  accuracy  switch-step acc  K=1 error  K={k} error  ratio  floor error  ratio above floor"
             + ("  ratio given the true mode (supervised)" if reference else "") + ("  restarts" if restarts else ""),
             *(f"{row.seed:>4}  {row.accuracy:>8.3f}  {row.switch_step_accuracy:>15.2f}  {row.error_k1:>9.4f}  "
               f"{row.error_k:>9.4f}  {row.error_ratio:>5.2f}  {row.bayes_error:>11.4f}  {row.ratio_above_bayes:>17.2f}"
               + (f"  {row.ratio_true_modes:>5.2f}" if reference else "") + (f"  {row.restarts:>8}" if restarts else "")
               for row in rows)]
    s = spread(rows)
    lines.append(f"ratio min / median / max: {s['ratio_min']:.2f} / {s['ratio_median']:.2f} / {s['ratio_max']:.2f}; "
                 f"goal >= {GOAL_ERROR_RATIO} met on {s['seeds_meeting_ratio_goal']} of {s['seeds']} seeds, "
                 f"accuracy >= {GOAL_ACCURACY} on {s['seeds_meeting_accuracy_goal']} of {s['seeds']}, "
                 f"both on {s['seeds_meeting_both_goals']} of {s['seeds']}")
    lines.append(f"floor: the error of the best predictor from the history (noise and unforeseeable jumps); "
                 f"ratio above it min / median: {s['ratio_above_floor_min']:.2f} / {s['ratio_above_floor_median']:.2f}")
    return "\n".join(lines)


def report(cfg: BenchModesConfig) -> str:
    """What `dhal bench modes` prints: the full summary for one seed, a table over several."""
    rows, results = seed_rows(cfg)
    if cfg.num_seeds == 1:
        return results[0].summary()
    return seeds_table(rows, cfg.num_modes)
