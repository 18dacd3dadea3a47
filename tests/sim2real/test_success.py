"""The paper's success definition on scripted rides: a success, a fall, a detachment, too short a
ride, and a ride that travels far without the feet ever leaving the board (a board rolling down a
slope under a standing robot)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dhal.policies.evaluate import SuccessCriterion, mount_transitions, summarise_episode

DT = 0.02
PERIOD = 4.0
CRITERION = SuccessCriterion(min_distance_m=5.0, cycle_s=PERIOD, max_attachment_error_m=0.05,
                             mount_radius_m=0.06, dismount_radius_m=0.12)
REASONS = ["base_tilted", "deck_tilted", "yaw_mismatch", "detached", "non_finite", "diverged"]


def ride(seconds: float, speed: float, *, pushes: bool = True, fall: str | None = None,
         attachment: float = 0.002) -> dict[str, np.ndarray]:
    """Step arrays [T, 1] of one scripted episode under DHAL's clock: the board at constant speed,
    the pushing feet 0.3 m off their markers during push phases (if `pushes`), on them otherwise."""
    steps = round(seconds / DT)
    t = np.arange(1, steps + 1) * DT
    phase = np.sin(2 * math.pi * t / PERIOD)
    push = phase >= 0.5
    distance = np.full((steps, 4), 0.01)
    if pushes:
        distance[push, 0] = distance[push, 2] = 0.3
    done = np.zeros(steps, dtype=bool)
    done[-1] = True
    reasons = np.zeros(steps, dtype=np.int64)
    if fall is not None:
        reasons[-1] = 1 << REASONS.index(fall)
    columns = {
        "board_speed": np.full(steps, speed), "command_vx": np.full(steps, speed), "command_yaw": np.zeros(steps),
        "yaw_rate": np.zeros(steps), "push": push, "phase": phase, "attachment_error": np.full(steps, attachment),
        "terminated": done & (fall is not None), "truncated": done & (fall is None), "reasons": reasons,
    }
    arrays = {key: value[:, None] for key, value in columns.items()}
    arrays["marker_distance"] = distance[:, None, :]
    return arrays


def judge(arrays: dict[str, np.ndarray]):
    return summarise_episode(arrays, 0, 0, 0, arrays["board_speed"].shape[0], DT, REASONS, CRITERION)


def test_a_full_push_and_glide_ride_is_a_success():
    episode = judge(ride(20.0, 1.0))
    assert episode.success
    assert episode.outcome.distance_m == pytest.approx(20.0)
    assert episode.outcome.mount_transitions == 10  # five pushes: off and back on each


def test_a_fall_is_a_failure():
    episode = judge(ride(12.0, 1.0, fall="base_tilted"))
    assert episode.failures == ("terminated",) and episode.outcome.termination_reasons == ("base_tilted",)


def test_a_detachment_is_a_failure():
    assert judge(ride(15.0, 1.0, fall="detached", attachment=0.08)).failures == ("terminated", "detached")
    assert judge(ride(20.0, 1.0, attachment=0.07)).failures == ("detached",)  # off the mount, not terminated


def test_too_short_a_ride_is_a_failure():
    assert judge(ride(20.0, 0.24)).failures == ("short_distance",)  # 4.8 m
    assert judge(ride(20.0, 0.26)).success  # 5.2 m
    assert judge(ride(3.0, 2.5)).failures == ("no_full_cycle",)  # 7.5 m, but shorter than one cycle


def test_rolling_far_without_ever_leaving_the_board_is_no_cycle():
    episode = judge(ride(20.0, 1.5, pushes=False))
    assert episode.outcome.mount_transitions == 0 and episode.failures == ("no_full_cycle",)


def test_mount_transitions_need_the_feet_clearly_off_and_clearly_on():
    hovering = np.full((10, 4), 0.01)
    hovering[3:6, 0] = 0.09  # between the radii: neither off nor on
    assert mount_transitions(hovering, CRITERION) == 0
    one_push = np.full((10, 4), 0.01)
    one_push[3:6, 2] = 0.2  # RR leaves and comes back
    assert mount_transitions(one_push, CRITERION) == 2
    start_on_ground = np.full((10, 4), 0.01)
    start_on_ground[:4, [0, 2]] = 0.25  # the push pose: FR and RR start on the ground, then mount
    assert mount_transitions(start_on_ground, CRITERION) == 1
    rl_only = np.full((10, 4), 0.01)
    rl_only[2:5, 3] = 0.3  # the RL foot is not a pushing foot
    assert mount_transitions(rl_only, CRITERION) == 0
