"""The episode log's report: per-term reward means, end-reason shares and lengths over the
episodes that ended since the last flush."""

from __future__ import annotations

import pytest
import torch

from dhal.envs.skateboard.episode_log import EpisodeLog


def make_log() -> EpisodeLog:
    return EpisodeLog(("glide", "push"), ("fell", "timeout"), episode_length_s=10.0, step_dt=0.02,
                      device=torch.device("cpu"))


def test_reports_the_episodes_ended_since_the_last_flush():
    log = make_log()
    assert log.flush() is None  # nothing recorded: no report, no copy
    sums = torch.tensor([[10.0, 20.0], [30.0, 40.0], [99.0, 99.0]])
    steps = torch.tensor([100, 300, 7])
    fell, timeout = torch.tensor([True, False, False]), torch.tensor([False, True, False])
    log.record(torch.tensor([True, False, False]), sums, steps, {"fell": fell, "timeout": timeout})
    log.record(torch.tensor([False, True, False]), sums, steps, {"fell": fell, "timeout": timeout})
    report = log.flush()
    assert report == pytest.approx({
        "Episode_Reward/glide": (10 + 30) / 2 / 10.0, "Episode_Reward/push": (20 + 40) / 2 / 10.0,
        "Episode_Termination/fell": 0.5, "Episode_Termination/timeout": 0.5,
        "Episode/length_s": (100 + 300) / 2 * 0.02,
    })
    log.record(torch.zeros(3, dtype=torch.bool), sums, steps, {"fell": fell, "timeout": timeout})
    assert log.flush() is None  # a period in which nothing ended


def test_end_reasons_must_match_the_declared_ones():
    log = make_log()
    with pytest.raises(KeyError, match="end reasons"):
        log.record(torch.ones(3, dtype=torch.bool), torch.zeros(3, 2), torch.zeros(3),
                   {"timeout": torch.ones(3, dtype=torch.bool), "fell": torch.ones(3, dtype=torch.bool)})
