import torch

from dhal.envs.skateboard.commands import resample_due, sample_commands
from dhal.envs.skateboard.config import CommandConfig


def test_ranges_and_dead_zones():
    cfg = CommandConfig()
    cmd = sample_commands(20000, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    vx, vy, wz = cmd.unbind(-1)
    assert torch.all(vy == 0)
    assert vx.abs().max() <= 1.6 and wz.abs().max() <= 0.8
    assert torch.all((vx == 0) | (vx.abs() > 0.2))
    assert torch.all((wz == 0) | (wz.abs() > 0.2))
    still = ((vx == 0) & (wz == 0)).float().mean()
    assert 0.02 < float(still) < 0.05  # about 3 % (0.2/1.6 * 0.2/0.8)


def test_seeded_and_resample_schedule():
    cfg = CommandConfig()
    a = sample_commands(8, cfg, torch.Generator().manual_seed(1), torch.device("cpu"))
    b = sample_commands(8, cfg, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert torch.equal(a, b)
    steps = torch.tensor([0, 499, 500, 1000])
    assert resample_due(steps, 500).tolist() == [False, False, True, True]
