"""The simulator parts of `dhal replay`: the logged motion rendered kinematically to an mp4, and the
logged joint targets replayed open-loop through the robot side's PD in MuJoCo.

The open-loop replay puts the targets through `BridgeSafety`, the law (clamps, torque limit, gains
of the mode) that the MuJoCo robot node and the Go1 bridge apply, at the times the policy node
logged them, and the robot side's mode follows the log rather than being decided again: the
replay's watchdogs and entry check are relaxed so that the logged mode sequence is what runs. The
divergence of the simulated joints from the logged ones is then what the simulator does
differently from the logged robot given the same commands (timing of target arrival included).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dhal.deploy.go1.config import BridgeConfig
from dhal.deploy.go1.packets import MOTOR_MODE_SERVO
from dhal.deploy.go1.safety import ACTIVE_MODES, BridgeSafety, JointFeedback
from dhal.deploy.replay import ReplayError, ReplayLog, Skipped, TimedValues
from dhal.deploy.sim_robot import SimulatedGo1
from dhal.deploy.topics import RobotMode
from dhal.envs.robots import go1

SIM_MOTOR_TEMPERATURE_C = 35
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _LoggedJoints:
    """Valid joint states in go1.JOINT_NAMES order, sorted by stamp."""

    stamp_ns: npt.NDArray[np.int64]
    position: FloatArray
    velocity: FloatArray


def _logged_joints(log: ReplayLog) -> _LoggedJoints | None:
    position, velocity, valid = log.joint_states.in_order(go1.JOINT_NAMES)
    if not valid.any():
        return None
    stamps = log.joint_states.stamp_ns[valid]
    order = np.argsort(stamps, kind="stable")
    return _LoggedJoints(stamps[order], position[valid][order], velocity[valid][order])


def _latest(stamps: npt.NDArray[np.int64], t_ns: int) -> int:
    """Index of the last sample stamped at or before t_ns (the first sample if none is)."""
    return max(0, int(np.searchsorted(stamps, t_ns, side="right")) - 1)


def _keyframe_base(robot: SimulatedGo1, keyframe: str) -> tuple[FloatArray, FloatArray]:
    qpos = robot.sim.info.keyframes[keyframe].double().numpy()
    return qpos[robot.root_qpos:robot.root_qpos + 3].copy(), qpos[robot.root_qpos + 3:robot.root_qpos + 7].copy()


# ---- (d) video --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoResult:
    path: str
    frames: int
    fps: float
    width: int
    height: int
    base_pose: str  # where the trunk's pose came from


def _frames(log: ReplayLog, robot: SimulatedGo1, joints: _LoggedJoints, times_ns: list[int], keyframe: str,
            width: int, height: int, camera: str | int) -> Iterator[npt.NDArray[np.uint8]]:
    key_pos, key_quat = _keyframe_base(robot, keyframe)
    imu_order = np.argsort(log.imu.stamp_ns, kind="stable")
    imu_stamps = log.imu.stamp_ns[imu_order]
    truth = log.base_poses
    for t_ns in times_ns:
        i = _latest(joints.stamp_ns, t_ns)
        if truth is not None:
            b = _latest(truth.stamp_ns, t_ns)
            base_pos, base_quat = truth.position[b], truth.quat_wxyz[b]
        elif len(imu_stamps):
            x, y, z, w = log.imu.quat_xyzw[imu_order[_latest(imu_stamps, t_ns)]]
            base_pos, base_quat = key_pos, np.array([w, x, y, z])
        else:
            base_pos, base_quat = key_pos, key_quat
        robot.set_pose(joints.position[i], base_pos, base_quat, keyframe=keyframe, carry_board=True)
        yield robot.render(width, height, camera)


def render_video(log: ReplayLog, robot: SimulatedGo1, path: Path, fps: float, width: int, height: int,
                 camera: str | int = -1, keyframe: str = "push",
                 max_seconds: float | None = None) -> VideoResult | Skipped:
    """The logged joints (by name) posed kinematically, one frame per 1/fps of joint-state stamps.

    The trunk follows /sim/base_pose where the log has it; otherwise it stays at the keyframe's
    position, oriented by the IMU. The board, never logged, is carried under the foot tied to it.
    """
    if not fps > 0 or width < 16 or height < 16:
        raise ReplayError(f"the video needs fps > 0 and at least 16x16 pixels, got {fps} fps, {width}x{height}")
    joints = _logged_joints(log)
    if joints is None:
        return Skipped("no /joint_states message names the policy's joints")
    first, last = int(joints.stamp_ns[0]), int(joints.stamp_ns[-1])
    if max_seconds is not None:
        last = min(last, first + round(max_seconds * 1e9))
    period_ns = 1e9 / fps
    times_ns = [first + round(n * period_ns) for n in range(int((last - first) // period_ns) + 1)]
    if log.base_poses is not None:
        base = f"trunk pose from {log.base_poses.source} (/sim/base_pose)"
    elif len(log.imu):
        base = f"trunk at the keyframe '{keyframe}' position, oriented by /imu/data (no ground truth in the log)"
    else:
        base = f"trunk at the keyframe '{keyframe}' pose (no ground truth and no IMU in the log)"
    import imageio.v2 as imageio

    frames = _frames(log, robot, joints, times_ns, keyframe, width, height, camera)
    try:
        first_frame = next(frames)
    except KeyError as error:  # an unknown camera name
        raise ReplayError(str(error.args[0]) if error.args else str(error)) from error
    except Exception as error:  # GL errors differ by platform; all mean rendering is unavailable here
        return Skipped(f"rendering failed ({type(error).__name__}: {error}); headless machines need MUJOCO_GL=egl "
                       "(or osmesa) and its system packages")
    path.parent.mkdir(parents=True, exist_ok=True)
    # macro_block_size=8 keeps sizes such as 640x480 untouched and small sizes encodable.
    writer = imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=8)
    try:
        writer.append_data(first_frame)
        count = 1
        for frame in frames:
            writer.append_data(frame)
            count += 1
    finally:
        writer.close()
    return VideoResult(path=str(path), frames=count, fps=fps, width=width, height=height, base_pose=base)


# ---- (e) open-loop replay ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenLoopResult:
    initial_state: str
    target_source: str
    mode_source: str
    gains: dict[str, dict[str, float]]  # robot mode -> kp, kd the replay applied
    duration_s: float
    samples: int  # logged joint states compared
    rms_rad: float  # over joints and samples
    max_abs_rad: float
    max_abs_joint: str
    max_abs_time_s: float
    active_rms_rad: float | None  # over the samples taken while the logged robot mode was active
    per_joint_rms_rad: dict[str, float]
    rms_per_second_rad: list[float]  # consecutive 1 s windows from the start
    mode_mismatch_s: float  # time the replay's robot side was in another mode than the logged one


@dataclass(frozen=True)
class OpenLoopSeries:
    """For the plot: per compared sample, time, logged and replayed joints (go1.JOINT_NAMES order)."""

    time_s: FloatArray
    logged: FloatArray
    replayed: FloatArray
    logged_mode: npt.NDArray[np.int64]


def follow_log(config: BridgeConfig, span_s: float) -> BridgeConfig:
    """`config` with its watchdogs and entry check out of the way: the replay enters the modes the
    log reports when it reports them; the PD law, clamps and gains are untouched."""
    relaxed = max(span_s, 1.0) + 1.0
    return dataclasses.replace(config, command_timeout_s=relaxed, state_timeout_s=relaxed,
                               max_entry_error_rad=4.0 * math.pi)


def _mode_at(modes: TimedValues, t_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    index = np.searchsorted(modes.log_time_ns, t_ns, side="right") - 1
    values = np.asarray(modes.values, dtype=np.int64)
    return np.where(index >= 0, values[np.maximum(index, 0)], int(RobotMode.PASSIVE))


def open_loop_replay(log: ReplayLog, robot: SimulatedGo1, bridge_config: BridgeConfig, keyframe: str = "push",
                     max_seconds: float | None = None) -> tuple[OpenLoopResult, OpenLoopSeries] | Skipped:
    """Replay from the first logged joint state to the last (or for `max_seconds`), one physics step
    at a time: targets and mode changes logged up to a step's start time are applied before it."""
    joints = _logged_joints(log)
    if joints is None:
        return Skipped("no /joint_states message names the policy's joints")
    if log.targets is None:
        return Skipped("the log has no joint targets (nothing was ever published to the robot)")
    modes = log.robot_modes
    assert modes is not None
    try:
        to_bridge = np.array([go1.JOINT_NAMES.index(n) for n in bridge_config.joint_names])
    except ValueError as error:
        raise ReplayError(f"bridge joint_names {bridge_config.joint_names} are not the Go1's: {error}") from error
    if log.targets.values.shape[1] != len(to_bridge):
        raise ReplayError(f"{log.targets.source} has {log.targets.values.shape[1]} targets, the bridge config "
                          f"{len(to_bridge)} joints")
    to_sim = np.argsort(to_bridge)
    truth = log.base_poses
    first = 0
    if truth is not None:
        # Start at the first ground-truth sample of the run and the joint state stamped nearest it (the
        # sim node stamps both with one clock reading), so that the whole initial state is one instant.
        after = np.flatnonzero(truth.stamp_ns >= joints.stamp_ns[0])
        b = int(after[0]) if after.size else int(np.argmin(np.abs(truth.stamp_ns - joints.stamp_ns[0])))
        first = int(np.argmin(np.abs(joints.stamp_ns - truth.stamp_ns[b])))
    s0, end = int(joints.stamp_ns[first]), int(joints.stamp_ns[-1])
    if max_seconds is not None:
        end = min(end, s0 + round(max_seconds * 1e9))
    kept = (joints.stamp_ns >= s0) & (joints.stamp_ns <= end)
    joints = _LoggedJoints(joints.stamp_ns[kept], joints.position[kept], joints.velocity[kept])
    if truth is not None:
        robot.set_pose(joints.position[0], truth.position[b], truth.quat_wxyz[b], joint_vel=joints.velocity[0],
                       base_lin_vel=truth.lin_vel[b], base_ang_vel_b=truth.ang_vel_body[b], keyframe=keyframe)
        skipped = f", {first} earlier joint states before the first ground truth left out" if first else ""
        initial = (f"joints from /joint_states, trunk pose and velocity from /sim/base_pose "
                   f"{(int(truth.stamp_ns[b]) - s0) / 1e6:+.1f} ms from them ({truth.source}){skipped}")
    else:
        key_pos, key_quat = _keyframe_base(robot, keyframe)
        robot.set_pose(joints.position[0], key_pos, key_quat, joint_vel=joints.velocity[0], keyframe=keyframe)
        initial = (f"joints from the first /joint_states; trunk at rest at the keyframe '{keyframe}' pose "
                   "(no ground truth in the log: a real robot's base pose is unknown)")
    initial += f"; the board at the keyframe '{keyframe}' pose (boards are not logged)"
    dt_ns = round(robot.physics_dt * 1e9)
    bridge = BridgeSafety(follow_log(bridge_config, (end - s0) / 1e9))
    count = (end - s0) // dt_ns + 1
    replayed = np.empty((count, len(go1.JOINT_NAMES)))
    replay_mode = np.empty(count, dtype=np.int64)
    targets = log.targets
    next_target = next_mode = 0
    n = len(to_bridge)
    for k in range(count):
        t_ns = s0 + k * dt_ns
        now = k * dt_ns / 1e9
        while next_mode < len(modes) and modes.log_time_ns[next_mode] <= t_ns:
            bridge.request_mode(int(modes.values[next_mode]), now)
            next_mode += 1
        while next_target < len(targets) and targets.log_time_ns[next_target] <= t_ns:
            bridge.submit_target(targets.values[next_target], now)
            next_target += 1
        m = robot.measure()
        replayed[k] = m.joint_pos
        bridge.update_feedback(JointFeedback(
            q=m.joint_pos[to_bridge], dq=m.joint_vel[to_bridge], tau_est=m.joint_torque[to_bridge],
            temperature=np.full(n, SIM_MOTOR_TEMPERATURE_C), motor_mode=np.full(n, MOTOR_MODE_SERVO)), now)
        command = bridge.command(now)
        replay_mode[k] = int(bridge.mode)
        q_target = np.where(command.kp > 0, command.q, m.joint_pos[to_bridge])  # no position term where kp = 0
        robot.step(q_target[to_sim], command.kp[to_sim], command.kd[to_sim])
    return _divergence(log, joints, replayed, replay_mode, s0, dt_ns, bridge_config, initial)


