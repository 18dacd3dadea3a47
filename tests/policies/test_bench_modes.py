"""The mode-identification benchmark: metrics, determinism, a smoke run and one real check."""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import tyro

from dhal.policies.bench_modes import (EARLIER_DEFAULTS, EARLIER_DEFAULTS_FLAGS, BenchModesConfig, best_mapping,
                                       error_by_true_mode, run_modes_benchmark)

torch.set_num_threads(1)


def test_best_mapping_undoes_a_permutation() -> None:
    true = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0])
    pred = torch.tensor([2, 2, 0, 0, 1, 1, 0, 2])  # learned 2 = true 0, 0 = 1, 1 = 2; one error
    mapping, accuracy = best_mapping(pred, true, 3, 3)
    assert mapping == [1, 2, 0]
    assert accuracy == pytest.approx(7 / 8)
    mapping, accuracy = best_mapping(torch.zeros(8, dtype=torch.long), true, 1, 3)  # K=1: majority
    assert accuracy == pytest.approx(3 / 8) and mapping in ([0], [2])


def test_error_by_true_mode_averages_each_modes_samples_away_from_switches() -> None:
    errors = torch.tensor([1.0, 2.0, 9.0, 3.0, 5.0, 7.0])
    offsets = torch.tensor([-3, 5, 0, 2, -2, 1])  # the third and the last are at or next to a switch
    modes = torch.tensor([0, 0, 1, 1, 2, 2])
    assert error_by_true_mode(errors, offsets, modes) == [1.5, 3.0, 5.0]
    assert math.isnan(error_by_true_mode(errors, offsets, torch.zeros(6, dtype=torch.long))[2])  # no mode-2 sample


def test_smoke_run_returns_sane_results_and_writes_outputs(tmp_path) -> None:
    result = run_modes_benchmark(BenchModesConfig.smoke(out_dir=tmp_path))
    assert set(result.runs) == {1, 3}
    assert 0.0 <= result.chance_accuracy <= result.accuracy <= 1.0
    assert result.runs[1].accuracy == pytest.approx(result.chance_accuracy)
    assert math.isfinite(result.error_ratio) and result.error_ratio > 0
    for run in result.runs.values():
        assert math.isfinite(run.state_error) and run.state_error > 0
        assert sum(run.occupancy) == pytest.approx(1.0)
        assert len(run.loss_curve) == len(run.state_mse_curve) > 0
    assert len(result.timeline_true) == len(result.timeline_pred) > 0
    assert set(result.timeline_pred) <= {0, 1, 2}
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["accuracy"] == result.accuracy and set(payload["runs"]) == {"1", "3"}
    assert (tmp_path / "modes.png").stat().st_size > 10_000
    assert "mode accuracy" in result.summary()
    assert 0.0 < result.switch_step_fraction < 0.2 and 0.0 <= result.switch_step_accuracy <= 1.0
    # the default guard is a noise-free clock: every state dim but the guard carries the noise
    assert result.config["clocked_guard"]
    assert result.noise_floor == pytest.approx(result.config["process_noise"] ** 2 * (result.config["state_dim"] - 1))
    assert result.noise_floor < result.bayes_error < min(run.state_error for run in result.runs.values())
    k1, k3 = result.runs[1].state_error, result.runs[3].state_error
    assert result.error_ratio_above_bayes == pytest.approx((k1 - result.bayes_error) / (k3 - result.bayes_error))
    assert "above the best predictor from the history" in result.summary()
    assert set(result.error_by_switch_distance) == {1, 3}
    assert set(result.error_by_true_mode) == {1, 3} and all(len(v) == 3 for v in result.error_by_true_mode.values())
    assert "true mode 0 / 1 / 2" in result.summary()
    assert result.error_ratio_hedged == pytest.approx(result.runs[1].state_error / result.error_hedged)
    assert "weighted by the classifier" in result.summary()


