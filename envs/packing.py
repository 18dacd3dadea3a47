"""Row-wise operations on batched [N, ...] tensors: several as one [N, total] table and back, so
that copying or masking them all is one operation (one kernel on a GPU) instead of one per
tensor, and whole rows picked or zeroed by an [N] mask."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def pack_rows(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """[N, total]: each tensor's rows flattened, side by side (a new tensor)."""
    return torch.cat([t.reshape(t.shape[0], -1) for t in tensors], dim=1)


def unpack_rows(table: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Views of `table` (as `pack_rows(like)` lays it out), each shaped as its tensor in `like`."""
    views, start = [], 0
    for t in like:
        width = math.prod(t.shape[1:])
        views.append(table[:, start:start + width].view(t.shape))
        start += width
    return views


def row_mask(rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The mask `rows` [N] shaped to pick whole rows of `values` [N, ...]."""
    return rows.view(-1, *(1,) * (values.ndim - 1))


def zero_rows(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """`values` [N, ...] with the rows of the mask `rows` [N] set to 0 (NaN included)."""
    return torch.where(row_mask(rows, values), 0.0, values)
