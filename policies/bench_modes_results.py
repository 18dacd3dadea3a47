"""What `dhal bench modes` returns: per-model results, the supervised reference, the whole result and its summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dhal.policies.dead_modes import DeadMode

GOAL_ACCURACY = 0.95
GOAL_ERROR_RATIO = 2.0


@dataclass
class ModeRunResult:
    num_modes: int
    accuracy: float  # after the best relabelling (K=1: the majority class)
    state_error: float  # deterministic path, held-out, sum over dims, mean over samples
    contact_accuracy: float
    occupancy: list[float]  # argmax occupancy on held-out data, per learned mode
    mapping: list[int]  # learned mode -> true mode
    confusion: list[list[int]]  # [true][learned]
    train_seconds: float
    loss_curve: list[float]  # total loss, averaged per logging interval
    state_mse_curve: list[float]  # training selected_state_mse (DHAL Fig. 7's metric)
    eval_curve: list[tuple[int, float, float]] = field(default_factory=list)  # (step, accuracy, state_error)
    restarts: list[DeadMode] = field(default_factory=list)  # restart_dead_modes: the dead experts that restarted it


@dataclass
class SupervisedReference:
    """K=num_modes trained with the true modes (`supervised_reference`)."""

    accuracy: float  # its classifier, trained on the labels
    switch_step_accuracy: float
    error_true_modes: float  # each sample decoded by its true mode's expert
    error_classifier: float  # decoded by the expert its classifier picks (the deterministic path)
    ratio_true_modes: float  # K=1 error / error_true_modes
    ratio_classifier: float  # K=1 error / error_classifier
    error_by_switch_distance: dict[str, dict[str, float]]  # "true_modes" / "classifier" -> parts


@dataclass
class BenchModesResult:
    accuracy: float
    error_ratio: float
    error_ratio_mode_right: float  # the same ratio on the held-out samples whose mode K=num_modes gets right
    error_mode_right: float  # K=num_modes error on those samples
    error_mode_wrong: float  # and on the others (a wrong expert)
    # beyond DHAL: the experts weighted by the classifier's probabilities (HybridModes.predict_hedged)
    error_hedged: float
    error_ratio_hedged: float  # K=1 error / error_hedged
    noise_floor: float  # process_noise^2 * state_dim: the expected error of the true model given the true mode
    # the error of the best predictor from the history on the same samples (slds.bayes_error): the
    # noise plus the Markov jumps no history foretells, a floor that every K shares
    bayes_error: float
    error_ratio_above_bayes: float  # (K=1 error - bayes_error) / (K=num_modes error - bayes_error)
    switch_step_fraction: float  # held-out samples whose transition is the first of a new mode
    switch_step_accuracy: float  # K=num_modes mode accuracy on those samples
    error_by_switch_distance: dict[int, dict[str, float]]  # K -> {"switch", "adjacent", "elsewhere"}: mean error
    # K -> mean error away from switches (more than a step) on each true mode's samples: which expert lags K=1
    error_by_true_mode: dict[int, list[float]]
    chance_accuracy: float
    oracle_accuracy: float
    runtime_s: float
    accuracy_goal_met: bool
    error_ratio_goal_met: bool
    runs: dict[int, ModeRunResult]
    config: dict[str, Any]
    timeline_true: list[int]
    timeline_pred: list[int]  # K=num_modes predictions on one test sequence, relabelled
    supervised_reference: SupervisedReference | None = None

    def summary(self) -> str:
        k = max(self.runs)
        lines = [
            f"mode accuracy (K={k}, best relabelling): {self.accuracy:.3f}  goal >= {GOAL_ACCURACY}  "
            f"(chance {self.chance_accuracy:.3f}, identifiable {self.oracle_accuracy:.3f})",
        ]
        if 1 in self.runs:
            lines.append(f"next-state error K=1 / K={k}: {self.runs[1].state_error:.4f} / "
                         f"{self.runs[k].state_error:.4f} = {self.error_ratio:.2f}  goal >= {GOAL_ERROR_RATIO}")
            lines.append(f"  on samples with the right mode: ratio {self.error_ratio_mode_right:.2f}; K={k} error "
                         f"{self.error_mode_right:.4f} there, {self.error_mode_wrong:.4f} where the mode is wrong")
            lines.append(f"  above the best predictor from the history (error {self.bayes_error:.4f}: noise "
                         f"{self.noise_floor:.4f} and unforeseeable jumps): ratio {self.error_ratio_above_bayes:.2f}")
            lines.append(f"  beyond DHAL, experts weighted by the classifier's probabilities: error "
                         f"{self.error_hedged:.4f}, ratio {self.error_ratio_hedged:.2f}")
        lines.append(f"  switch steps ({self.switch_step_fraction:.3f} of samples): K={k} mode accuracy "
                     f"{self.switch_step_accuracy:.2f} there")
        for kk, parts in sorted(self.error_by_switch_distance.items(), reverse=True):
            lines.append(f"  K={kk} error at the switch step / one step away / elsewhere: "
                         f"{parts['switch']:.3f} / {parts['adjacent']:.3f} / {parts['elsewhere']:.3f}")
        for kk, per_mode in sorted(self.error_by_true_mode.items(), reverse=True):
            lines.append(f"  K={kk} error away from switches, true mode 0 / 1 / 2: "
                         + " / ".join(f"{e:.3f}" for e in per_mode))
        if 1 not in self.runs:
            lines.append(f"next-state error K={k}: {self.runs[k].state_error:.4f} (no K=1 baseline)")
        if self.supervised_reference is not None:
            ref = self.supervised_reference
            lines.append(f"supervised reference (K={k} trained on the true modes): error {ref.error_true_modes:.4f} with "
                         f"the true mode (K=1 ratio {ref.ratio_true_modes:.2f}), {ref.error_classifier:.4f} with its "
                         f"classifier (ratio {ref.ratio_classifier:.2f}; accuracy {ref.accuracy:.3f}, "
                         f"{ref.switch_step_accuracy:.2f} on switch steps)")
        lines += [
            f"occupancy K={k}: {[round(o, 3) for o in self.runs[k].occupancy]}",
            *(f"  restarted at step {dead.step}: expert {dead.mode} was the classifier's pick for {dead.share:.3f} "
              f"of the samples" for dead in self.runs[k].restarts),
            f"runtime {self.runtime_s:.1f} s",
        ]
        return "\n".join(lines)
