"""Evaluation pieces: the success criterion on scripted rides, mode statistics, episode splitting,
loading a checkpoint into a deterministic policy, and a tiny real evaluation with forced ends."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dhal.policies.evaluate import (
    EpisodeOutcome, SuccessCriterion, episode_failures, is_success, mode_statistics, run_evaluation,
    split_episodes, summarise_episode, summary,
)
from dhal.policies.training import CheckpointError

torch.set_num_threads(1)

DT = 0.02
CRITERION = SuccessCriterion(min_distance_m=5.0, cycle_s=4.0, max_attachment_error_m=0.05)
REASONS = ["base_tilted", "deck_tilted", "yaw_mismatch", "detached", "non_finite", "diverged"]


def ride(seconds: float, speed: float, *, terminated: str | None = None, attachment: float = 0.001,
         push_every_s: float = 4.0) -> dict[str, np.ndarray]:
    """Step arrays [T, 1] of one scripted episode: constant board speed, DHAL's clock (push while
    sin(2 pi t / T) >= 0.5), ended by the time limit or by `terminated` at its last step."""
    steps = round(seconds / DT)
    t = np.arange(1, steps + 1) * DT
    phase = np.sin(2 * math.pi * t / push_every_s)
    done = np.zeros(steps, dtype=bool)
    done[-1] = True
    reasons = np.zeros(steps, dtype=np.int64)
    if terminated is not None:
        reasons[-1] = 1 << REASONS.index(terminated)
    column = {
        "board_speed": np.full(steps, speed), "command_vx": np.full(steps, 1.0), "command_yaw": np.zeros(steps),
        "yaw_rate": np.full(steps, 0.1), "push": phase >= 0.5, "phase": phase,
        "attachment_error": np.full(steps, attachment), "terminated": done & (terminated is not None),
        "truncated": done & (terminated is None), "reasons": reasons,
    }
    return {key: value[:, None] for key, value in column.items()}


def judge(arrays: dict[str, np.ndarray]):
    steps = arrays["board_speed"].shape[0]
    return summarise_episode(arrays, 0, 0, 0, steps, DT, REASONS, CRITERION)


def test_a_full_ride_of_20_s_at_1_mps_is_a_success():
    episode = judge(ride(20.0, 1.0))
    assert episode.success and episode.failures == ()
    assert episode.outcome.distance_m == pytest.approx(20.0)
    assert episode.outcome.push_s > 0 and episode.outcome.glide_s > 0
    assert episode.outcome.push_s + episode.outcome.glide_s == pytest.approx(20.0)
    assert episode.lin_vel_abs_error == pytest.approx(0.0) and episode.yaw_rate_abs_error == pytest.approx(0.1)


def test_a_fall_is_a_failure_even_after_a_long_ride():
    episode = judge(ride(12.0, 1.0, terminated="base_tilted"))
    assert episode.outcome.termination_reasons == ("base_tilted",)
    assert episode.failures == ("terminated",)


def test_a_detachment_fails_as_termination_and_detachment():
    episode = judge(ride(15.0, 1.0, terminated="detached", attachment=0.08))
    assert episode.failures == ("terminated", "detached")
    # a foot off its mount without the env terminating (a looser env threshold) still fails
    assert judge(ride(20.0, 1.0, attachment=0.06)).failures == ("detached",)


def test_too_short_a_ride_fails():
    assert judge(ride(20.0, 0.2)).failures == ("short_distance",)  # 4 m: not more than 5 m
    # 3 s at speed: far enough, but less than one push/glide cycle
    assert judge(ride(3.0, 2.0)).failures == ("no_full_cycle",)


def test_a_cycle_needs_both_a_push_and_a_glide_phase():
    glide_only = EpisodeOutcome(length_s=20.0, distance_m=10.0, push_s=0.0, glide_s=20.0)
    assert episode_failures(glide_only, CRITERION) == ("no_full_cycle",)
    one_cycle = EpisodeOutcome(length_s=4.0 - 1e-9, distance_m=5.01, push_s=1.0, glide_s=3.0)  # float rounding
    assert is_success(one_cycle, CRITERION)


def test_mode_statistics_on_scripted_modes():
    # two episodes of 1 s at dt = 0.1: runs [0 0 0 1 1 1 1 1 0 0] and [2 2 2 2 2 2 2 2 2 2]
    modes = [np.array([0, 0, 0, 1, 1, 1, 1, 1, 0, 0]), np.full(10, 2)]
    contacts = [m.copy() for m in modes]  # contacts follow the modes exactly
    stats = mode_statistics(modes, contacts, num_modes=4, dt=0.1)
    assert stats["occupancy"] == pytest.approx([0.25, 0.25, 0.5, 0.0])
    assert stats["switches"] == 2 and stats["switch_rate_per_s"] == pytest.approx(1.0)  # none across episodes
    assert stats["mean_dwell_s"] == pytest.approx((0.3 + 0.5 + 0.2 + 1.0) / 4)
    assert stats["mean_dwell_s_per_mode"] == pytest.approx([0.25, 0.5, 1.0, None])
    assert stats["contact_nmi"] == pytest.approx(1.0)
    shuffled = mode_statistics(modes, [np.zeros(10), np.zeros(10)], num_modes=4, dt=0.1)
    assert shuffled["contact_nmi"] == 0.0


def test_split_episodes_takes_each_envs_quota_in_order():
    done = np.zeros((10, 3), dtype=bool)
    done[[2, 5, 9], 0] = True
    done[[4], 1] = True
    done[[0, 1, 2], 2] = True
    found = split_episodes(done, quotas=[2, 1, 0])
    assert found == [(0, 0, 0, 3), (0, 1, 3, 6), (1, 0, 0, 5)]


# ---- with a trained checkpoint -----------------------------------------------------------------------

def test_load_policy_rebuilds_the_trained_learner(smoke_run):
    from dhal.envs.registry import make_env
    from dhal.policies.inference import check_env_fits, load_checkpoint_policy, load_policy

    policy, actor, config = load_policy(smoke_run)  # a run folder: its newest checkpoint
    assert config["preset"] == "smoke" and actor.modes_cfg.num_modes == config["train"]["modes"]["num_modes"]
    assert not actor.training
    env = make_env("dhal-skateboard-play", num_envs=2)
    try:
        obs = env.observations()
        first = policy(obs)
        mode, probs = actor.last_mode.clone(), actor.last_mode_probs.clone()
        assert torch.equal(first, policy(obs)) and first.shape == (2, 12) and first.abs().max() <= 3.0
        assert torch.equal(mode, probs.argmax(-1))  # deterministic path: the argmax mode
        check_env_fits(env, load_checkpoint_policy(smoke_run / "model_1.pt"))
    finally:
        env.close()


def test_a_corrupt_or_foreign_checkpoint_is_a_checkpoint_error(smoke_run, tmp_path):
    from dhal.policies.inference import load_policy

    bad = tmp_path / "model_1.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a readable torch checkpoint"):
        load_policy(bad)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_policy(tmp_path / "missing")
    # a checkpoint whose saved config says K=2 while its weights hold K=3
    data = torch.load(smoke_run / "model_1.pt", weights_only=True)
    data["infos"]["config"]["train"]["modes"]["num_modes"] = 2
    torch.save(data, tmp_path / "model_2.pt")
    with pytest.raises(CheckpointError, match="num_modes is 3 in the checkpoint, 2 here"):
        load_policy(tmp_path / "model_2.pt")


def test_an_env_with_other_observations_does_not_fit(smoke_run):
    from dhal.envs.registry import make_env
    from dhal.policies.inference import check_env_fits, load_checkpoint_policy

    env = make_env("dhal-skateboard-play", num_envs=1, overrides={"observations.history_length": 10})
    try:
        with pytest.raises(CheckpointError, match="observation group 'history' has 480 values in this env, 960"):
            check_env_fits(env, load_checkpoint_policy(smoke_run))
    finally:
        env.close()


@pytest.mark.parametrize(("override", "reason", "failure"), [
    ("terminations.max_base_tilt", "base_tilted", "terminated"),
    ("terminations.max_attachment_error", "detached", "detached"),
])
def test_evaluation_records_why_each_episode_ended(smoke_run, override, reason, failure):
    from dhal.envs.registry import make_env
    from dhal.policies.inference import load_policy

    policy, actor, _ = load_policy(smoke_run)
    # a zero threshold ends every episode at its first step, for that reason
    env = make_env("dhal-skateboard-play", num_envs=2, overrides={override: 0.0, "sim.episode_length_s": 0.2})
    try:
        with torch.inference_mode():
            evaluation = run_evaluation(env, policy, actor, episodes=3, progress=False)
    finally:
        env.close()
    assert evaluation.steps == 2 and len(evaluation.episodes) == 3
    assert [(e.env, e.index) for e in evaluation.episodes] == [(0, 0), (0, 1), (1, 0)]
    results = summary(evaluation)
    assert results["terminations"]["time_out"] == 0 and results["terminations"][reason] == 3
    assert results["falls"] == 3 and results["success_rate"] == 0.0 and results["failures"][failure] == 3
    assert "_episode_log" not in vars(env)  # the capture is removed again
