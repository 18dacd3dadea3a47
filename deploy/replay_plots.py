"""The plots of `dhal replay`: joints against targets, the mode timeline, timing, open-loop divergence.

Times are seconds from the log's start (`ReplayLog.start_ns`) on the policy node's clock: message
log times for what was received or published, so that a target and the state it answers line up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dhal.deploy import topics
from dhal.deploy.replay import ReplayLog
from dhal.deploy.replay_sim import OpenLoopSeries
from dhal.deploy.safety_types import FsmState
from dhal.deploy.topics import RobotMode
from dhal.envs.robots import go1
from dhal.policies.plotting import mode_colours, pyplot_agg

DPI = 100


def _seconds(log: ReplayLog, log_time_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    return (log_time_ns - log.start_ns()) / 1e9


def _save(plt: Any, figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def plot_joints(log: ReplayLog, path: Path) -> Path:
    """One panel per joint, a row per leg: measured position, published target and, where they differ
    (dry run, clamps), the policy's own target."""
    plt = pyplot_agg()
    names = log.contract.joint_names
    position, _, valid = log.joint_states.in_order(names)
    state_time = _seconds(log, log.joint_states.log_time_ns)[valid]
    legs = [leg for leg in go1.LEGS if any(n.startswith(f"{leg}_") for n in names)] or ["all"]
    columns = max(1, -(-len(names) // len(legs)))
    figure, axes = plt.subplots(len(legs), columns, figsize=(4.2 * columns, 2.4 * len(legs)), sharex=True,
                                squeeze=False)
    steps = log.steps
    step_time = _seconds(log, steps.log_time_ns)
    for j, name in enumerate(names):
        axis = axes[j // columns, j % columns]
        axis.plot(state_time, position[valid, j], color="C0", linewidth=1.0, label="measured")
        if log.targets is not None:
            axis.step(_seconds(log, log.targets.log_time_ns), log.targets.values[:, j], where="post", color="C3",
                      linewidth=0.9, label="target")
        if steps.policy_targets.shape[1] == len(names):
            axis.step(step_time, steps.policy_targets[:, j], where="post", color="C2", linewidth=0.8,
                      linestyle=":", label="policy target")
        axis.set_title(name, fontsize=9)
        axis.grid(alpha=0.3)
        axis.tick_params(labelbottom=True, labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="best")
    for axis in axes[-1]:
        axis.set_xlabel("time (s)")
    figure.suptitle(f"{log.path.name}: joint positions (rad) and targets")
    return _save(plt, figure, path)


def _enum_step(axis: Any, time: npt.NDArray[np.float64], values: npt.NDArray[Any], labels: dict[int, str],
               **style: Any) -> None:
    axis.step(time, values, where="post", **style)
    axis.set_yticks(list(labels), list(labels.values()), fontsize=7)
    axis.set_ylim(min(labels) - 0.5, max(labels) + 0.5)


def plot_modes(log: ReplayLog, path: Path) -> Path:
    """Mode probabilities (stacked, argmax strip), the FSM state, requested and reported robot mode,
    and the velocity command."""
    plt = pyplot_agg()
    steps = log.steps
    time = _seconds(log, steps.log_time_ns)
    figure, axes = plt.subplots(4, 1, figsize=(12, 9), sharex=True, height_ratios=(3, 2, 2, 2))
    ax_probs, ax_fsm, ax_robot, ax_command = axes
    probs = steps.mode_probs
    rows = np.asarray(~np.isnan(probs).any(axis=1), dtype=bool) if probs.shape[1] else np.zeros(len(steps), dtype=bool)
    if rows.any():
        num_modes = probs.shape[1]
        colours = np.asarray(mode_colours(num_modes))
        # NaN where the policy did not run, so the bands leave gaps instead of bridging them.
        shown = np.where(rows[:, None], probs, np.nan)
        ax_probs.stackplot(time, np.nan_to_num(shown).T, colors=colours, step="post", alpha=0.85,
                           labels=[f"mode {k}" for k in range(num_modes)])
        argmax = np.argmax(np.nan_to_num(shown), axis=1)
        for k in range(num_modes):
            strip = rows & (argmax == k)
            ax_probs.fill_between(time, 1.05, 1.2, where=strip, step="post", color=colours[k], linewidth=0)
        ax_probs.set_ylim(0.0, 1.25)
        ax_probs.legend(fontsize=7, ncol=num_modes, loc="upper left")
        ax_probs.set_ylabel("mode prob.\n(strip: argmax)")
    else:
        ax_probs.text(0.5, 0.5, "the policy never ran", ha="center", va="center", transform=ax_probs.transAxes)
    _enum_step(ax_fsm, time, steps.fsm_state.astype(np.int64), {s.value: s.name for s in FsmState}, color="k")
    ax_fsm.set_ylabel("FSM state")
    labels = {m.value: m.name for m in RobotMode}
    _enum_step(ax_robot, time, steps.robot_mode.astype(np.int64), labels, color="C0", label="requested")
    reported = log.run.topics.get(topics.ROBOT_MODE.name)
    if reported is not None and len(reported):
        values = np.array([int(m.data) for m in reported.messages])
        end = max(float(time[-1]), float(_seconds(log, reported.log_time_ns)[-1]))
        ax_robot.step(np.append(_seconds(log, reported.log_time_ns), end), np.append(values, values[-1]),
                      where="post", color="C1", linestyle="--", label="reported (/go1/mode)")
    ax_robot.set_ylabel("robot mode")
    ax_robot.legend(fontsize=7, loc="upper left")
    command = steps.command
    for k, (label, colour) in enumerate((("vx (m/s)", "C0"), ("vy (m/s)", "C2"), ("yaw rate (rad/s)", "C1"))):
        if command.shape[1] > k:
            ax_command.step(time, command[:, k], where="post", color=colour, label=label)
    ax_command.set_ylabel("command")
    ax_command.legend(fontsize=7, loc="upper left")
    ax_command.set_xlabel("time (s)")
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.suptitle(f"{log.path.name}: modes")
    return _save(plt, figure, path)


def plot_timing(log: ReplayLog, path: Path) -> Path:
    """Per step, over time and as a histogram: inference time, age of the state acted on, and the
    period between steps."""
    plt = pyplot_agg()
    steps = log.steps
    time = _seconds(log, steps.log_time_ns)
    series = (("inference_ms", "inference (ms)"), ("state_age_ms", "state age (ms)"),
              ("loop_period_ms", "step period (ms)"))
    figure, axes = plt.subplots(len(series), 2, figsize=(12, 2.6 * len(series)), width_ratios=(3, 1),
                                squeeze=False, sharex="col")
    for row, (name, label) in enumerate(series):
        values = getattr(steps, name)
        finite = np.isfinite(values)
        ax_time, ax_hist = axes[row]
        ax_time.plot(time[finite], values[finite], ".", markersize=2, color=f"C{row}")
        ax_time.set_ylabel(label)
        ax_time.grid(alpha=0.3)
        ax_time.ticklabel_format(axis="y", useOffset=False)
        ax_hist.ticklabel_format(axis="y", useOffset=False)
        if finite.any():
            ax_hist.hist(values[finite], bins=40, color=f"C{row}", orientation="horizontal")
            p99 = float(np.percentile(values[finite], 99))
            ax_hist.axhline(p99, color="k", linestyle="--", linewidth=0.8, label=f"p99 {p99:.2f}")
            ax_hist.legend(fontsize=7)
        else:
            ax_hist.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax_hist.transAxes)
        ax_hist.set_xlabel("steps")
    axes[-1, 0].set_xlabel("time (s)")
    figure.suptitle(f"{log.path.name}: timing")
    return _save(plt, figure, path)


def plot_open_loop(series: OpenLoopSeries, path: Path, title: str) -> Path:
    """RMS divergence per leg over time, and the worst joint logged against replayed."""
    plt = pyplot_agg()
    diff = series.replayed - series.logged
    figure, (ax_rms, ax_joint) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True)
    for k, leg in enumerate(go1.LEGS):
        columns = [j for j, n in enumerate(go1.JOINT_NAMES) if n.startswith(f"{leg}_")]
        ax_rms.plot(series.time_s, np.sqrt(np.mean(diff[:, columns] ** 2, axis=1)), color=f"C{k}", label=leg)
    active = np.isin(series.logged_mode, [RobotMode.ACTIVE_STAND, RobotMode.ACTIVE_POLICY])
    ax_rms.fill_between(series.time_s, 0, 1, where=active, step="post", color="0.85", linewidth=0,
                        transform=ax_rms.get_xaxis_transform(), label="logged mode active", zorder=0)
    ax_rms.set_ylabel("RMS divergence (rad)")
    ax_rms.legend(fontsize=7, ncol=5, loc="upper left")
    worst = int(np.argmax(np.abs(diff).max(axis=0)))
    ax_joint.plot(series.time_s, series.logged[:, worst], color="C0", label="logged")
    ax_joint.plot(series.time_s, series.replayed[:, worst], color="C3", linestyle="--", label="open-loop replay")
    ax_joint.set_ylabel(f"{go1.JOINT_NAMES[worst]} (rad)")
    ax_joint.set_xlabel("time (s)")
    ax_joint.legend(fontsize=7, loc="upper left")
    for axis in (ax_rms, ax_joint):
        axis.grid(alpha=0.3)
    figure.suptitle(title, fontsize=10)
    return _save(plt, figure, path)
