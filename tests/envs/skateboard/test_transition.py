"""transition: the pieces of a step's task update that are not reward or observation terms."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dhal.envs.registry import make_config, make_env
from dhal.envs.skateboard import transition
from dhal.envs.skateboard.rewards import FL


def test_contacts_are_filtered_over_two_steps_and_the_tied_foot_always_touches():
    env = make_env(num_envs=2, seed=0)
    env.step(torch.zeros(2, 12))
    s = env.state
    cfg = make_config().observations
    last = env.contacts
    touching = s.foot_force > cfg.foot_contact_force
    now = transition.update_contacts(s, last._replace(raw_foot=torch.ones_like(last.raw_foot)), cfg)
    assert now.foot.all()  # in contact at the previous step counts
    assert now.raw_foot[:, FL].all()
    assert torch.equal(now.raw_foot[:, [0, 2, 3]], touching[:, [0, 2, 3]])
    assert torch.equal(now.history[:, -1], now.foot.float())
    assert torch.equal(now.history[:, :-1], last.history[:, 1:])
    env.close()


def test_commands_are_resampled_only_where_due():
    cfg = make_config(overrides={"commands.resample_s": 0.1})  # every 5 control steps
    current = torch.full((3, 3), 0.25)
    steps = torch.tensor([5, 6, 0])
    uniforms = torch.full((3, 2), 0.0)  # the bottom of each range
    new = transition.resample_commands(current, steps, uniforms, cfg)
    assert torch.equal(new[1:], current[1:])  # not due, and step 0 is a restart's, not a resample
    low = cfg.commands.lin_vel_x[0]
    assert float(new[0, 0]) == pytest.approx(low if abs(low) > cfg.commands.lin_vel_deadzone else 0.0)


def test_metrics_are_named_views_of_one_table():
    env = make_env(num_envs=2, seed=0)
    result = env.step(torch.zeros(2, 12))
    metrics = result.extras["metrics"]
    table = metrics["board_speed"]._base
    assert table is not None and all(v._base is table for v in metrics.values())
    assert metrics["marker_distance"].shape == (2, 4) and metrics["phase"].shape == (2,)
    assert torch.equal(metrics["command_vx"], env.commands[:, 0])
    env.close()


def test_a_broken_env_earns_measures_and_observes_zero_and_keeps_its_sums():
    """`broken` (envs found diverged since the simulator's last check) zeroes that env's rows of
    every output, NaN state included, and leaves the others exactly as without it."""
    env = make_env(num_envs=3, seed=0)
    env.step(torch.zeros(3, 12))
    s = dataclasses.replace(env.state, base_lin_vel_b=env.state.base_lin_vel_b.clone())
    s.base_lin_vel_b[1] = float("nan")
    memory = env._memory()
    draws = transition.Draws(torch.rand(3, 2), None)
    kwargs = dict(domain=env.domain, default_pose=env.default_pose, glide_pose=env.glide_pose,
                  free_feet=env.free_feet, max_episode_length=env.max_episode_length)
    args = (env.reward_table, env.cfg, env.contract, s, memory, draws)
    broken = torch.tensor([False, True, False])
    t = transition.transition(*args, **kwargs, broken=broken)
    plain = transition.transition(*args, **kwargs, broken=torch.zeros(3, dtype=torch.bool))
    outputs = {"groups": (t.breakdown.groups, plain.breakdown.groups),
               "terms": (t.breakdown.term_values, plain.breakdown.term_values),
               "total": (t.breakdown.total, plain.breakdown.total),
               "metrics": (t.metric_table, plain.metric_table), "history": (t.observed.history, plain.observed.history),
               "privileged": (t.observed.privileged, plain.observed.privileged),
               "next_state": (t.next_state, plain.next_state), "next_contacts": (t.next_contacts, plain.next_contacts)}
    for name, (zeroed, unmasked) in outputs.items():
        assert zeroed[1].eq(0).all(), name
        assert torch.equal(zeroed[[0, 2]], unmasked[[0, 2]]), name
    assert not torch.isfinite(plain.breakdown.groups[1]).all()  # the NaN did reach the rewards
    assert torch.equal(t.episode_sums[1], memory.episode_sums[1])
    assert all(v._base is t.metric_table for v in t.metrics.values())
    env.close()
