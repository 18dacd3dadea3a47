"""Pure statistics the learner logs: normalised mutual information and contact-pattern labels."""

from __future__ import annotations

import torch
from torch import Tensor


def contact_pattern_labels(contacts: Tensor) -> Tensor:
    """Binary contacts [..., C] (any dtype, > 0.5 = contact) -> integer labels [...] in [0, 2**C).

    Foot i contributes bit i, e.g. DHAL's 3 free feet give an 8-way contact phase."""
    bits = (contacts > 0.5).long()
    weights = 2 ** torch.arange(bits.shape[-1], device=bits.device)
    return (bits * weights).sum(-1)


def normalized_mutual_information(a: Tensor, b: Tensor) -> float:
    """NMI of two integer labellings of the same samples, arithmetic normalisation:
    I(a; b) / ((H(a) + H(b)) / 2), in [0, 1] (scikit-learn's default definition).

    Degenerate cases follow scikit-learn: both labellings constant -> 1.0; one constant -> 0.0.
    """
    a = torch.as_tensor(a).detach().reshape(-1).long().cpu()
    b = torch.as_tensor(b).detach().reshape(-1).long().cpu()
    if a.numel() != b.numel():
        raise ValueError(f"labellings differ in size: {a.numel()} vs {b.numel()}")
    if a.numel() == 0:
        raise ValueError("labellings are empty")
    _, a_idx = torch.unique(a, return_inverse=True)
    _, b_idx = torch.unique(b, return_inverse=True)
    na, nb = int(a_idx.max()) + 1, int(b_idx.max()) + 1
    if na == 1 and nb == 1:
        return 1.0
    joint = torch.zeros(na * nb, dtype=torch.float64)
    joint.index_add_(0, a_idx * nb + b_idx, torch.ones(a.numel(), dtype=torch.float64))
    joint = joint.reshape(na, nb) / a.numel()
    pa, pb = joint.sum(1), joint.sum(0)
    h_a = -(pa * pa.log()).sum()
    h_b = -(pb * pb.log()).sum()
    nz = joint > 0
    mi = (joint[nz] * (joint[nz] / (pa[:, None] * pb[None, :])[nz]).log()).sum()
    denom = (h_a + h_b) / 2
    if denom <= 0 or mi <= 0:
        return 0.0
    return float((mi / denom).clamp(0.0, 1.0))
