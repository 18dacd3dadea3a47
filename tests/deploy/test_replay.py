"""`dhal replay`: checks, plots, video and open-loop replay on logs of the in-process closed loop."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dhal.commands.errors import CommandError
from dhal.commands.replay import ReplayConfig, format_report, replay, run
from dhal.deploy.closed_loop import ClosedLoop, ClosedLoopConfig, run_closed_loop
from dhal.deploy.go1.config import BridgeConfig
from dhal.deploy.log_schema import PolicyStepRecord
from dhal.deploy.log_read import read_log
from dhal.deploy.mcap_log import McapLogger
from dhal.deploy.observation import ObservationBuilder, RobotSignals
from dhal.deploy.replay import Skipped, load_replay_log
from dhal.deploy.replay_checks import ActionCheck, ObservationCheck, check_actions, rebuild_observations
from dhal.deploy.replay_sim import VideoResult, open_loop_replay, render_video
from dhal.deploy.sim_robot import SimulatedGo1
from dhal.deploy.topics import ALL_TOPICS, Topic
from dhal.envs.robots import go1

torch.set_num_threads(1)

# Long enough to stand up (~2.5 s), stand briefly and run the policy for about a second.
RUN = ClosedLoopConfig(duration_s=4.0, auto_start_after_s=0.3, command=(0.5, 0.0, 0.0), command_delay_steps=1)
# The legs swapped front-left/front-right: what a positional joint mapping does with a reordered message.
SWAPPED_LEGS = np.r_[3:6, 0:3, 6:12]
TERMS_OF_JOINTS = {"joint_pos", "joint_vel"}


@pytest.fixture(scope="module")
def sim_log(exported_policy, tmp_path_factory) -> Path:
    """A simulated run: ground truth logged, targets applied one physics step after publication."""
    path = tmp_path_factory.mktemp("replay") / "sim.mcap"
    result = run_closed_loop(exported_policy, path, RUN)
    assert "POLICY" in result.fsm_states, result
    return path


@pytest.fixture(scope="module")
def real_like_log(exported_policy, tmp_path_factory) -> Path:
    """As from the real robot: no ground truth, and joint states sent in another order than the policy's."""
    path = tmp_path_factory.mktemp("replay") / "real.mcap"
    wire = tuple(reversed(go1.JOINT_NAMES))
    run_closed_loop(exported_policy, path, dataclasses.replace(RUN, ground_truth_hz=None, wire_joint_order=wire))
    return path


def skip_without_headless_gl(video: VideoResult | Skipped) -> None:
    if isinstance(video, Skipped) and "rendering failed" in video.reason:
        pytest.skip(f"no OpenGL platform for headless rendering here: {video.reason}")


def read_frames(path: Path) -> list[np.ndarray]:
    import imageio.v2 as imageio

    reader: Any = imageio.get_reader(path)
    frames = [frame for frame in reader]
    reader.close()
    return frames


class SwappedLegsBuilder(ObservationBuilder):
    """A controller bug: the observation takes the joints in the wrong order."""

    def build(self, signals: RobotSignals, command) -> np.ndarray:
        swapped = dataclasses.replace(signals, joint_pos=signals.joint_pos[SWAPPED_LEGS],
                                      joint_vel=signals.joint_vel[SWAPPED_LEGS])
        return super().build(swapped, command)


def test_sim_log_actions_are_bit_identical_and_observations_rebuild_exactly(sim_log):
    log = load_replay_log(sim_log)
    actions = check_actions(log)
    assert isinstance(actions, ActionCheck)
    assert actions.compared == int(log.observed.sum()) > 20
    assert actions.bit_identical and actions.max_abs_diff == 0.0 and actions.mismatched_steps == 0
    observations = rebuild_observations(log)
    assert isinstance(observations, ObservationCheck)
    assert observations.compared == actions.compared and observations.not_rebuilt == 0
    assert observations.exact and observations.max_abs_diff == 0.0
    assert [t.term for t in observations.terms] == [t.name for t in log.contract.frame_terms]


def test_permuted_joint_state_order_still_rebuilds_exactly(real_like_log):
    log = load_replay_log(real_like_log)
    assert set(log.joint_states.names) == {tuple(reversed(go1.JOINT_NAMES))}  # the wire order really differs
    observations = rebuild_observations(log)
    assert isinstance(observations, ObservationCheck)
    assert observations.compared > 20 and observations.exact and observations.not_rebuilt == 0


