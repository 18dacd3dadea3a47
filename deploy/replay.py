"""A deploy log loaded for `dhal replay`: `load_replay_log` reads an MCAP log of the policy node (or of
`closed_loop`), loads its attached ONNX and decodes the raw topics into time series, and `log_facts`
says what the log holds. The checks (`replay_checks`), the simulator parts (`replay_sim`) and the
plots (`replay_plots`) use the series loaded here.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dhal.deploy import topics
from dhal.deploy.log_read import LoggedRun, LoggedSteps, TopicMessages, read_log
from dhal.deploy.log_schema import POLICY_STEP_TOPIC, McapLogError
from dhal.deploy.observation import JointMapping, MessageError
from dhal.deploy.runtime import OnnxPolicy, PolicyFileError
from dhal.deploy.safety_types import FsmState
from dhal.envs.contract import Contract

POLICY_ATTACHMENT = "policy.onnx"

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class ReplayError(ValueError):
    """A log that cannot be replayed; the message names the file and what it lacks."""


@dataclass(frozen=True)
class Skipped:
    """A part of the replay that could not run on this log, and why."""

    reason: str


# ---- series decoded from the raw topics ----------------------------------------------------------


@dataclass(frozen=True)
class JointStates:
    """/joint_states as received: names, positions and velocities in each message's own order."""

    log_time_ns: Int64Array
    stamp_ns: Int64Array
    names: list[tuple[str, ...]]
    position: list[FloatArray]
    velocity: list[FloatArray]

    def __len__(self) -> int:
        return len(self.stamp_ns)

    def in_order(self, joint_names: Sequence[str]) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
        """(positions [N, J], velocities [N, J], valid [N]) in `joint_names` order, matched by name;
        rows of messages that do not name every joint are NaN and not valid."""
        mapping = JointMapping(joint_names)
        position = np.full((len(self), len(joint_names)), np.nan)
        velocity = np.full_like(position, np.nan)
        valid = np.zeros(len(self), dtype=bool)
        for i, (names, q, dq) in enumerate(zip(self.names, self.position, self.velocity)):
            try:
                position[i] = mapping.reorder(names, q, "JointState.position")
                velocity[i] = mapping.reorder(names, dq, "JointState.velocity")
                valid[i] = True
            except MessageError:
                continue
        return position, velocity, valid


@dataclass(frozen=True)
class ImuSamples:
    log_time_ns: Int64Array
    stamp_ns: Int64Array
    quat_xyzw: FloatArray  # [N, 4] as ROS sends it
    gyro: FloatArray  # [N, 3]

    def __len__(self) -> int:
        return len(self.stamp_ns)


@dataclass(frozen=True)
class BasePoses:
    """Ground truth of a simulated run (/sim/base_pose): world-frame pose, world linear and body
    angular velocity, as the sim node publishes them."""

    source: str  # the file it was read from
    stamp_ns: Int64Array
    position: FloatArray  # [N, 3]
    quat_wxyz: FloatArray  # [N, 4]
    lin_vel: FloatArray  # [N, 3]
    ang_vel_body: FloatArray  # [N, 3]

    def __len__(self) -> int:
        return len(self.stamp_ns)


@dataclass(frozen=True)
class TimedValues:
    """Values received or published at log times: joint targets [N, J] or robot modes [N]."""

    source: str  # the topic (or step field) they come from
    log_time_ns: Int64Array
    values: npt.NDArray[Any]

    def __len__(self) -> int:
        return len(self.log_time_ns)


@dataclass
class ReplayLog:
    path: Path
    run: LoggedRun
    policy: OnnxPolicy
    joint_states: JointStates
    imu: ImuSamples
    base_poses: BasePoses | None
    targets: TimedValues | None
    robot_modes: TimedValues | None  # the mode the robot side reported (or, lacking that, requested)
    # The robot side's BridgeConfig as a run recorded it (`BridgeConfig.to_dict`), and which file did.
    bridge_config: dict[str, Any] | None = None
    bridge_config_source: str | None = None

    @property
    def contract(self) -> Contract:
        return self.policy.contract

    @property
    def steps(self) -> LoggedSteps:
        return self.run.steps

    @property
    def observed(self) -> npt.NDArray[np.bool_]:
        """Steps that logged an observation (the policy ran: STAND or POLICY with finite signals)."""
        obs = self.steps.observation
        if obs.shape[1] == 0:
            return np.zeros(len(self.steps), dtype=bool)
        return np.asarray(~np.isnan(obs).all(axis=1), dtype=bool)

    def start_ns(self) -> int:
        """The time origin of plots and replays: the first joint state or step, whichever came first."""
        firsts = [int(self.steps.log_time_ns[0])]
        if len(self.joint_states):
            firsts.append(int(self.joint_states.log_time_ns.min()))
        return min(firsts)


