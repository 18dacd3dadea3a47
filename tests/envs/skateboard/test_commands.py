import pytest
import torch

from dhal.envs.skateboard.commands import commands_from_uniforms, resample_due
from dhal.envs.skateboard.config import CommandConfig


def test_ranges_and_dead_zones():
    cfg = CommandConfig()
    cmd = commands_from_uniforms(torch.rand(20000, 2, generator=torch.Generator().manual_seed(0)), cfg)
    vx, vy, wz = cmd.unbind(-1)
    assert torch.all(vy == 0)
    assert vx.abs().max() <= 1.6 and wz.abs().max() <= 0.8
    assert torch.all((vx == 0) | (vx.abs() > 0.2))
    assert torch.all((wz == 0) | (wz.abs() > 0.2))
    still = ((vx == 0) & (wz == 0)).float().mean()
    assert 0.02 < float(still) < 0.05  # about 3 % (0.2/1.6 * 0.2/0.8)


def test_the_range_ends_map_from_the_uniform_ends_and_the_schedule():
    cfg = CommandConfig()
    ends = commands_from_uniforms(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), cfg)
    assert ends[:, 0].tolist() == pytest.approx(cfg.lin_vel_x) and ends[:, 2].tolist() == pytest.approx(cfg.ang_vel_yaw)
    steps = torch.tensor([0, 499, 500, 1000])
    assert resample_due(steps, 500).tolist() == [False, False, True, True]