def test_observation_built_with_the_wrong_joint_order_is_flagged_by_term(exported_policy, tmp_path):
    loop = ClosedLoop(exported_policy, RUN)
    loop.controller.builder = SwappedLegsBuilder(loop.controller.contract)
    loop.run(tmp_path / "swapped.mcap")
    log = load_replay_log(tmp_path / "swapped.mcap")
    actions = check_actions(log)
    assert isinstance(actions, ActionCheck) and actions.bit_identical  # the policy did act on what it got
    observations = rebuild_observations(log)
    assert isinstance(observations, ObservationCheck)
    assert not observations.exact and observations.mismatched_steps == observations.compared > 20
    assert set(observations.mismatched_terms) == TERMS_OF_JOINTS
    assert all(t.max_abs_diff == 0.0 for t in observations.terms if t.term not in TERMS_OF_JOINTS)
    report = replay(ReplayConfig(log=tmp_path / "swapped.mcap", out=tmp_path / "out", video=False, sim=False,
                                 plots=False))
    assert "FAIL" in format_report(report) and "joint_pos" in format_report(report) and not report.checks_passed
    per_step = np.load(report.steps_path)
    terms = list(per_step["observations/terms"])
    diffs = per_step["observations/step_term_max_abs_diff"]
    assert diffs.shape == (observations.compared, len(terms))
    joint_columns = [terms.index(t) for t in sorted(TERMS_OF_JOINTS)]
    assert (diffs[:, joint_columns].max(axis=1) > 0).all()
    assert not np.delete(diffs, joint_columns, axis=1).any()


def _rewrite_with_scaled_term(source: Path, target: Path, term: str, factor: float) -> None:
    """A copy of a log whose logged observations have `term` scaled in every frame."""
    run_ = read_log(source)
    policy = load_replay_log(source).contract
    columns = np.zeros(policy.frame_size, dtype=bool)
    columns[policy.term_slice(term)] = True
    columns = np.tile(columns, policy.history_length)
    by_name = {t.name: t for t in ALL_TOPICS}
    metadata = {name: data for name, data in run_.metadata.items() if name != "dhal_log"}
    with McapLogger(target, metadata=metadata, attachments=run_.attachments, queue_size=1 << 20) as log:
        for name, messages in run_.topics.items():
            topic = by_name.get(name, Topic(name, messages.type, reliable=True))
            for data, time_ns in zip(messages.data, messages.log_time_ns):
                log.log_raw(topic, data, int(time_ns))
        s = run_.steps
        for k in range(len(s)):
            def row(values: np.ndarray) -> np.ndarray:
                return np.zeros(0, np.float32) if np.isnan(values[k]).all() else values[k].copy()

            observation = row(s.observation)
            if observation.size:
                observation[columns] *= factor
            log.log_step(PolicyStepRecord(
                stamp_ns=int(s.stamp_ns[k]), step=int(s.step[k]), fsm_state=int(s.fsm_state[k]),
                robot_mode=int(s.robot_mode[k]), observation=observation, action=row(s.action),
                joint_targets=row(s.joint_targets), policy_targets=row(s.policy_targets),
                mode_probs=row(s.mode_probs), latent=row(s.latent), command=s.command[k].copy(),
                inference_ms=float(s.inference_ms[k]), state_age_ms=float(s.state_age_ms[k]),
                loop_period_ms=float(s.loop_period_ms[k]), clamp_flags=int(s.clamp_flags[k]),
                fault_flags=int(s.fault_flags[k])), int(s.log_time_ns[k]))


def test_wrongly_scaled_logged_observations_fail_both_checks(sim_log, tmp_path):
    corrupted = tmp_path / "scaled.mcap"
    _rewrite_with_scaled_term(sim_log, corrupted, "joint_vel", 2.0)
    log = load_replay_log(corrupted)
    actions = check_actions(log)
    assert isinstance(actions, ActionCheck)
    assert not actions.bit_identical and actions.mismatched_steps > 0 and actions.max_abs_diff > 0
    observations = rebuild_observations(log)
    assert isinstance(observations, ObservationCheck)
    assert observations.mismatched_terms == ("joint_vel",)


def test_open_loop_replay_of_a_sim_log_stays_close_and_other_gains_diverge(sim_log):
    log = load_replay_log(sim_log)
    robot = SimulatedGo1()
    same = open_loop_replay(log, robot, BridgeConfig())
    assert not isinstance(same, Skipped)
    result, series = same
    assert "/sim/base_pose" in result.initial_state and result.mode_source == "/go1/mode"
    assert result.samples == len(log.joint_states) and result.mode_mismatch_s == 0.0
    assert result.rms_rad < 0.01 and result.max_abs_rad < 0.1
    softer = BridgeConfig().with_overrides({"gains": {"stand": {"kp": 20.0}, "policy": {"kp": 15.0}}})
    other = open_loop_replay(log, robot, softer)
    assert not isinstance(other, Skipped)
    assert other[0].gains["ACTIVE_STAND"]["kp"] == 20.0
    assert other[0].rms_rad > max(10 * result.rms_rad, 0.02)
    assert series.replayed.shape == series.logged.shape == (result.samples, len(go1.JOINT_NAMES))


def test_open_loop_of_a_real_log_says_where_the_base_comes_from(real_like_log):
    log = load_replay_log(real_like_log)
    replayed = open_loop_replay(log, SimulatedGo1(), BridgeConfig())
    assert not isinstance(replayed, Skipped)
    assert "keyframe 'push'" in replayed[0].initial_state and "no ground truth" in replayed[0].initial_state


