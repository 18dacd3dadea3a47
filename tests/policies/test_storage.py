"""MultiCriticRolloutStorage: [T, N, G] buffers, extra per-transition fields, shape errors."""

from __future__ import annotations

import pytest
import torch
from rsl_rl.storage import RolloutStorage
from tensordict import TensorDict

from dhal.policies.storage import MultiCriticRolloutStorage

torch.set_num_threads(1)

T, N, G, A = 5, 3, 3, 2
EXTRA = {"target": ((4,), torch.float32), "mode": ((), torch.int64)}


def obs(value: float = 0.0) -> TensorDict:
    return TensorDict({"history": torch.full((N, 6), value), "privileged": torch.full((N, 7), value)}, batch_size=[N])


def transition(step: int, with_extra: bool = True) -> RolloutStorage.Transition:
    t = RolloutStorage.Transition()
    o = obs(float(step)).copy()
    if with_extra:
        o["target"] = torch.full((N, 4), 10.0 + step)
        o["mode"] = torch.full((N,), step, dtype=torch.int64)
    t.observations = o
    t.actions = torch.full((N, A), float(step))
    t.rewards = torch.arange(G, dtype=torch.float32).expand(N, G) + 100 * step
    t.values = torch.full((N, G), -float(step))
    t.dones = torch.zeros(N, dtype=torch.bool)
    t.actions_log_prob = torch.zeros(N)
    t.distribution_params = (torch.ones(N, A), torch.ones(N, A))
    return t


def filled() -> MultiCriticRolloutStorage:
    st = MultiCriticRolloutStorage(N, T, obs(), [A], G, EXTRA)
    for step in range(T):
        st.add_transition(transition(step))
    return st


def test_buffers_have_a_group_axis_and_extra_fields():
    st = filled()
    assert st.rewards.shape == st.values.shape == st.returns.shape == (T, N, G)
    assert st.advantages.shape == (T, N, 1)
    assert st.observations["target"].shape == (T, N, 4)
    assert st.observations["mode"].dtype == torch.int64
    for step in range(T):
        assert torch.equal(st.rewards[step], torch.arange(G, dtype=torch.float32).expand(N, G) + 100 * step)
        assert torch.equal(st.values[step], torch.full((N, G), -float(step)))
        assert torch.equal(st.observations["target"][step], torch.full((N, 4), 10.0 + step))
        assert torch.equal(st.observations["history"][step], torch.full((N, 6), float(step)))


def test_minibatches_carry_the_extra_fields_with_their_observations():
    st = filled()
    st.returns.copy_(st.rewards)
    batches = list(st.mini_batch_generator(num_mini_batches=3, num_epochs=1))
    assert len(batches) == 3
    for b in batches:
        step = b.observations["history"][:, 0]
        assert torch.equal(b.observations["target"][:, 0], 10.0 + step)
        assert torch.equal(b.observations["mode"].float(), step)
        assert b.values.shape == b.returns.shape == (T * N // 3, G)
        assert b.advantages.shape == (T * N // 3, 1)


def test_missing_extra_field_is_an_error_not_stale_data():
    st = MultiCriticRolloutStorage(N, T, obs(), [A], G, EXTRA)
    with pytest.raises(KeyError, match="target"):
        st.add_transition(transition(0, with_extra=False))


def test_wrong_reward_shape_is_an_error():
    st = MultiCriticRolloutStorage(N, T, obs(), [A], G, EXTRA)
    t = transition(0)
    t.rewards = torch.zeros(N)
    with pytest.raises(ValueError, match="num_groups"):
        st.add_transition(t)


def test_extra_field_may_not_shadow_an_observation_group():
    with pytest.raises(ValueError, match="clash"):
        MultiCriticRolloutStorage(N, T, obs(), [A], G, {"history": ((1,), torch.float32)})


def test_overflow_and_clear():
    st = filled()
    with pytest.raises(OverflowError):
        st.add_transition(transition(0))
    st.clear()
    st.add_transition(transition(7))
    assert torch.equal(st.rewards[0, 0], torch.arange(G, dtype=torch.float32) + 700)
