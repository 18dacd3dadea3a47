from __future__ import annotations

import pytest
import torch

from dhal.envs.robots import go1
from dhal.envs.skateboard.state import SkateState


def make_state(n: int = 2, **fields: torch.Tensor) -> SkateState:
    """A level robot on a level deck, feet exactly on their markers; override any field."""
    markers = torch.tensor([[0.0, -0.14, 0.05], [0.0, 0.0, 0.05], [-0.4, -0.14, 0.05], [-0.4, 0.0, 0.05]])
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0])
    base = dict(
        base_pos=torch.tensor([-0.2, -0.07, 0.27]).repeat(n, 1),
        base_quat=identity.repeat(n, 1),
        base_rpy=torch.zeros(n, 3),
        base_lin_vel_b=torch.zeros(n, 3),
        base_ang_vel_b=torch.zeros(n, 3),
        projected_gravity=torch.tensor([0.0, 0.0, -1.0]).repeat(n, 1),
        joint_pos=torch.tensor(go1.GLIDE_POSE).repeat(n, 1),
        joint_vel=torch.zeros(n, 12),
        joint_torque=torch.zeros(n, 12),
        foot_pos=markers.repeat(n, 1, 1),
        marker_pos=markers.repeat(n, 1, 1),
        mount_pos=markers[1].repeat(n, 1),
        deck_pos=torch.tensor([-0.2, -0.07, 0.0]).repeat(n, 1),
        deck_quat=identity.repeat(n, 1),
        deck_rpy=torch.zeros(n, 3),
        deck_lin_vel_b=torch.zeros(n, 3),
        foot_force=torch.full((n, 4), 30.0),
        wheel_force=torch.full((n, 4), 40.0),
        collision_force=torch.zeros(n, 8),
    )
    base.update(fields)
    return SkateState(**base)


@pytest.fixture
def state_factory():
    return make_state
