import math

import torch

from dhal.envs.math import quat_mul, quat_rotate, quat_rotate_inverse, quat_to_rpy, wrap_to_pi, yaw_quat


def _axis_angle(axis, angle):
    axis = torch.tensor(axis, dtype=torch.float32)
    axis = axis / axis.norm()
    return torch.cat((torch.tensor([math.cos(angle / 2)]), math.sin(angle / 2) * axis))


def test_rotate_and_inverse_roundtrip():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(64, 4), dim=-1)
    v = torch.randn(64, 3)
    assert torch.allclose(quat_rotate_inverse(q, quat_rotate(q, v)), v, atol=1e-5)


def test_yaw_rotation_of_x_axis():
    q = yaw_quat(torch.tensor([math.pi / 2]))
    assert torch.allclose(quat_rotate(q, torch.tensor([[1.0, 0.0, 0.0]])), torch.tensor([[0.0, 1.0, 0.0]]), atol=1e-6)


def test_rpy_of_composed_rotation():
    roll, pitch, yaw = 0.3, -0.2, 2.5
    q = quat_mul(quat_mul(_axis_angle([0, 0, 1], yaw), _axis_angle([0, 1, 0], pitch)), _axis_angle([1, 0, 0], roll))
    assert torch.allclose(quat_to_rpy(q), torch.tensor([roll, pitch, yaw]), atol=1e-5)


def test_rpy_matches_the_textbook_formulas_and_ignores_the_norm_for_roll_and_yaw():
    torch.manual_seed(1)
    q = torch.nn.functional.normalize(torch.randn(4096, 4, dtype=torch.float64), dim=-1)
    w, x, y, z = q.unbind(-1)
    expected = torch.stack((
        torch.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y)),
        torch.asin((2 * (w * y - z * x)).clamp(-1, 1)),
        torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)),
    ), dim=-1)
    assert torch.allclose(quat_to_rpy(q), expected, atol=1e-9)
    assert torch.allclose(quat_to_rpy(q.float()), expected.float(), atol=1e-4)
    scaled = quat_to_rpy(1.01 * q)
    assert torch.allclose(scaled[:, [0, 2]], expected[:, [0, 2]], atol=1e-9)
    assert quat_to_rpy(q[0]).shape == (3,)


def test_wrap_to_pi_fixes_the_yaw_seam():
    # Body at +179 deg, deck at -179 deg: 2 degrees apart, not 358 (DHAL's unwrapped bug).
    diff = wrap_to_pi(torch.tensor([math.radians(179) - math.radians(-179)]))
    assert abs(float(diff) - math.radians(-2)) < 1e-5
