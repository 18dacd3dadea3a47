"""NanWatch keeps rsl-rl's NaN check on the env's outputs with one host read per rollout."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from dhal.policies.nan_watch import NanWatch
from tests.host_reads import HostReads


def obs(nan_in: str | None = None) -> TensorDict:
    groups = {"policy": torch.zeros(3, 4), "critic": torch.zeros(3, 5)}
    if nan_in is not None:
        groups[nan_in][1, 2] = float("nan")
    return TensorDict(groups, batch_size=[3])


def test_nan_watch_reads_once_and_names_what_held_nan():
    watch = NanWatch()
    reads = HostReads()
    with reads:
        watch.add(obs(), torch.zeros(3), torch.zeros(3))
        watch.add(obs("critic"), torch.zeros(3), torch.zeros(3))
        watch.add(obs(), torch.zeros(3), torch.zeros(3))
    assert reads.calls == {}
    with pytest.raises(ValueError, match=r"observation group 'critic' .* NaN values \(in the rollout of it 3\)"):
        watch.raise_if_found("in the rollout of it 3")
    watch.raise_if_found("nothing since")  # read and cleared
    rewards = torch.zeros(3)
    rewards[0] = float("nan")
    watch.add(obs(), rewards, torch.zeros(3))
    with pytest.raises(ValueError, match="the rewards returned"):
        watch.raise_if_found("x")