def _stamp(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _joint_states(topic: TopicMessages | None) -> JointStates:
    if topic is None:
        return JointStates(np.zeros(0, np.int64), np.zeros(0, np.int64), [], [], [])
    messages = topic.messages
    return JointStates(
        log_time_ns=topic.log_time_ns.copy(),
        stamp_ns=np.array([_stamp(m.header) for m in messages], dtype=np.int64),
        names=[tuple(m.name) for m in messages],
        position=[np.asarray(m.position, dtype=np.float64) for m in messages],
        velocity=[np.asarray(m.velocity, dtype=np.float64) for m in messages],
    )


def _imu(topic: TopicMessages | None) -> ImuSamples:
    if topic is None:
        return ImuSamples(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros((0, 3)))
    messages = topic.messages
    return ImuSamples(
        log_time_ns=topic.log_time_ns.copy(),
        stamp_ns=np.array([_stamp(m.header) for m in messages], dtype=np.int64),
        quat_xyzw=np.array([[m.orientation.x, m.orientation.y, m.orientation.z, m.orientation.w]
                            for m in messages], dtype=np.float64).reshape(-1, 4),
        gyro=np.array([[m.angular_velocity.x, m.angular_velocity.y, m.angular_velocity.z]
                       for m in messages], dtype=np.float64).reshape(-1, 3),
    )


def _base_poses(topic: TopicMessages, source: str) -> BasePoses:
    messages = topic.messages

    def rows(get: Any, width: int) -> FloatArray:
        return np.array([get(m) for m in messages], dtype=np.float64).reshape(-1, width)

    return BasePoses(
        source=source,
        stamp_ns=np.array([_stamp(m.header) for m in messages], dtype=np.int64),
        position=rows(lambda m: [m.pose.pose.position.x, m.pose.pose.position.y, m.pose.pose.position.z], 3),
        quat_wxyz=rows(lambda m: [m.pose.pose.orientation.w, m.pose.pose.orientation.x,
                                  m.pose.pose.orientation.y, m.pose.pose.orientation.z], 4),
        lin_vel=rows(lambda m: [m.twist.twist.linear.x, m.twist.twist.linear.y, m.twist.twist.linear.z], 3),
        ang_vel_body=rows(lambda m: [m.twist.twist.angular.x, m.twist.twist.angular.y, m.twist.twist.angular.z], 3),
    )


def _targets(run: LoggedRun, num_joints: int) -> TimedValues | None:
    topic = run.topics.get(topics.JOINT_TARGETS.name)
    if topic is not None and len(topic):
        rows = [np.asarray(m.data, dtype=np.float64) for m in topic.messages]
        bad = [i for i, row in enumerate(rows) if row.shape != (num_joints,)]
        if bad:
            raise ReplayError(f"{run.path}: {topics.JOINT_TARGETS.name} message {bad[0]} has "
                              f"{rows[bad[0]].size} values, the policy has {num_joints} joints")
        return TimedValues(topics.JOINT_TARGETS.name, topic.log_time_ns.copy(), np.stack(rows))
    steps = run.steps
    if steps.joint_targets.shape[1] != num_joints:
        return None
    published = ~np.isnan(steps.joint_targets).any(axis=1)
    if not published.any():
        return None
    return TimedValues(f"{POLICY_STEP_TOPIC} joint_targets", steps.log_time_ns[published],
                       steps.joint_targets[published].astype(np.float64))


def _robot_modes(run: LoggedRun) -> TimedValues | None:
    """The robot side's reported mode if the log has it, else the requested one (its request topic,
    else the mode each step requested)."""
    for topic in (topics.ROBOT_MODE, topics.MODE_REQUEST):
        messages = run.topics.get(topic.name)
        if messages is not None and len(messages):
            return TimedValues(topic.name, messages.log_time_ns.copy(),
                               np.array([int(m.data) for m in messages.messages], dtype=np.int64))
    steps = run.steps
    changed = np.flatnonzero(np.diff(steps.robot_mode.astype(np.int64), prepend=-1))
    return TimedValues(f"{POLICY_STEP_TOPIC} robot_mode (requested)", steps.log_time_ns[changed],
                       steps.robot_mode[changed].astype(np.int64))


def _read(path: Path) -> LoggedRun:
    if not path.exists():
        raise ReplayError(f"log {path} does not exist")
    if not path.is_file():
        raise ReplayError(f"log {path} is not a file")
    try:
        return read_log(path)
    except McapLogError as error:
        raise ReplayError(f"cannot read log {path}: {error}") from error


def _load_policy(path: Path, run: LoggedRun) -> OnnxPolicy:
    blob = run.attachments.get(POLICY_ATTACHMENT)
    if blob is None:
        found = sorted(run.attachments) or "none"
        raise ReplayError(f"log {path} has no {POLICY_ATTACHMENT} attachment (attachments: {found}); "
                          "only the policy node's logs carry the policy")
    with tempfile.TemporaryDirectory(prefix="dhal_replay_") as folder:
        onnx_path = Path(folder) / POLICY_ATTACHMENT
        onnx_path.write_bytes(blob)
        try:
            return OnnxPolicy(onnx_path)
        except PolicyFileError as error:
            raise ReplayError(f"log {path}: its {POLICY_ATTACHMENT} attachment is unusable: {error}") from error


def load_replay_log(path: str | Path, ground_truth: str | Path | None = None) -> ReplayLog:
    """Read `path` and its policy; `ground_truth` is an optional log of the MuJoCo robot node of the
    same run whose /sim/base_pose is used when `path` has none (stamps share the ROS clock)."""
    path = Path(path)
    run = _read(path)
    if len(run.steps) == 0:
        cut = f" (it was not closed cleanly: {run.problem})" if run.problem else ""
        raise ReplayError(f"log {path} has no policy steps ({POLICY_STEP_TOPIC}){cut}; only the policy node's "
                          "logs can be replayed")
    policy = _load_policy(path, run)
    contract = policy.contract
    width = run.steps.observation.shape[1]
    if width not in (0, contract.history_size):
        raise ReplayError(f"log {path}: observations have {width} values, its policy expects "
                          f"{contract.history_size} ({contract.history_length} frames of {contract.frame_size})")
    truth_topic = run.topics.get(topics.SIM_BASE_POSE.name)
    base_poses = _base_poses(truth_topic, str(path)) if truth_topic is not None and len(truth_topic) else None
    bridge_config, bridge_source = _recorded_bridge_config(run), str(path)
    if ground_truth is not None:
        truth_path = Path(ground_truth)
        truth_run = _read(truth_path)
        topic = truth_run.topics.get(topics.SIM_BASE_POSE.name)
        if topic is None or not len(topic):
            raise ReplayError(f"ground-truth log {truth_path} has no {topics.SIM_BASE_POSE.name} messages")
        if base_poses is None:
            base_poses = _base_poses(topic, str(truth_path))
        if bridge_config is None:
            bridge_config, bridge_source = _recorded_bridge_config(truth_run), str(truth_path)
    return ReplayLog(
        path=path, run=run, policy=policy,
        joint_states=_joint_states(run.topics.get(topics.JOINT_STATES.name)),
        imu=_imu(run.topics.get(topics.IMU.name)),
        base_poses=base_poses,
        targets=_targets(run, contract.num_joints),
        robot_modes=_robot_modes(run),
        bridge_config=bridge_config,
        bridge_config_source=bridge_source if bridge_config is not None else None,
    )


def _recorded_bridge_config(run: LoggedRun) -> dict[str, Any] | None:
    """The robot side's config where a run recorded it: the sim node (and the closed loop) keep
    `BridgeConfig.to_dict()` under "bridge" in their "config" metadata."""
    text = run.metadata.get("config", {}).get("json")
    if text is None:
        return None
    try:
        bridge = json.loads(text).get("bridge")
    except (json.JSONDecodeError, AttributeError):
        return None
    return bridge if isinstance(bridge, dict) else None


# ---- log facts --------------------------------------------------------------------------------------


def _percentiles(values: npt.NDArray[Any]) -> dict[str, float | int]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"count": 0}
    p50, p99 = np.percentile(finite, [50, 99])
    return {"count": int(finite.size), "p50": float(p50), "p99": float(p99), "max": float(finite.max())}