def test_benchmark_is_deterministic_given_the_seed() -> None:
    cfg = BenchModesConfig.smoke(steps=20, train_sequences=4, test_sequences=2, sequence_length=60)
    rng_before = torch.get_rng_state()
    first, second = run_modes_benchmark(cfg), run_modes_benchmark(cfg)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is untouched
    for k in (1, 3):
        assert first.runs[k].loss_curve == second.runs[k].loss_curve
        assert first.runs[k].state_error == second.runs[k].state_error
    assert first.timeline_pred == second.timeline_pred
    other = run_modes_benchmark(BenchModesConfig.smoke(steps=20, train_sequences=4, test_sequences=2,
                                                       sequence_length=60, seed=1))
    assert other.runs[3].loss_curve != first.runs[3].loss_curve

    # another initialisation on the same system and data; init_seed == seed is the default run
    reinit = run_modes_benchmark(replace(cfg, init_seed=7))
    assert reinit.bayes_error == first.bayes_error and reinit.timeline_true == first.timeline_true
    assert reinit.runs[3].loss_curve != first.runs[3].loss_curve
    assert run_modes_benchmark(replace(cfg, init_seed=cfg.seed)).runs[3].loss_curve == first.runs[3].loss_curve


def test_assignment_reaches_the_model_and_leaves_k1_unchanged() -> None:
    small = dict(steps=20, train_sequences=4, test_sequences=2, sequence_length=60)
    dhal = run_modes_benchmark(BenchModesConfig.smoke(assignment="straight_through", learned_noise=False, **small))
    posterior = run_modes_benchmark(BenchModesConfig.smoke(assignment="posterior", learned_noise=False, **small))
    assert posterior.config["assignment"] == "posterior"
    assert posterior.runs[3].loss_curve != pytest.approx(dhal.runs[3].loss_curve, rel=1e-3)
    # with one expert the assignments coincide (up to float rounding), so the baseline is the same run
    assert posterior.runs[1].loss_curve == pytest.approx(dhal.runs[1].loss_curve, rel=1e-5)
    assert posterior.runs[1].state_error == pytest.approx(dhal.runs[1].state_error, rel=1e-5)


def test_fresh_data_replaces_the_training_set_the_same_way_for_both_models(monkeypatch) -> None:
    from dhal.policies import bench_modes

    small = dict(steps=25, train_sequences=4, test_sequences=2, sequence_length=60)
    drawn: list[tuple[int, float]] = []
    make_dataset = bench_modes.make_dataset

    def recording_make_dataset(cfg, system, num_sequences, generator):
        data = make_dataset(cfg, system, num_sequences, generator)
        drawn.append((num_sequences, float(data.histories.sum())))
        return data

    monkeypatch.setattr(bench_modes, "make_dataset", recording_make_dataset)
    fresh = run_modes_benchmark(BenchModesConfig.smoke(fresh_data_every=10, **small))
    # the fixed train and test sets, then two fresh sets (steps 10 and 20) per model, K=3 first
    assert [n for n, _ in drawn] == [4, 2, 4, 4, 4, 4]
    sums = [total for _, total in drawn]
    assert sums[2:4] == sums[4:6] and sums[2] != sums[3] and sums[0] not in sums[2:]
    monkeypatch.setattr(bench_modes, "make_dataset", make_dataset)
    fixed = run_modes_benchmark(BenchModesConfig.smoke(**small))
    assert fresh.runs[1].loss_curve[:2] == pytest.approx(fixed.runs[1].loss_curve[:2])  # same first 10 steps
    assert fresh.runs[1].state_error != pytest.approx(fixed.runs[1].state_error, rel=1e-4)

def test_k3_identifies_the_true_modes_on_a_small_slds() -> None:
    """Can fail: unsupervised mode discovery must recover the 3 true modes well above chance (~0.36).

    Measured at this size (600 steps, ~10 s): seeds 0-9 all reach 0.93-0.96 with load balancing 1.0;
    with DHAL's loss alone (load_balance_weight=0) seeds 2 and 3 merge two modes (~0.65), so seed 2
    also checks that the load-balancing term does its job.

    It also checks the benchmark's diagnosis of its error ratio: the switch steps dominate the error
    (measured for seeds 0-5 at this size: 4.4-10.9 there against 0.54-0.87 elsewhere). K=3 is not
    asserted to beat K=1: at this size their ratio is 0.89-1.18 over those seeds.
    """
    result = run_modes_benchmark(BenchModesConfig.smoke(**{**EARLIER_DEFAULTS, **dict(
        seed=2, steps=600, train_sequences=32, test_sequences=8, sequence_length=200, baseline=False)}))
    assert result.accuracy >= 0.85, result.summary()
    assert min(result.runs[3].occupancy) > 0.2
    errors = result.error_by_switch_distance[3]
    assert errors["switch"] > 3 * errors["elsewhere"], errors


