"""The checks of `dhal replay` on a log loaded by `dhal.deploy.replay.load_replay_log`:

* (a) `check_actions` re-runs the ONNX on every logged observation and compares the actions bit for bit;
* (b) `rebuild_observations` feeds the logged JointState and IMU messages through the deploy's own
  `ObservationBuilder`, the way `PolicyController` does, and compares each term of the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dhal.deploy import topics
from dhal.deploy.observation import JointMapping, MessageError, ObservationBuilder, signals_from_messages
from dhal.deploy.replay import JointStates, ReplayLog, Skipped
from dhal.deploy.safety_types import FsmState

# A step's stamp went through float seconds (PolicyStepRecord.stamp_ns = int(stamp_s * 1e9)), which
# at epoch times resolves ~0.24 us; a JointState within this of it is the one the step used.
STAMP_MATCH_TOLERANCE_NS = 2_000
MAX_LISTED_PROBLEMS = 10
# Field metadata of per-step arrays: saved to an .npz next to the JSON summary, not into it.
PER_STEP = {"per_step": True}

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


# ---- (a) actions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionCheck:
    compared: int  # steps with an observation
    bit_identical: bool  # np.array_equal of the float32 actions
    max_abs_diff: float
    mismatched_steps: int
    first_mismatch_step: int | None  # PolicyStep.step index
    mode_probs_max_abs_diff: float
    latent_max_abs_diff: float
    # Rows whose batched evaluation differed and were evaluated again one at a time, as the node runs them.
    rerun_one_by_one: int
    steps: npt.NDArray[np.int64] = field(repr=False, compare=False, metadata=PER_STEP)  # PolicyStep.step compared
    step_max_abs_diff: FloatArray = field(repr=False, compare=False, metadata=PER_STEP)  # max |action diff| per step


def _row_max_abs(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> FloatArray:
    """max |a - b| per row; NaN against NaN is equal, a number against NaN is infinitely far."""
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    diff[np.isnan(a) & np.isnan(b)] = 0.0
    diff[np.isnan(diff)] = np.inf
    return np.asarray(diff.max(axis=1), dtype=np.float64)


def _max_abs(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """max |a - b| over the entries where both are numbers; NaN where the shapes differ or none is."""
    if a.shape != b.shape:
        return float("nan")
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(np.nanmax(diff)) if np.isfinite(diff).any() else (0.0 if diff.size == 0 else float("nan"))


def check_actions(log: ReplayLog) -> ActionCheck | Skipped:
    rows = np.flatnonzero(log.observed)
    if rows.size == 0:
        return Skipped("no step logged an observation (the policy never ran: the FSM never reached STAND)")
    steps = log.steps
    observations = steps.observation[rows]
    out = log.policy.run_batch(observations)
    actions, probs, latent = out.actions, out.mode_probs, out.latent
    logged = steps.action[rows]
    differs = ~np.all((actions == logged) | (np.isnan(actions) & np.isnan(logged)), axis=1)
    # ONNX Runtime may pick other kernels for a batch than for one row: the node ran one row at a time.
    rerun = np.flatnonzero(differs)
    for i in rerun:
        single = log.policy(observations[i])
        actions[i], probs[i], latent[i] = single.actions, single.mode_probs, single.latent
    mismatched = ~np.all((actions == logged) | (np.isnan(actions) & np.isnan(logged)), axis=1)
    first = int(steps.step[rows[np.argmax(mismatched)]]) if mismatched.any() else None
    return ActionCheck(
        compared=int(rows.size),
        bit_identical=bool(np.array_equal(actions.astype(np.float32), logged.astype(np.float32), equal_nan=True)),
        max_abs_diff=_max_abs(actions, logged),
        mismatched_steps=int(mismatched.sum()),
        first_mismatch_step=first,
        mode_probs_max_abs_diff=_max_abs(probs, steps.mode_probs[rows]),
        latent_max_abs_diff=_max_abs(latent, steps.latent[rows]),
        rerun_one_by_one=int(rerun.size),
        steps=steps.step[rows].astype(np.int64),
        step_max_abs_diff=_row_max_abs(actions, logged),
    )


# ---- (b) observations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TermDiff:
    term: str
    max_abs_diff: float  # over every frame of the history
    newest_frame_max_abs_diff: float  # the frame built at the step itself
    mismatched_steps: int
    first_mismatch_step: int | None


@dataclass(frozen=True)
class ObservationCheck:
    compared: int
    exact: bool  # every compared observation equals its rebuild (float32)
    max_abs_diff: float
    mismatched_steps: int
    terms: tuple[TermDiff, ...]  # every frame term, in the contract's order
    not_rebuilt: int  # steps with an observation that could not be rebuilt
    problems: tuple[str, ...]  # why, for the first few
    steps: npt.NDArray[np.int64] = field(repr=False, compare=False, metadata=PER_STEP)  # PolicyStep.step compared
    step_term_max_abs_diff: FloatArray = field(repr=False, compare=False, metadata=PER_STEP)  # [steps, terms]

    @property
    def mismatched_terms(self) -> tuple[str, ...]:
        """Terms that differ, the largest difference first."""
        bad = [t for t in self.terms if t.mismatched_steps]
        return tuple(t.term for t in sorted(bad, key=lambda t: -t.max_abs_diff))


def _match_joint_state(joints: JointStates, order: Int64Array, stamp_ns: int, before_ns: int) -> int | None:
    """The JointState the step used: stamped as the step, received before the step was logged (the
    last such if a stamp repeats). `order` sorts the messages by stamp."""
    sorted_stamps = joints.stamp_ns[order]
    low = int(np.searchsorted(sorted_stamps, stamp_ns - STAMP_MATCH_TOLERANCE_NS, side="left"))
    high = int(np.searchsorted(sorted_stamps, stamp_ns + STAMP_MATCH_TOLERANCE_NS, side="right"))
    candidates = order[low:high]
    candidates = candidates[joints.log_time_ns[candidates] <= before_ns]
    return int(candidates.max()) if candidates.size else None


def rebuild_observations(log: ReplayLog) -> ObservationCheck | Skipped:
    """Rebuild each logged observation from the messages, as `PolicyController` built it.

    Per step: the JointState whose stamp is the step's, the IMU sample last received before it (at
    equal log times the IMU counts as first: the robot sides publish it first), and the step's
    logged velocity command. The builder's episode restarts when the FSM enters POLICY, and the
    logged action is recorded after each step taken in POLICY, as the controller does. The state at
    the start of a step is its logged (end) state, except a step that ended in DAMPING: it started
    in POLICY when the step before it ended in POLICY.
    """
    observed = log.observed
    if not observed.any():
        return Skipped("no step logged an observation (the policy never ran: the FSM never reached STAND)")
    if not len(log.joint_states) or not len(log.imu):
        counts = ((topics.JOINT_STATES, len(log.joint_states)), (topics.IMU, len(log.imu)))
        missing = [topic.name for topic, count in counts if not count]
        return Skipped(f"the log has no {' and no '.join(missing)} messages to rebuild from")
    contract = log.contract
    steps, joints = log.steps, log.joint_states
    mapping = JointMapping(contract.joint_names)
    builder = ObservationBuilder(contract)
    stamp_order = np.argsort(joints.stamp_ns, kind="stable")
    slices = [contract.term_slice(t.name) for t in contract.frame_terms]
    shape = (contract.history_length, contract.frame_size)
    names = [t.name for t in contract.frame_terms]
    per_term = np.zeros((len(steps), len(names)))
    per_term_newest = np.zeros_like(per_term)
    compared = np.zeros(len(steps), dtype=bool)
    problems: list[str] = []
    not_rebuilt = 0
    running = False
    previous_state: int | None = None
    for k in range(len(steps)):
        state = int(steps.fsm_state[k])
        started_in_policy = state == FsmState.POLICY or (
            state == FsmState.DAMPING and observed[k] and previous_state == FsmState.POLICY)
        previous_state = state
        if not started_in_policy:
            running = False
        if not observed[k]:
            continue
        if started_in_policy and not running:
            builder.start()
            running = True
        problem, rebuilt = _rebuild_step(log, k, mapping, builder, stamp_order)
        if started_in_policy and state == FsmState.POLICY:
            builder.record_action(steps.action[k])
        if problem is not None or rebuilt is None:
            not_rebuilt += 1
            if len(problems) < MAX_LISTED_PROBLEMS:
                problems.append(f"step {int(steps.step[k])}: {problem}")
            continue
        diff = np.abs(steps.observation[k].astype(np.float64) - rebuilt.astype(np.float64)).reshape(shape)
        per_term[k] = [diff[:, s].max() for s in slices]
        per_term_newest[k] = [diff[-1, s].max() for s in slices]
        compared[k] = True
    if not compared.any():
        return Skipped(f"no observation could be rebuilt: {'; '.join(problems[:3])}")
    step_index = steps.step.astype(np.int64)
    terms = []
    for j, name in enumerate(names):
        bad = compared & (per_term[:, j] > 0)
        terms.append(TermDiff(
            term=name, max_abs_diff=float(per_term[compared, j].max()),
            newest_frame_max_abs_diff=float(per_term_newest[compared, j].max()),
            mismatched_steps=int(bad.sum()),
            first_mismatch_step=int(step_index[np.argmax(bad)]) if bad.any() else None))
    mismatched = compared & (per_term.max(axis=1) > 0)
    return ObservationCheck(
        compared=int(compared.sum()), exact=not mismatched.any(), max_abs_diff=float(per_term[compared].max()),
        mismatched_steps=int(mismatched.sum()), terms=tuple(terms), not_rebuilt=not_rebuilt,
        problems=tuple(problems), steps=step_index[compared], step_term_max_abs_diff=per_term[compared])


def _rebuild_step(log: ReplayLog, k: int, mapping: JointMapping, builder: ObservationBuilder,
                  stamp_order: Int64Array) -> tuple[str | None, npt.NDArray[np.float32] | None]:
    steps, joints, imu = log.steps, log.joint_states, log.imu
    js = _match_joint_state(joints, stamp_order, int(steps.stamp_ns[k]), int(steps.log_time_ns[k]))
    if js is None:
        return f"no JointState with its stamp {int(steps.stamp_ns[k])} ns received before it", None
    latest_imu = int(np.searchsorted(imu.log_time_ns, joints.log_time_ns[js], side="right")) - 1
    if latest_imu < 0:
        return "no IMU sample received before its JointState", None
    try:
        signals = signals_from_messages(mapping, joints.names[js], joints.position[js], joints.velocity[js],
                                        imu.quat_xyzw[latest_imu], imu.gyro[latest_imu])
    except MessageError as error:
        return f"its messages are unusable: {error}", None
    return None, builder.build(signals, steps.command[k].astype(np.float64))
