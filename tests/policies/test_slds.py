"""The switching linear system behind `dhal bench modes`: data layout, mode cycle, switch offsets."""

from __future__ import annotations

import pytest
import torch

from dhal.policies.slds import (SLDSConfig, bayes_error, expected_next_state, make_dataset, make_system,
                               switch_offsets)

SMALL = SLDSConfig(train_sequences=16, test_sequences=4, sequence_length=120)


def test_slds_data_is_consistent() -> None:
    cfg = SMALL
    g = torch.Generator().manual_seed(0)
    data = make_dataset(cfg, make_system(cfg, g), 4, g)
    f = cfg.state_dim + cfg.input_dim
    sequences, windows = data.sequence_shape
    assert data.histories.shape == (sequences * windows, cfg.history_length * f)
    # the next window's newest frame holds the state this window predicts
    newest_state = data.histories[:, -f:-cfg.input_dim].view(sequences, windows, cfg.state_dim)
    assert torch.allclose(newest_state[:, 1:], data.next_state.view(sequences, windows, -1)[:, :-1])
    assert torch.equal(data.next_contacts, (data.next_state[:, 1:1 + cfg.contact_dim] > 0).float())
    occupancy = torch.bincount(data.modes, minlength=3).float() / data.modes.numel()
    assert (occupancy > 0.2).all(), occupancy  # every true mode is well represented
    assert 0.95 < float(data.identifiable.float().mean()) <= 1.0
    # modes follow the cycle 0 -> 1 -> 2 -> 0 (a Markov jump is 0 -> 1 as well)
    modes = data.modes.view(sequences, windows)
    changed = modes[:, 1:] != modes[:, :-1]
    assert torch.equal(modes[:, 1:][changed], (modes[:, :-1][changed] + 1) % 3)


def test_switch_offsets_count_steps_to_the_nearest_switch() -> None:
    cfg = SMALL
    g = torch.Generator().manual_seed(0)
    data = make_dataset(cfg, make_system(cfg, g), 2, g)
    data.modes = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2])  # two sequences of 8
    data.sequence_shape = (2, 8)
    offsets = switch_offsets(data).view(2, 8)
    assert offsets[0].tolist() == [-3, -2, -1, 0, 1, 2, -1, 0]
    assert (offsets[1] >= 10**6).all()  # no switch in the second sequence


def test_the_noise_floor_is_the_process_noise_summed_over_state_dims() -> None:
    assert SLDSConfig(state_dim=6, process_noise=0.02).noise_floor() == pytest.approx(0.0024)


def test_a_clocked_guard_moves_by_whole_ticks_and_switches_exactly_at_the_guards() -> None:
    cfg = SLDSConfig(train_sequences=16, test_sequences=4, sequence_length=120, clocked_guard=True)
    g = torch.Generator().manual_seed(0)
    data = make_dataset(cfg, make_system(cfg, g), 8, g)
    sequences, windows = data.sequence_shape
    s = data.histories.view(sequences, windows, cfg.history_length, -1)[:, :, -1, 0]  # s_t of each window
    ticks = s / cfg.fall_speed
    assert torch.allclose(ticks, ticks.round(), atol=1e-4)  # on the lattice, no noise
    steps = (ticks[:, 1:] - ticks[:, :-1]).round()
    assert set(steps.unique().tolist()) == {-1.0, 2.0}  # fall one tick, rise two
    modes = data.modes.view(sequences, windows)
    before, after = modes[:, :-1], modes[:, 1:]
    identifiable = data.identifiable.view(sequences, windows)[:, 1:]
    s_new = s[:, 1:]
    # the guard a transition starts at fires on s_t alone, to the tick
    assert (s_new[(before == 0) & (after == 1) & identifiable] >= cfg.guard - 1e-4).all()
    assert (s_new[(before == 0) & (after == 0)] < cfg.guard - 1e-4).all()
    assert (s_new[(before == 1) & (after == 2)] <= 1e-4).all()
    assert (s_new[(before == 1) & (after == 1)] > 1e-4).all()
    assert (s_new[(before == 2) & (after == 0)] <= -cfg.guard + 1e-4).all()
    assert ((before == 0) & (after == 1) & identifiable).any() and ((before == 2) & (after == 0)).any()
    assert cfg.noise_floor() == pytest.approx(cfg.process_noise ** 2 * (cfg.state_dim - 1))


def test_a_clock_needs_the_guard_and_rise_on_its_lattice() -> None:
    with pytest.raises(ValueError, match=r"guard \(1.03\) to be a whole multiple of fall_speed \(0.05\)"):
        make_system(SLDSConfig(clocked_guard=True, guard=1.03), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"rise_speed \(0.12\)"):
        make_system(SLDSConfig(clocked_guard=True, rise_speed=0.12), torch.Generator().manual_seed(0))


def test_without_jumps_the_best_prediction_from_the_history_errs_by_the_noise_alone() -> None:
    cfg = SLDSConfig(sequence_length=400, clocked_guard=True, jump_prob=0.0)
    g = torch.Generator().manual_seed(0)
    data = make_dataset(cfg, make_system(cfg, g), 16, g)
    residual = data.next_state - data.bayes_next_state
    assert residual[:, 0].abs().max() < 1e-4  # the clock has no noise
    assert residual[:, 1:].std(0) == pytest.approx(torch.full((cfg.state_dim - 1,), cfg.process_noise), rel=0.05)
    assert bayes_error(data) == pytest.approx(cfg.noise_floor(), rel=0.05)


def test_where_a_jump_may_start_the_best_prediction_is_the_expectation_over_it() -> None:
    # a jump on half the glide steps: predicting glide there is biased, the mixture is not
    cfg = SLDSConfig(sequence_length=400, clocked_guard=True, jump_prob=0.5)
    g = torch.Generator().manual_seed(1)
    system = make_system(cfg, g)
    data = make_dataset(cfg, system, 16, g)
    sequences, windows = data.sequence_shape
    state = data.histories.view(sequences * windows, cfg.history_length, -1)[:, -1]
    x, u = state[:, :cfg.state_dim], state[:, cfg.state_dim:]
    glide = expected_next_state(system, x, u, torch.zeros_like(data.modes))
    true_mode = expected_next_state(system, x, u, data.modes)
    may_jump = (data.bayes_next_state - true_mode).abs().sum(-1) > 1e-6  # elsewhere the history tells the mode
    assert 0.05 < float(may_jump.float().mean()) < 0.5, float(may_jump.float().mean())
    assert (~data.identifiable <= may_jump).all()  # every jump happened where one could
    bayes_bias = (data.next_state - data.bayes_next_state)[may_jump].mean(0)
    glide_bias = (data.next_state - glide)[may_jump].mean(0)
    assert bayes_bias.norm() < 0.2 * glide_bias.norm()
    assert bayes_error(data) > 10 * cfg.noise_floor()  # unforeseeable jumps cost any predictor
