"""Batched rotation helpers on torch tensors. Quaternions are (w, x, y, z), as MuJoCo stores them."""

from __future__ import annotations

import math

import torch


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors v [..., 3] from the body frame into the world frame."""
    w, xyz = q[..., :1], q[..., 1:]
    t = 2.0 * torch.cross(xyz, v, dim=-1)
    return v + w * t + torch.cross(xyz, t, dim=-1)


def quat_rotate_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate world-frame vectors v [..., 3] into the body frame of q."""
    w, xyz = q[..., :1], q[..., 1:]
    t = 2.0 * torch.cross(xyz, v, dim=-1)
    return v - w * t + torch.cross(xyz, t, dim=-1)


_RPY_TERMS: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def _rpy_terms(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[16, 5] on `device`, made once per device and dtype (no host-to-device copy per call; a
    plain dict, which torch.compile guards on, where it would trace through lru_cache): the
    flattened products q_i q_j (w, x, y, z) -> (roll numerator, roll denominator,
    sin pitch, yaw numerator, yaw denominator) of the ZYX angles."""
    key = (device, dtype)
    if key in _RPY_TERMS:
        return _RPY_TERMS[key]
    terms = torch.zeros(4, 4, 5, dtype=torch.float64)
    w, x, y, z = range(4)
    for column, signed in enumerate((
        ((w, x, 2), (y, z, 2)),  # 2 (wx + yz)
        ((w, w, 1), (x, x, -1), (y, y, -1), (z, z, 1)),  # w2 - x2 - y2 + z2 (= 1 - 2 (x2 + y2) for unit q)
        ((w, y, 2), (z, x, -2)),  # 2 (wy - zx)
        ((w, z, 2), (x, y, 2)),  # 2 (wz + xy)
        ((w, w, 1), (x, x, 1), (y, y, -1), (z, z, -1)),  # w2 + x2 - y2 - z2
    )):
        for i, j, factor in signed:
            terms[i, j, column] = factor
    _RPY_TERMS[key] = terms.reshape(16, 5).to(device=device, dtype=dtype)
    return _RPY_TERMS[key]


def quat_to_rpy(q: torch.Tensor) -> torch.Tensor:
    """Roll, pitch, yaw [..., 3] (ZYX convention) of unit quaternions [..., 4] (roll and yaw are
    also right for a quaternion of any norm). One table of products and one matrix product
    instead of a dozen small element-wise kernels: the env step calls this four times."""
    products = (q.unsqueeze(-1) * q.unsqueeze(-2)).flatten(-2)
    terms = products @ _rpy_terms(q.device, q.dtype)
    roll_yaw = torch.atan2(terms[..., 0::3], terms[..., 1::3])
    pitch = torch.asin(terms[..., 2].clamp(-1.0, 1.0))
    return torch.stack((roll_yaw[..., 0], pitch, roll_yaw[..., 1]), dim=-1)


def yaw_quat(yaw: torch.Tensor) -> torch.Tensor:
    half = 0.5 * yaw
    zeros = torch.zeros_like(half)
    return torch.stack((torch.cos(half), zeros, zeros, torch.sin(half)), dim=-1)


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        dim=-1,
    )


def wrap_to_pi(angle: torch.Tensor) -> torch.Tensor:
    """Wrap angles into [-pi, pi): the fix for DHAL's unwrapped yaw-difference termination."""
    return torch.remainder(angle + math.pi, 2.0 * math.pi) - math.pi
