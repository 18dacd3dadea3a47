import json

import pytest
import torch

from dhal.envs.contract import Contract, go1_contract
from dhal.envs.robots import go1


def test_dhal_frame_layout():
    c = go1_contract()
    assert c.frame_size == 48
    assert c.history_size == 960
    assert c.dynamics_size == 33
    assert c.term_slice("command") == slice(8, 11)
    assert c.term_slice("phase") == slice(47, 48)
    assert c.joint_names == go1.JOINT_NAMES


def test_build_frame_scales_and_orders_terms():
    c = go1_contract()
    values = {t.name: torch.full((2, t.size), float(i + 1)) for i, t in enumerate(c.frame_terms)}
    frame = c.build_frame(values)
    assert frame.shape == (2, 48)
    assert torch.allclose(frame[:, c.term_slice("base_ang_vel")], torch.full((2, 3), 2.0 * 0.25))
    assert torch.allclose(frame[:, c.term_slice("command")], torch.tensor([[8.0, 8.0, 1.0]] * 2))
    assert torch.allclose(frame[:, c.term_slice("joint_vel")], torch.full((2, 12), 6.0 * 0.05))


def test_noise_only_on_noisy_terms_and_reproducible():
    c = go1_contract()
    values = {t.name: torch.zeros(1000, t.size) for t in c.frame_terms}
    a = c.build_frame(values, noise=True, generator=torch.Generator().manual_seed(3))
    b = c.build_frame(values, noise=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.all(a[:, c.term_slice("command")] == 0)
    assert torch.all(a[:, c.term_slice("last_action")] == 0)
    std = a[:, c.term_slice("base_ang_vel")].std()
    assert abs(float(std) - 0.4 * 0.25) < 0.01  # noise is added before scaling


def test_wrong_term_size_and_missing_term_are_named():
    c = go1_contract()
    values = {t.name: torch.zeros(1, t.size) for t in c.frame_terms}
    values["joint_pos"] = torch.zeros(1, 11)
    with pytest.raises(ValueError, match="joint_pos"):
        c.build_frame(values)
    del values["joint_pos"]
    with pytest.raises(KeyError, match="joint_pos"):
        c.build_frame(values)


def test_joint_targets_clip_and_offset():
    c = go1_contract()
    targets = c.joint_targets(torch.full((1, 12), 10.0))
    assert torch.allclose(targets, torch.tensor(go1.DEFAULT_POSE) + 0.75)
    with pytest.raises(ValueError, match="12 joints"):
        c.joint_targets(torch.zeros(1, 11))


def test_roundtrip_and_digest():
    c = go1_contract()
    again = Contract.from_dict(json.loads(c.to_json()))
    assert again == c
    assert again.digest() == c.digest()
    assert go1_contract(clock_period=2.5).digest() != c.digest()


def test_unknown_noise_term_is_rejected():
    with pytest.raises(KeyError, match="joint_torque"):
        go1_contract(noise={"joint_torque": 0.1})


def test_build_frames_share_values_and_dynamics_slice_matches():
    c = go1_contract()
    gen = torch.Generator().manual_seed(0)
    values = {t.name: torch.randn(5, t.size, generator=gen) for t in c.frame_terms}
    noisy, clean = c.build_frames(values, generator=torch.Generator().manual_seed(1))
    assert torch.equal(clean, c.build_frame(values))
    assert torch.equal(c.dynamics_from_frame(clean), c.dynamics_state(values))
    diff = noisy - clean
    for t in c.frame_terms:
        moved = bool(diff[:, c.term_slice(t.name)].abs().max() > 0)
        assert moved == (t.noise_std > 0), t.name
