import math

import torch

from dhal.envs.skateboard.config import TerminationConfig
from dhal.envs.skateboard.terminations import check_terminations
from tests.envs.skateboard.conftest import make_state


def test_upright_robot_does_not_terminate():
    reasons = check_terminations(make_state(), TerminationConfig())
    assert not any(bool(v.any()) for v in reasons.values())


def test_each_reason_fires():
    s = make_state(n=4)
    s.base_rpy = torch.tensor([[1.4, 0, 0], [0, 0, 0], [0, 0, math.radians(179)], [0, 0, 0]])
    s.deck_rpy = torch.tensor([[0, 0, 0], [0, -1.3, 0], [0, 0, math.radians(-179)], [0, 0, 0]])
    s.mount_pos = s.mount_pos.clone()
    s.mount_pos[3, 2] += 0.1
    r = check_terminations(s, TerminationConfig())
    assert r["base_tilted"].tolist() == [True, False, False, False]
    assert r["deck_tilted"].tolist() == [False, True, False, False]
    # 179 vs -179 degrees is 2 degrees apart: no yaw mismatch once the difference is wrapped.
    assert r["yaw_mismatch"].tolist() == [False, False, False, False]
    assert r["detached"].tolist() == [False, False, False, True]
