"""One policy under one condition (a scenario, a physics setting, a command): N seeded episodes,
summarised as the numbers the suites compare. A condition that cannot run here gets its reason
as status instead of numbers, never a made-up value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from dhal.policies.evaluate import criterion_for, run_evaluation, summary
from dhal.policies.inference import LoadedPolicy
from dhal.sim2real.envs import EnvRequest, EnvUnavailable, build_env
from dhal.sim2real.physics import PhysicsSettings
from dhal.sim2real.stats import wilson_interval

OK = "ok"


@dataclass(frozen=True)
class SuiteSettings:
    """How every condition of a suite is evaluated."""

    episodes: int
    num_envs: int
    min_distance_m: float = 5.0
    progress: bool = True


def not_run(reason: str) -> dict[str, Any]:
    return {"status": reason}


def evaluate_condition(loaded: LoadedPolicy, request: EnvRequest, episodes: int, num_envs: int,
                       extra: Mapping[str, Any] | None = None, physics: PhysicsSettings | None = None,
                       min_distance_m: float = 5.0, progress: bool = True) -> dict[str, Any]:
    """{"status": "ok", success (Wilson 95%), failures, ends, distance, tracking, length} of
    `episodes` episodes, or {"status": why not} if the env cannot be built here."""
    try:
        env = build_env(loaded, request, min(num_envs, episodes), extra, physics)
    except EnvUnavailable as error:
        return not_run(f"not available: {error}")
    try:
        torch.manual_seed(request.seed)
        with torch.inference_mode():
            evaluation = run_evaluation(env, loaded.policy, loaded.actor, episodes,
                                        criterion_for(env, min_distance_m), progress=progress)
        warnings = env.sim.warning_counts()
    finally:
        env.close()
    result = summary(evaluation)
    return {
        "status": OK,
        "success": wilson_interval(result["successes"], result["episodes"]).as_dict(),
        "failures": result["failures"],
        "terminations": result["terminations"],
        "distance_m": result["distance_m"],
        "episode_length_s": result["episode_length_s"],
        "lin_vel_abs_error_mps": result["tracking"]["lin_vel_abs_error_mps"],
        "yaw_rate_abs_error_radps": result["tracking"]["yaw_rate_abs_error_radps"],
        "simulator_warnings": warnings,
        "criterion": result["success_criterion"],
    }
