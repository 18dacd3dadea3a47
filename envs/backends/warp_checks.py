"""What the Warp backend checks after stepping: diverged worlds, EPA faults and buffer overflows.

Warp has no warning counters and only printf's "nefc overflow", carrying on with wrong physics.
`find_problems` classifies its per-world state, overflow flags and counts on the device (a pure
function, so it can be compiled); `capacity_error` is the error an undersized buffer calls for,
naming the setting to raise and a value that fits.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .base import SimulatorCapacityError
from .warp_setup import mjw

__all__ = ["BAD_WARNINGS", "MAXVAL", "Problems", "WarpCapacityError", "capacity_error", "find_problems"]

MAXVAL = 1e10  # MuJoCo's mjMAXVAL: larger |qpos|, |qvel|, |qacc| counts as diverged
_SOLVER_LIMIT_FLAGS = int(mjw.OverflowType.ITERATIONS) | int(mjw.OverflowType.LS_ITERATIONS)
# EPA's horizon is a constant compiled into Warp (MJ_MAX_EPAHORIZON edges), not a buffer anyone
# can size: when a degenerate convex pair needs more, Warp drops that pair's contact for the
# substep. Rare (one world in a 45 s, 4,096-env run on an H200), and local to its world.
_FAULT_FLAGS = int(mjw.OverflowType.EPA_HORIZON)
_CAPACITY_FLAGS = int(mjw.OverflowType.ALL) & ~(_SOLVER_LIMIT_FLAGS | _FAULT_FLAGS)
BAD_WARNINGS = ("mjWARN_BADQPOS", "mjWARN_BADQVEL", "mjWARN_BADQACC", "warp_EPA_HORIZON")


class Problems(NamedTuple):
    """Device-side findings of the steps since the last check, per world unless noted."""

    kinds: torch.Tensor  # [N, 4] bool: bad qpos, bad qvel, bad qacc, EPA fault (BAD_WARNINGS' order)
    capacity_flags: torch.Tensor  # [N] Warp overflow bits of undersized buffers
    counts_over: torch.Tensor  # [] bool: a constraint or contact count passed its buffer
    diverged: torch.Tensor  # [N] bool: worlds whose physics can no longer be trusted (any kind)


def find_problems(qpos: torch.Tensor, qvel: torch.Tensor, qacc: torch.Tensor, overflow: torch.Tensor,
                  nefc: torch.Tensor, nacon: torch.Tensor, ncollision: torch.Tensor, njmax: int, naconmax: int,
                  earlier: Problems) -> Problems:
    """The problems of Warp's current data (its per-world state, overflow flags and counts),
    or-ed with `earlier`: a pure function of tensors, so it can be compiled."""
    kinds = earlier.kinds | torch.stack((
        ~(qpos.abs() < MAXVAL).all(dim=1),  # NaN compares False
        ~(qvel.abs() < MAXVAL).all(dim=1),
        ~(qacc.abs() < MAXVAL).all(dim=1),
        (overflow & _FAULT_FLAGS) != 0,
    ), dim=-1)
    return Problems(
        kinds=kinds,
        capacity_flags=earlier.capacity_flags | (overflow & _CAPACITY_FLAGS),
        counts_over=earlier.counts_over | (nefc > njmax).any() | (nacon[0] > naconmax) | (ncollision[0] > naconmax),
        diverged=kinds.any(-1),
    )


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
