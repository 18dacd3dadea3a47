"""The error MuJoCo Warp's fixed-size buffers call for when they overflow.

Warp only printf's "nefc overflow" and carries on with wrong physics; the backend checks its
per-world overflow flags and counts and raises this instead, naming the setting to raise and a
value that fits.
"""

from __future__ import annotations

import math

import torch

from .base import SimulatorCapacityError
from .warp_setup import mjw


class WarpCapacityError(SimulatorCapacityError):
    """A fixed-size Warp buffer (constraints, contacts, ...) overflowed: the physics is wrong."""


def _round_up(x: int, multiple: int) -> int:
    return -(-int(x) // multiple) * multiple


def capacity_error(flags: torch.Tensor, nefc: torch.Tensor, nacon: int, ncollision: int, *,
                   njmax: int, nconmax: int, naconmax: int) -> WarpCapacityError:
    """The error for per-world overflow `flags` [N] and constraint counts `nefc` [N], with the
    contact pool's `nacon`/`ncollision` counts; njmax/nconmax as configured, naconmax the pool."""
    num_envs = int(nefc.shape[0])
    bits = 0
    for value in flags.unique().tolist():
        bits |= int(value)
    max_nefc = int(nefc.max().item())
    worlds = sorted(set((flags != 0).nonzero().squeeze(-1).tolist()) | set((nefc > njmax).nonzero().squeeze(-1).tolist()))
    names = [f.name for f in mjw.OverflowType if f.name != "ALL" and f.value and bits & f.value]
    problems, overrides = [], {}
    if bits & int(mjw.OverflowType.NEFC) or max_nefc > njmax:
        need = overrides["sim.njmax"] = _round_up(max(max_nefc, njmax + 1) * 3 // 2, 32)
        problems.append(f"constraint rows: a world needed more than njmax={njmax} (nefc up to {max_nefc} at the "
                        f"end of the call); pass njmax={need} or more")
    contact_bits = int(mjw.OverflowType.BROADPHASE) | int(mjw.OverflowType.NARROWPHASE)
    if bits & contact_bits or max(nacon, ncollision) > naconmax:
        per_world = math.ceil(max(nacon, ncollision, naconmax + 1) / num_envs)
        need = overrides["sim.nconmax"] = _round_up(per_world * 2, 16)
        problems.append(f"contacts: more than nconmax={nconmax} per world on average (pool {naconmax} for "
                        f"{num_envs} worlds; {nacon} contacts, {ncollision} broadphase pairs); pass nconmax={need} or more")
    other = bits & ~(int(mjw.OverflowType.NEFC) | contact_bits)
    if other:
        other_names = [f.name for f in mjw.OverflowType if f.name != "ALL" and f.value and other & f.value]
        problems.append(f"other MuJoCo Warp buffers overflowed: {other_names}")
    where = f" in worlds {worlds[:16]}{' ...' if len(worlds) > 16 else ''}" if worlds else ""
    return WarpCapacityError(
        f"MuJoCo Warp buffer overflow ({', '.join(names) or 'counts'}){where}: " + "; ".join(problems)
        + ". The physics of the step is wrong; rebuild the simulator with larger buffers ("
        "`--override sim.njmax=...` / `--override sim.nconmax=...` for dhal commands, "
        "MujocoWarpSimulator(..., nconmax=..., njmax=...) in code).",
        overrides,
    )
