"""Rollout storage for G reward groups (LEARNER.md §3.3).

Differences from rsl-rl's `RolloutStorage("rl", ...)`:
* `rewards`, `values`, `returns` are [T, N, G] (one column per critic); `advantages` stays
  [T, N, 1] (the weighted combination the surrogate uses).
* Extra per-transition fields (the dynamics targets, the replayed mode sample) are stored as extra
  keys of the observation TensorDict, so the stock minibatch generator shuffles them together with
  the observations; every transition must carry all of them (a missing one is an error, not stale
  data).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from rsl_rl.storage import RolloutStorage
from tensordict import TensorDict


class MultiCriticRolloutStorage(RolloutStorage):
    def __init__(
        self,
        num_envs: int,
        num_transitions_per_env: int,
        obs: TensorDict,
        actions_shape: tuple[int, ...] | list[int],
        num_groups: int,
        extra_fields: Mapping[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
        device: str = "cpu",
    ) -> None:
        if num_groups < 1:
            raise ValueError(f"num_groups must be >= 1, got {num_groups}")
        extra_fields = dict(extra_fields or {})
        clash = sorted(set(extra_fields) & set(obs.keys()))
        if clash:
            raise ValueError(f"extra storage fields {clash} clash with observation groups of the same name")
        template = obs.copy()  # shallow: the caller's TensorDict is not modified
        for name, (shape, dtype) in extra_fields.items():
            template[name] = torch.zeros(num_envs, *shape, dtype=dtype, device=obs.device)
        super().__init__("rl", num_envs, num_transitions_per_env, template, actions_shape, device)
        self.num_groups = num_groups
        self.extra_fields = extra_fields
        self._required_keys = set(self.observations.keys())
        shape = (num_transitions_per_env, num_envs, num_groups)
        self.rewards = torch.zeros(shape, device=self.device)
        self.values = torch.zeros(shape, device=self.device)
        self.returns = torch.zeros(shape, device=self.device)

    def add_transition(self, transition: RolloutStorage.Transition) -> None:
        if self.step >= self.num_transitions_per_env:
            raise OverflowError("Rollout buffer overflow! You should call clear() before adding new transitions.")
        rewards = transition.rewards
        expected = (self.num_envs, self.num_groups)
        if rewards is None or tuple(rewards.shape) != expected:
            raise ValueError(f"transition rewards must be [num_envs, num_groups] = {list(expected)}, "
                             f"got {None if rewards is None else list(rewards.shape)}")
        if transition.values is None or tuple(transition.values.shape) != expected:
            raise ValueError(f"transition values must be {list(expected)}, "
                             f"got {None if transition.values is None else list(transition.values.shape)}")
        missing = self._required_keys - set(transition.observations.keys())
        if missing:
            raise KeyError(f"transition is missing storage fields {sorted(missing)}")
        # The parent copies a [N, 1] reward (it would reshape [N, G] to [N*G, 1] and fail), which
        # broadcasts over the G columns; the real rows overwrite it afterwards.
        transition.rewards = rewards[:, :1]
        step = self.step
        try:
            super().add_transition(transition)
        finally:
            transition.rewards = rewards
        self.rewards[step].copy_(rewards)
