"""MultiCritic: one separate MLP per reward group on the privileged observation."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from dhal.policies.critic import MultiCritic

torch.set_num_threads(1)

GROUPS = {"actor": ["history"], "critic": ["privileged"]}


def obs(n: int = 5, seed: int = 0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict({"history": torch.randn(n, 8, generator=g), "privileged": torch.randn(n, 11, generator=g)},
                      batch_size=[n])


def test_one_column_per_group_from_separate_networks():
    critic = MultiCritic(obs(), GROUPS, "critic", 3, hidden_dims=[16, 8], group_names=("a", "b", "c"))
    values = critic(obs())
    assert values.shape == (5, 3)
    assert len(critic.mlp.heads) == 3
    assert critic.mlp.heads[0][0].in_features == 11  # reads the privileged group only
    # changing critic 1 changes column 1 only
    before = values.detach().clone()
    with torch.no_grad():
        for p in critic.mlp.heads[1].parameters():
            p.add_(0.5)
    after = critic(obs()).detach()
    assert torch.equal(after[:, [0, 2]], before[:, [0, 2]])
    assert not torch.allclose(after[:, 1], before[:, 1])


def test_gradients_stay_in_their_own_critic():
    critic = MultiCritic(obs(), GROUPS, "critic", 3, hidden_dims=[16])
    critic(obs())[:, 2].sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in critic.mlp.heads[0].parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.mlp.heads[2].parameters())


def test_single_critic():
    critic = MultiCritic(obs(), GROUPS, "critic", 1, hidden_dims=[16], group_names=("total",))
    assert critic(obs()).shape == (5, 1)
    assert critic.group_names == ("total",)


def test_bad_arguments():
    with pytest.raises(ValueError, match="group names"):
        MultiCritic(obs(), GROUPS, "critic", 3, hidden_dims=[4], group_names=("a",))
    with pytest.raises(ValueError, match="distribution"):
        MultiCritic(obs(), GROUPS, "critic", 3, hidden_dims=[4], distribution_cfg={"class_name": "BetaDistribution"})