def test_a_clocked_guard_lets_the_classifier_find_the_switch_steps() -> None:
    """Can fail: the finding of docs/results/bench_modes.md that a noise-free clock, not more training,
    is what lets the posterior classifier place the guards. Measured at this size (600 steps, no jumps,
    ~11 s each), seeds 0-5, switch-step accuracy clocked / noisy: 0.84/0.72, 0.95/0.61, 0.57/0.38,
    0.64/0.51, 0.97/0.79, 0.93/0.44 (seed 2's low clocked value is the harmless relabelling described there)."""
    def switch_accuracy(clocked: bool) -> float:
        result = run_modes_benchmark(BenchModesConfig.smoke(**{**EARLIER_DEFAULTS, **dict(
            seed=1, steps=600, train_sequences=32, test_sequences=8, sequence_length=200, baseline=False,
            clocked_guard=clocked, jump_prob=0.0, assignment="posterior", learned_noise=True)}))
        assert result.accuracy > 0.95, result.summary()
        return result.switch_step_accuracy

    clocked, noisy = switch_accuracy(True), switch_accuracy(False)
    assert clocked > 0.85 and noisy < 0.75, (clocked, noisy)


@pytest.mark.parametrize(("option", "message"), [
    ({"num_modes": 1}, "num_modes must be >= 2"),
    ({"assignment": "soft"}, "assignment must be one of"),
    ({"history_length": 3}, "history_length=3 is too short for the 1-D CNN history encoder"),
    ({"fresh_data_every": -1}, "fresh_data_every must be >= 0"),
    ({"sequence_length": 12}, "must exceed history_length"),
    ({"contact_dim": 12}, "contact_dim (12) must be <= state_dim - 1 (11)"),
    ({"clocked_guard": True, "guard": 0.98}, "guard (0.98) to be a whole multiple of fall_speed (0.05)"),
    ({"jump_prob": 1.5}, "jump_prob is a probability per step, in [0, 1], got 1.5"),
    ({"jump_prob": -0.01}, "jump_prob is a probability per step, in [0, 1], got -0.01"),
    ({"process_noise": -0.1}, "process_noise must be >= 0, got -0.1"),
])
def test_bad_options_are_refused_before_any_work(option, message) -> None:
    with pytest.raises(ValueError) as error:
        run_modes_benchmark(BenchModesConfig.smoke(**option))
    assert message in str(error.value)



def test_supervised_reference_is_reported_against_the_same_k1() -> None:
    result = run_modes_benchmark(BenchModesConfig.smoke(seed=1, supervised_reference=True))
    ref = result.supervised_reference
    assert ref is not None and 0.0 <= ref.switch_step_accuracy <= 1.0 and ref.accuracy > result.chance_accuracy
    assert ref.ratio_true_modes == pytest.approx(result.runs[1].state_error / ref.error_true_modes)
    assert ref.ratio_classifier == pytest.approx(result.runs[1].state_error / ref.error_classifier)
    assert set(ref.error_by_switch_distance) == {"true_modes", "classifier"}
    assert "supervised reference" in result.summary()
    plain = run_modes_benchmark(BenchModesConfig.smoke(seed=1))
    assert plain.supervised_reference is None and plain.runs[3].loss_curve == result.runs[3].loss_curve


def test_supervised_reference_needs_the_systems_mode_count() -> None:
    with pytest.raises(ValueError, match="supervised_reference needs num_modes = the system's 3 modes, got 4"):
        BenchModesConfig.smoke(num_modes=4, supervised_reference=True).validate()


def test_cosine_decay_reaches_the_optimiser(monkeypatch) -> None:
    rates: list[float] = []
    step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    cfg = BenchModesConfig.smoke(cosine_decay=True, baseline=False, steps=40)
    run_modes_benchmark(cfg)
    assert rates[0] == pytest.approx(cfg.learning_rate) and rates[-1] < 0.01 * cfg.learning_rate
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_the_earlier_defaults_flags_give_the_earlier_defaults() -> None:
    """The flags BENCHMARKS.md and docs/results/bench_modes.md put before every run recorded under the
    earlier defaults must rebuild exactly those defaults through the CLI."""
    parsed = tyro.cli(BenchModesConfig, args=shlex.split(EARLIER_DEFAULTS_FLAGS))
    assert parsed == replace(BenchModesConfig(), **EARLIER_DEFAULTS)  # type: ignore[arg-type]
    assert parsed != BenchModesConfig()
    repo = Path(__file__).resolve().parents[2]
    for doc in ("BENCHMARKS.md", "docs/results/bench_modes.md"):
        assert EARLIER_DEFAULTS_FLAGS in (repo / doc).read_text(), doc
