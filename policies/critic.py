"""DHAL's critics: one separate MLP per reward group on the privileged observation (DHAL.md §4).

`MultiCritic(obs, obs_groups, "critic", G, ...)` returns values [N, G], column g from critic g.
With G = 1 it is an ordinary single critic ("wo-MC"). The unused fourth "total" critic of DHAL's
code is not built: time-outs bootstrap each group with its own critic (DHAL.md §11.2 item 12).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from rsl_rl.models import MLPModel
from rsl_rl.modules import MLP
from tensordict import TensorDict
from torch import Tensor, nn


class SeparateHeads(nn.Module):
    """G independent MLPs with a scalar output each; forward concatenates them to [N, G]."""

    def __init__(self, input_dim: int, num_heads: int, hidden_dims: Sequence[int], activation: str) -> None:
        super().__init__()
        self.heads = nn.ModuleList(MLP(input_dim, 1, tuple(hidden_dims), activation) for _ in range(num_heads))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([head(x) for head in self.heads], dim=-1)


class MultiCritic(MLPModel):
    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        hidden_dims: tuple[int, ...] | list[int] = (512, 256, 128),
        activation: str = "elu",
        obs_normalization: bool = False,
        distribution_cfg: dict | None = None,
        group_names: Sequence[str] | None = None,
    ) -> None:
        if distribution_cfg is not None:
            raise ValueError("a critic has no output distribution")
        if output_dim < 1:
            raise ValueError(f"MultiCritic needs at least one reward group, got {output_dim}")
        if group_names is not None and len(group_names) != output_dim:
            raise ValueError(f"{len(group_names)} group names for {output_dim} critics")
        # The parent builds one MLP with 1 output; it is replaced by G separate ones below.
        super().__init__(obs, obs_groups, obs_set, 1, hidden_dims, activation, obs_normalization, None)
        self.num_groups = output_dim
        self.group_names = tuple(group_names) if group_names is not None else tuple(f"group_{g}" for g in range(output_dim))
        self.mlp = SeparateHeads(self._get_latent_dim(), output_dim, hidden_dims, activation)
