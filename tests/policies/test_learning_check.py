"""The learning check: fair episode lengths, the verdict logic, and a command that really fails."""

from __future__ import annotations

import json

import pytest
import torch

from dhal.envs.registry import make_env
from dhal.policies.learning_check import RolloutStats, judge, random_actions, rollout_stats
from tests.cli import run_dhal

torch.set_num_threads(1)


def stats(length: float, glide: float, push: float) -> RolloutStats:
    return RolloutStats(steps=100, num_envs=4, episodes=3, mean_episode_length=length,
                        reward_per_step={"glide": glide, "push": push, "sim2real": 0.0})


def test_verdict_needs_every_margin():
    random = stats(50.0, 0.010, 0.008)  # returns per episode: glide 0.5, push 0.4
    assert judge(stats(150.0, 0.010, 0.008), random, 2.0, 2.0).passed  # 3x the returns by lasting 3x
    verdict = judge(stats(150.0, 0.010, 0.002), random, 2.0, 2.0)  # push return 0.3 < 2 x 0.4
    assert not verdict.passed and [c.passed for c in verdict.criteria] == [True, True, False]
    assert verdict.criteria[2].trained == pytest.approx(0.3)
    assert "FAIL" in verdict.table() and verdict.to_dict()["passed"] is False
    assert "reward per step" in verdict.table()  # reported, not judged
    with pytest.raises(KeyError, match="'jump'"):
        judge(stats(1, 1, 1), random, 2.0, 1.2, reward_groups=("jump",))


def test_episodes_still_running_count_at_their_length():
    env = make_env(num_envs=4, seed=0, overrides={"sim.episode_length_s": 0.4})  # 20 steps
    result = rollout_stats(env, random_actions(env, torch.Generator().manual_seed(0)), 30)
    env.close()
    # every env finishes one episode of at most 20 steps, then runs on for the rest
    assert result.episodes >= 4 and result.mean_episode_length <= 20.0
    assert set(result.reward_per_step) == {"glide", "push", "sim2real"}
    env = make_env(num_envs=2, seed=0)
    holding = rollout_stats(env, lambda obs: torch.zeros(2, 12), 30)  # the push pose, 0.6 s: nobody falls
    env.close()
    assert holding.episodes == 0 and holding.mean_episode_length == 30.0


def test_one_smoke_iteration_fails_the_check(tmp_path):
    run = tmp_path / "run"
    result = run_dhal("bench", "learning", "--preset", "smoke", "--iterations", "1", "--num-envs", "2",
                      "--run-dir", str(run), "--eval-envs", "4", "--eval-steps", "30", "--no-progress",
                      "--min-length-ratio", "100")
    assert result.code == 2 and "learning check FAILED" in result.err
    report = json.loads((run / "learning_check.json").read_text())
    assert report["passed"] is False and report["criteria"][0]["passed"] is False
    assert (run / "learning_check.png").stat().st_size > 0