def _divergence(log: ReplayLog, joints: _LoggedJoints, replayed: FloatArray, replay_mode: npt.NDArray[np.int64],
                s0: int, dt_ns: int, bridge_config: BridgeConfig,
                initial: str) -> tuple[OpenLoopResult, OpenLoopSeries]:
    modes, targets = log.robot_modes, log.targets
    assert modes is not None and targets is not None
    k = np.clip(np.rint((joints.stamp_ns - s0) / dt_ns).astype(np.int64), 0, len(replayed) - 1)
    diff = replayed[k] - joints.position
    time_s = (joints.stamp_ns - s0) / 1e9
    logged_mode = _mode_at(modes, joints.stamp_ns)
    active = np.isin(logged_mode, [int(m) for m in ACTIVE_MODES])
    worst = np.unravel_index(int(np.argmax(np.abs(diff))), diff.shape)
    seconds = int(time_s[-1]) + 1
    windows = [diff[(time_s >= w) & (time_s < w + 1)] for w in range(seconds)]
    step_times = s0 + np.arange(len(replayed)) * dt_ns
    mismatch = replay_mode != _mode_at(modes, step_times)
    gains = {mode.name: dataclasses.asdict(bridge_config.gains.of(mode)) for mode in RobotMode}
    result = OpenLoopResult(
        initial_state=initial, target_source=targets.source, mode_source=modes.source, gains=gains,
        duration_s=float(time_s[-1]), samples=len(diff),
        rms_rad=_rms(diff), max_abs_rad=float(np.abs(diff).max()), max_abs_joint=go1.JOINT_NAMES[int(worst[1])],
        max_abs_time_s=float(time_s[int(worst[0])]),
        active_rms_rad=_rms(diff[active]) if active.any() else None,
        per_joint_rms_rad={name: _rms(diff[:, j]) for j, name in enumerate(go1.JOINT_NAMES)},
        rms_per_second_rad=[_rms(w) for w in windows if w.size],
        mode_mismatch_s=float(mismatch.sum() * dt_ns / 1e9),
    )
    return result, OpenLoopSeries(time_s=time_s, logged=joints.position, replayed=replayed[k], logged_mode=logged_mode)


def _rms(values: npt.NDArray[Any]) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if np.size(values) else float("nan")
