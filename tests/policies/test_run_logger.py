"""The run logger keeps rsl-rl's episode statistics without a host read per step; a training
rollout reads the device only at the env's check-ins and once at its end."""

from __future__ import annotations

import pytest
import torch
from rsl_rl.utils.logger import Logger

from dhal.policies.run_logger import DHALLogger
from tests.host_reads import HostReads


def make_logger(cls: type[Logger], num_envs: int) -> Logger:
    logger = cls(log_dir=None, cfg={"algorithm": {}}, env_cfg={}, num_envs=num_envs, is_distributed=False,
                 gpu_world_size=1, gpu_global_rank=0, device="cpu")
    logger.writer = object()  # as once the writer exists (rank 0 of a run that writes)
    return logger


def test_episode_statistics_match_rsl_rl_without_a_host_read_per_step():
    n, steps = 6, 40
    generator = torch.Generator().manual_seed(0)
    ours, theirs = make_logger(DHALLogger, n), make_logger(Logger, n)
    reads = HostReads()
    for _ in range(steps):
        rewards = torch.randn(n, generator=generator)
        dones = (torch.rand(n, generator=generator) < 0.2).long()
        with reads:
            ours.process_env_step(rewards, dones, {"log": {"Episode_Termination/x": 0.5}}, None)
        theirs.process_env_step(rewards, dones, {"log": {"Episode_Termination/x": 0.5}}, None)
    assert reads.calls == {}, dict(reads.calls)
    assert ours.mean_reward() == pytest.approx(sum(theirs.rewbuffer) / len(theirs.rewbuffer))
    assert list(ours.rewbuffer) == pytest.approx(list(theirs.rewbuffer))
    assert list(ours.lenbuffer) == list(theirs.lenbuffer) and len(ours.lenbuffer) > 10
    assert torch.equal(ours.cur_reward_sum, theirs.cur_reward_sum)
    assert torch.equal(ours.cur_episode_length, theirs.cur_episode_length)
    assert len(ours.ep_extras) == steps


def test_collecting_a_rollout_reads_the_device_only_at_the_envs_check_ins(tmp_path, monkeypatch):
    """On a GPU each host read in the collection loop stalls the launch queue. With the env
    checking in every 8 steps (the smoke rollout's length), a rollout may read a handful of
    values at that check-in and once at its end, not several per step (rsl-rl's check_nan and
    episode bookkeeping did: 80 a rollout)."""
    pytest.importorskip("mujoco_warp")
    from dhal.policies.ppo import DHALPPO
    from tests.cli import run_dhal

    reads = HostReads()
    reads.counting = False
    act, returns = DHALPPO.act, DHALPPO.compute_returns

    def counting_act(self, obs):
        reads.counting = True
        return act(self, obs)

    def stop_counting(self, obs):
        reads.counting = False
        return returns(self, obs)

    monkeypatch.setattr(DHALPPO, "act", counting_act)
    monkeypatch.setattr(DHALPPO, "compute_returns", stop_counting)
    with reads:
        code, _, err = run_dhal("train", "--preset", "smoke", "--no-progress", "--iterations", "2",
                                "--backend", "mujoco_warp", "--override", "sim.queue_resets=True",
                                "--override", "sim.check_every=8", "--run-dir", str(tmp_path / "run"))
    assert code == 0, err
    assert sum(reads.calls.values()) <= 2 * 6, dict(reads.calls)  # two rollouts of 8 steps