def test_video_of_a_real_log_is_oriented_by_the_imu(real_like_log, tmp_path):
    log = load_replay_log(real_like_log)
    video = render_video(log, SimulatedGo1(), tmp_path / "real.mp4", fps=1.0, width=32, height=24, max_seconds=1.0)
    skip_without_headless_gl(video)
    assert isinstance(video, VideoResult) and video.frames == 2 and "/imu/data" in video.base_pose
    frames = read_frames(Path(video.path))
    assert len(frames) == 2 and frames[0].shape[:2] == (24, 32)


def test_cli_run_writes_the_summary_plots_and_video(sim_log, tmp_path):
    out = tmp_path / "out"
    cfg = ReplayConfig(log=sim_log, out=out, width=32, height=24, fps=1.0, video_seconds=3.0, sim_seconds=3.0)
    report = replay(cfg)
    skip_without_headless_gl(report.video)
    text = format_report(report)
    summary = json.loads((out / "replay.json").read_text())
    assert {part: summary[part]["verdict"] for part in ("actions", "observations", "plots", "video", "open_loop")} == {
        "actions": "PASS", "observations": "PASS", "plots": "DONE", "video": "DONE", "open_loop": "DONE"}
    assert summary["actions"]["compared"] > 20 and summary["open_loop"]["rms_rad"] < 0.01
    assert summary["open_loop"]["duration_s"] == pytest.approx(3.0)
    assert report.checks_passed and not np.load(out / "replay_steps.npz")["actions/step_max_abs_diff"].any()
    assert summary["log"]["ground_truth"] == str(sim_log)
    for name in ("joints.png", "modes.png", "timing.png", "open_loop.png"):
        assert (out / name).stat().st_size > 10_000, name
    frames = read_frames(out / "replay.mp4")
    assert len(frames) == 4 and not np.array_equal(frames[0], frames[-1])  # the robot stood up meanwhile
    for label, verdict in (("(a) actions", "PASS"), ("(b) observations", "PASS"), ("(e) open loop", "DONE")):
        line = next(line for line in text.splitlines() if line.startswith(label))
        assert line[len(label):].split()[0] == verdict, line


def test_parts_that_cannot_run_are_skipped_with_the_reason(exported_policy, tmp_path):
    path = tmp_path / "passive.mcap"
    run_closed_loop(exported_policy, path, dataclasses.replace(RUN, duration_s=0.3, auto_start_after_s=None))
    report = replay(ReplayConfig(log=path, out=tmp_path / "out", video=False, plots=False))
    assert isinstance(report.actions, Skipped) and "never ran" in report.actions.reason
    assert isinstance(report.observations, Skipped)
    assert isinstance(report.open_loop, Skipped) and "no joint targets" in report.open_loop.reason
    summary = json.loads(report.json_path.read_text())
    assert summary["open_loop"]["verdict"] == "SKIPPED" and summary["video"]["reason"] == "--no-video"


def _log(path: Path, with_policy: bool, with_step: bool, policy: Path) -> Path:
    attachments = {"policy.onnx": policy.read_bytes()} if with_policy else {}
    with McapLogger(path, attachments=attachments) as log:
        if with_step:
            log.log_step(PolicyStepRecord(stamp_ns=1, step=0, fsm_state=1, robot_mode=0,
                                          observation=np.zeros(0, np.float32), action=np.zeros(0, np.float32)), 1)
    return path


def test_unusable_logs_are_command_errors_naming_the_file(exported_policy, tmp_path):
    not_mcap = tmp_path / "notes.mcap"
    not_mcap.write_text("not a log")
    cases = {
        tmp_path / "missing.mcap": "does not exist",
        not_mcap: "not an MCAP file",
        _log(tmp_path / "no_policy.mcap", False, True, exported_policy): "no policy.onnx attachment",
        _log(tmp_path / "no_steps.mcap", True, False, exported_policy): "no policy steps",
    }
    for path, problem in cases.items():
        with pytest.raises(CommandError, match=problem) as error:
            run(ReplayConfig(log=path, out=tmp_path / "out", video=False, sim=False))
        assert str(path) in str(error.value)


def test_set_pose_places_the_robot_where_asked():
    robot = SimulatedGo1()
    joints = np.array(go1.DEFAULT_POSE) + 0.05
    quat = np.array([np.cos(0.2), 0.0, 0.0, np.sin(0.2)])  # 0.4 rad of yaw
    robot.set_pose(joints, np.array([1.0, -0.5, 0.4]), quat, carry_board=True)
    measured = robot.measure()
    np.testing.assert_allclose(measured.joint_pos, joints, atol=1e-6)
    np.testing.assert_allclose(measured.base_pos, [1.0, -0.5, 0.4], atol=1e-6)
    np.testing.assert_allclose(measured.base_quat_wxyz, quat, atol=1e-6)
    state = robot.sim.read()
    info = robot.sim.info
    foot = state.site_xpos[0, info.site_ids["FL_foot"]].numpy()
    mount = state.site_xpos[0, info.site_ids["FL_mount"]].numpy()
    np.testing.assert_allclose(foot, mount, atol=1e-5)  # the board was carried to the foot tied to it