def step_gaps(steps: LoggedSteps) -> list[tuple[int, int]]:
    """Missing step indices as (first, last) ranges: steps the logger dropped."""
    index = steps.step.astype(np.int64)
    jumps = np.flatnonzero(np.diff(index) != 1)
    return [(int(index[j]) + 1, int(index[j + 1]) - 1) for j in jumps]


def state_name(value: int) -> str:
    try:
        return FsmState(value).name
    except ValueError:
        return f"state {value}"


def log_facts(log: ReplayLog) -> dict[str, Any]:
    steps = log.steps
    duration = (int(steps.log_time_ns[-1]) - log.start_ns()) / 1e9
    fsm = [state_name(int(s)) for s in steps.fsm_state]
    return {
        "path": str(log.path),
        "closed_cleanly": log.run.complete,
        "problem": log.run.problem,
        "logger_dropped": log.run.dropped,
        "steps": len(steps),
        "steps_with_observation": int(log.observed.sum()),
        "step_gaps": step_gaps(steps),
        "duration_s": duration,
        "joint_states": len(log.joint_states),
        "imu_samples": len(log.imu),
        "ground_truth": log.base_poses.source if log.base_poses is not None else None,
        "fsm_states": [name for i, name in enumerate(fsm) if i == 0 or fsm[i - 1] != name],
        "policy_sha256": log.policy.sha256,
        "contract_digest": log.policy.metadata["dhal.contract_digest"],
        "timing_ms": {name: _percentiles(getattr(steps, name))
                      for name in ("inference_ms", "state_age_ms", "loop_period_ms")},
        "steps_clamped": int((steps.clamp_flags != 0).sum()),
        "steps_with_faults": int((steps.fault_flags != 0).sum()),
    }
