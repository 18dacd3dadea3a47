"""`dhal eval`: N complete episodes of a trained policy, deterministic, summarised in JSON and plots.

    dhal eval runs/<run> --episodes 64 --num-envs 16 --seed 0
    dhal eval runs/<run>/model_300.pt --episodes 32 --command-vx 1.0
    dhal eval runs/<run> --suite hardware-table --compare runs/<ablation>   (see eval_suites.py)

Writes eval.json (success rate and its definition, distances, tracking errors, terminations by
reason, episode lengths, mode occupancy / switch rate / dwell time / mode-contact NMI, and every
episode), eval_timeline.png (modes against the free feet's contacts for one episode: the first success,
else the longest) and
eval_distances.png (histogram of the board's distance per episode). The same checkpoint, seed,
--episodes and --num-envs give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dhal.commands.errors import CommandError
from dhal.commands.eval_suites import SuiteOptions, SuiteOutputs, run_suite
from dhal.commands.eval_suites import report as suite_report
from dhal.commands.play import CheckpointOptions, command_text, env_overrides, open_checkpoint

JSON_NAME = "eval.json"
TIMELINE_NAME = "eval_timeline.png"
HISTOGRAM_NAME = "eval_distances.png"


@dataclass
class EvalConfig(SuiteOptions, CheckpointOptions):
    """Evaluate a trained policy over N episodes: success rate, distance, tracking, falls, modes."""

    episodes: int = 32
    """Complete episodes to evaluate (env i runs episodes i, i + M, ...: short ones are not favoured); per scenario, setting or command in a suite."""
    num_envs: int = 16
    """Parallel envs M (at most --episodes are used)."""
    min_distance: float = 5.0
    """Board path length (m) an episode must exceed to count as a success."""
    out: Path = Path("outputs/eval")
    """Folder for eval.json and the plots."""
    plots: bool = True
    """Write the timeline and histogram plots (--no-plots to skip)."""


@dataclass(frozen=True)
class EvalOutputs:
    json: Path
    plots: tuple[Path, ...]
    results: dict[str, Any]
    steps: int
    seconds: float


def run(cfg: EvalConfig) -> EvalOutputs | SuiteOutputs:
    import torch

    from dhal.policies.evaluate import criterion_for, run_evaluation, summary
    from dhal.policies.evaluate_plots import plot_distance_histogram, plot_episode_timeline, representative_episode
    from dhal.policies.training import atomic_write_json

    if cfg.episodes < 1 or cfg.num_envs < 1:
        raise CommandError("--episodes and --num-envs must be >= 1")
    if cfg.min_distance < 0:
        raise CommandError("--min-distance must be >= 0")
    if cfg.suite is not None:
        return run_suite(cfg)
    if cfg.compare:
        raise CommandError("--compare needs a --suite (hardware-table, sim2sim or command-sweep)")
    num_envs = min(cfg.num_envs, cfg.episodes)
    torch.manual_seed(cfg.seed)
    loaded, env = open_checkpoint(cfg, num_envs)
    try:
        with torch.inference_mode():
            evaluation = run_evaluation(env, loaded.policy, loaded.actor, cfg.episodes,
                                        criterion_for(env, cfg.min_distance), progress=cfg.progress)
        results = {
            "checkpoint": str(loaded.checkpoint),
            "iteration": loaded.iteration,
            "task": cfg.task,
            "seed": cfg.seed,
            "num_envs": num_envs,
            "commands": command_text(cfg),
            "env_overrides": env_overrides(cfg, loaded),  # the run's, then --override, then the command's
            "control_dt_s": env.step_dt,
            "max_episode_length_s": env.max_episode_length * env.step_dt,
            **summary(evaluation),
        }
        cfg.out.mkdir(parents=True, exist_ok=True)
        path = cfg.out / JSON_NAME
        atomic_write_json(results, path)
        plots: tuple[Path, ...] = ()
        if cfg.plots:
            title = f"{loaded.checkpoint} (iteration {loaded.iteration}), {cfg.task}, {command_text(cfg)}"
            plot_episode_timeline(evaluation, representative_episode(evaluation), cfg.out / TIMELINE_NAME, title)
            plot_distance_histogram(evaluation, cfg.out / HISTOGRAM_NAME, title)
            plots = (cfg.out / TIMELINE_NAME, cfg.out / HISTOGRAM_NAME)
        return EvalOutputs(json=path, plots=plots, results=results, steps=evaluation.steps,
                           seconds=evaluation.seconds)
    finally:
        env.close()


def report(outputs: EvalOutputs | SuiteOutputs) -> str:
    if isinstance(outputs, SuiteOutputs):
        return suite_report(outputs)
    r = outputs.results
    modes = r["modes"]
    failures = ", ".join(f"{k} {v}" for k, v in r["failures"].items() if v) or "none"
    ends = ", ".join(f"{k} {v}" for k, v in r["terminations"].items())
    lines = [
        f"evaluated {r['checkpoint']} (iteration {r['iteration']}): {r['episodes']} episodes on {r['num_envs']} envs, "
        f"seed {r['seed']}, {r['commands']} ({outputs.steps} steps in {outputs.seconds:.1f} s)",
        f"success rate:   {r['success_rate']:.3f} ({r['successes']}/{r['episodes']}); failures: {failures}",
        f"distance:       {r['distance_m']['mean']:.2f} m mean (min {r['distance_m']['min']:.2f}, "
        f"max {r['distance_m']['max']:.2f})",
        f"episode length: {r['episode_length_s']['mean']:.2f} s mean; ends: {ends}",
        f"tracking:       |v_cmd - v_board| {r['tracking']['lin_vel_abs_error_mps']:.3f} m/s, "
        f"|yaw_cmd - yaw rate| {r['tracking']['yaw_rate_abs_error_radps']:.3f} rad/s",
        "modes:          occupancy " + " ".join(f"{x:.2f}" for x in modes["occupancy"])
        + f", {modes['switch_rate_per_s']:.2f} switches/s, mean dwell {modes['mean_dwell_s']:.2f} s, "
        f"mode/contact NMI {modes['contact_nmi']:.3f}",
        f"results: {outputs.json}",
    ]
    lines += [f"plot:    {p}" for p in outputs.plots]
    return "\n".join(lines)
