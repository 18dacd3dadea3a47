"""`dhal replay LOG`: what a deploy run's MCAP log says, checked and shown.

    dhal replay logs/dhal_policy_<time>_<pid>.mcap               checks, plots, video, open-loop replay
    dhal replay LOG --no-video --no-sim                           the checks and plots only
    dhal replay LOG --fps 10 --width 320 --height 240             a lighter video
    dhal replay LOG --ground-truth logs/dhal_sim_<...>.mcap       trunk pose from the sim node's log
    dhal replay LOG --bridge "gains={'policy': {'kp': 30.0}}"     open-loop replay with other gains

(a) the attached ONNX re-run on every logged observation: are the actions bit-identical?
(b) every observation rebuilt from the logged JointState/IMU messages by the deploy's own builder,
    compared term by term (a joint-order or scaling mistake names its term);
(c) plots: joints against targets, modes and FSM state, timing;
(d) the logged motion posed in MuJoCo, to an mp4;
(e) the logged targets replayed open-loop through the robot side's PD in MuJoCo, and the
    divergence of the simulated joints from the logged ones.

Writes to --out: replay.json (every number), replay_steps.npz (per step: |action diff|, and per
observation term |logged - rebuilt|), joints.png, modes.png, timing.png, open_loop.png and
replay.mp4. Parts that cannot run on a log are reported as skipped, with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import tyro

from dhal.commands.env_options import checked_backend
from dhal.commands.errors import CommandError
from dhal.commands.video import VideoOptions

if TYPE_CHECKING:
    from dhal.deploy.go1.config import BridgeConfig
    from dhal.deploy.replay import ReplayLog, Skipped
    from dhal.deploy.replay_checks import ActionCheck, ObservationCheck
    from dhal.deploy.replay_sim import OpenLoopResult, VideoResult
    from dhal.deploy.sim_robot import SimulatedGo1

JSON_NAME = "replay.json"
STEPS_NAME = "replay_steps.npz"
VIDEO_NAME = "replay.mp4"
JOINTS_PLOT = "joints.png"
MODES_PLOT = "modes.png"
TIMING_PLOT = "timing.png"
OPEN_LOOP_PLOT = "open_loop.png"


@dataclass
class ReplayInput:
    log: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="LOG")]
    """An MCAP log written by the policy node (it carries the policy and every message it used)."""


@dataclass
class ReplayConfig(VideoOptions, ReplayInput):
    """Check a deploy log (actions bit-identical, observations rebuilt), plot it, render it, and
    replay its targets open-loop in MuJoCo."""

    video: bool = True
    """Render the logged motion to replay.mp4 (--no-video to skip, e.g. without headless OpenGL)."""
    out: Path = Path("outputs/replay")
    """Folder for replay.json, the plots and the video."""
    sim: bool = True
    """Replay the logged targets open-loop in the simulator (--no-sim to skip)."""
    sim_seconds: float | None = None
    """Replay only the first this many seconds open-loop (open-loop divergence grows without bound)."""
    plots: bool = True
    """Write the plots (--no-plots to skip)."""
    ground_truth: Path | None = None
    """A log of the MuJoCo robot node from the same run: its /sim/base_pose and robot-side config are used where LOG has none."""
    fps: float = 25.0
    """Video frames per second of log time."""
    video_seconds: float | None = None
    """Render only the first this many seconds."""
    camera: str = ""
    """A camera of the scene (e.g. overview); default: one that follows the trunk."""
    scene: str = "go1_skateboard"
    """Scene of the video and of the open-loop replay."""
    keyframe: str = "push"
    """Pose of what the log does not know (the board; a real robot's trunk position)."""
    backend: str = "mujoco_batch"
    """Simulator backend."""
    bridge: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Robot-side override KEY=VALUE (BridgeConfig fields) for the open-loop replay, e.g. --bridge "gains={'policy': {'kp': 30.0}}"; repeatable."""


@dataclass(frozen=True)
class ReplayReport:
    log: dict[str, Any]
    actions: ActionCheck | Skipped
    observations: ObservationCheck | Skipped
    plots: list[str] | Skipped
    video: VideoResult | Skipped
    open_loop: OpenLoopResult | Skipped
    bridge_config: str  # where the open-loop replay's robot-side config came from
    json_path: Path
    steps_path: Path | None  # per-step differences of (a) and (b), where they ran

    @property
    def checks_passed(self) -> bool:
        """(a) bit-identical and (b) exact, where they could run."""
        from dhal.deploy.replay import Skipped

        actions_ok = isinstance(self.actions, Skipped) or self.actions.bit_identical
        observations_ok = isinstance(self.observations, Skipped) or (
            self.observations.exact and not self.observations.not_rebuilt)
        return actions_ok and observations_ok


def _validate(cfg: ReplayConfig) -> None:
    cfg.check_size()
    if not cfg.fps > 0:
        raise CommandError(f"--fps must be positive, got {cfg.fps}")
    for name in ("video_seconds", "sim_seconds"):
        value = getattr(cfg, name)
        if value is not None and not value > 0:
            raise CommandError(f"--{name.replace('_', '-')} must be positive, got {value}")


def _bridge_config(cfg: ReplayConfig, log: ReplayLog) -> tuple[BridgeConfig, str]:
    from dhal.commands.env_options import parse_overrides
    from dhal.deploy.go1.config import BridgeConfig

    config, source = BridgeConfig(), "BridgeConfig defaults (the log does not record the robot side's config)"
    if log.bridge_config is not None:
        try:
            config = BridgeConfig().with_overrides(log.bridge_config)
            source = f"recorded in {log.bridge_config_source}"
        except (KeyError, ValueError, TypeError) as error:
            source = f"BridgeConfig defaults (the config recorded in {log.bridge_config_source} is unusable: {error})"
    if cfg.bridge:
        try:
            config = config.with_overrides(parse_overrides(cfg.bridge))
        except (KeyError, ValueError, TypeError) as error:
            raise CommandError(f"--bridge: {error}") from error
        source += f", overridden by --bridge {' '.join(cfg.bridge)}"
    return config, source


def _open_robot(cfg: ReplayConfig) -> SimulatedGo1:
    from dhal.deploy.sim_robot import SimulatedGo1

    backend = checked_backend(cfg.backend)
    try:
        return SimulatedGo1(cfg.scene, backend, cfg.keyframe)
    except (FileNotFoundError, KeyError) as error:
        raise CommandError(f"cannot build the simulated robot: {error}") from error


def replay(cfg: ReplayConfig) -> ReplayReport:
    from dhal.deploy.replay import ReplayError, Skipped, load_replay_log, log_facts
    from dhal.deploy.replay_checks import check_actions, rebuild_observations
    from dhal.deploy.replay_sim import open_loop_replay, render_video

    _validate(cfg)
    try:
        log = load_replay_log(cfg.log, cfg.ground_truth)
    except ReplayError as error:
        raise CommandError(str(error)) from error
    cfg.out.mkdir(parents=True, exist_ok=True)
    facts = log_facts(log)
    actions = check_actions(log)
    observations = rebuild_observations(log)
    plots: list[str] | Skipped = Skipped("--no-plots")
    if cfg.plots:
        from dhal.deploy.replay_plots import plot_joints, plot_modes, plot_timing

        plots = [str(plot(log, cfg.out / name)) for plot, name in
                 ((plot_joints, JOINTS_PLOT), (plot_modes, MODES_PLOT), (plot_timing, TIMING_PLOT))]
    bridge_config, bridge_source = _bridge_config(cfg, log)
    robot: SimulatedGo1 | None = None
    video: VideoResult | Skipped = Skipped("--no-video")
    open_loop: OpenLoopResult | Skipped = Skipped("--no-sim")
    try:
        if cfg.video:
            robot = _open_robot(cfg)
            camera: str | int = cfg.camera or -1
            video = render_video(log, robot, cfg.out / VIDEO_NAME, cfg.fps, cfg.width, cfg.height, camera,
                                 cfg.keyframe, cfg.video_seconds)
        if cfg.sim:
            robot = robot if robot is not None else _open_robot(cfg)
            replayed = open_loop_replay(log, robot, bridge_config, cfg.keyframe, cfg.sim_seconds)
            if isinstance(replayed, Skipped):
                open_loop = replayed
            else:
                open_loop, series = replayed
                if cfg.plots and isinstance(plots, list):
                    from dhal.deploy.replay_plots import plot_open_loop

                    title = f"{log.path.name}: open-loop replay of the logged targets\nrobot side: {bridge_source}"
                    plots.append(str(plot_open_loop(series, cfg.out / OPEN_LOOP_PLOT, title)))
    except ReplayError as error:
        raise CommandError(str(error)) from error
    report = ReplayReport(log=facts, actions=actions, observations=observations, plots=plots, video=video,
                          open_loop=open_loop, bridge_config=bridge_source, json_path=cfg.out / JSON_NAME,
                          steps_path=_save_per_step(actions, observations, cfg.out / STEPS_NAME))
    report.json_path.write_text(json.dumps(as_json(report), indent=2, allow_nan=False) + "\n")
    return report


def _save_per_step(actions: ActionCheck | Skipped, observations: ObservationCheck | Skipped,
                   path: Path) -> Path | None:
    """The per-step arrays of the checks that ran, as <check>/<field> in one .npz."""
    import numpy as np

    from dhal.deploy.replay import Skipped

    arrays: dict[str, Any] = {}
    for name, part in (("actions", actions), ("observations", observations)):
        if not isinstance(part, Skipped):
            arrays.update({f"{name}/{f.name}": getattr(part, f.name) for f in dataclasses.fields(part)
                           if f.metadata.get("per_step")})
    if not isinstance(observations, Skipped):
        arrays["observations/terms"] = np.array([t.term for t in observations.terms])
    if not arrays:
        return None
    np.savez_compressed(path, **arrays)
    return path


def run(cfg: ReplayConfig) -> str:
    return format_report(replay(cfg))


# ---- output -------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON values: dataclasses as objects, tuples as lists, NaN/inf as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not f.metadata.get("per_step")}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return value


def _part(verdict: str, value: Any) -> dict[str, Any]:
    body = _plain(value)
    return {"verdict": verdict, **(body if isinstance(body, dict) else {"files": body})}


def verdicts(report: ReplayReport) -> dict[str, str]:
    from dhal.deploy.replay import Skipped

    def verdict(value: Any, passed: bool | None) -> str:
        if isinstance(value, Skipped):
            return "SKIPPED"
        return "DONE" if passed is None else ("PASS" if passed else "FAIL")

    actions, observations = report.actions, report.observations
    return {
        "actions": verdict(actions, None if isinstance(actions, Skipped) else actions.bit_identical),
        "observations": verdict(observations, None if isinstance(observations, Skipped)
                                else observations.exact and not observations.not_rebuilt),
        "plots": verdict(report.plots, None),
        "video": verdict(report.video, None),
        "open_loop": verdict(report.open_loop, None),
    }


def as_json(report: ReplayReport) -> dict[str, Any]:
    marks = verdicts(report)
    return {
        "log": _plain(report.log),
        "actions": _part(marks["actions"], report.actions),
        "observations": _part(marks["observations"], report.observations),
        "plots": _part(marks["plots"], report.plots),
        "video": _part(marks["video"], report.video),
        "open_loop": {**_part(marks["open_loop"], report.open_loop), "bridge_config": report.bridge_config},
        "per_step_file": _plain(report.steps_path),
    }


def _detail(report: ReplayReport, part: str) -> str:
    from dhal.deploy.replay import Skipped

    value = getattr(report, part)
    if isinstance(value, Skipped):
        return value.reason
    if part == "actions":
        a = value
        if a.bit_identical:
            return f"{a.compared} steps bit-identical"
        return (f"{a.mismatched_steps} of {a.compared} steps differ, max |diff| {a.max_abs_diff:.3g}, "
                f"first at step {a.first_mismatch_step}")
    if part == "observations":
        o = value
        text = f"{o.compared} steps rebuilt exactly" if o.exact else (
            f"{o.mismatched_steps} of {o.compared} steps differ in "
            + ", ".join(f"{t.term} (max {t.max_abs_diff:.3g}, from step {t.first_mismatch_step})"
                        for name in o.mismatched_terms for t in o.terms if t.term == name))
        if o.not_rebuilt:
            text += f"; {o.not_rebuilt} could not be rebuilt ({o.problems[0]})"
        return text
    if part == "plots":
        return ", ".join(Path(p).name for p in value)
    if part == "video":
        return f"{value.path} ({value.frames} frames at {value.fps:g} fps; {value.base_pose})"
    e = value
    active = f" (while active {e.active_rms_rad:.3g})" if e.active_rms_rad is not None else ""
    text = (f"joint divergence RMS {e.rms_rad:.3g} rad{active}, max {e.max_abs_rad:.3g} rad "
            f"({e.max_abs_joint} at {e.max_abs_time_s:.2f} s) over {e.duration_s:.1f} s; start: {e.initial_state}")
    if e.mode_mismatch_s:
        text += f"; the replay's robot mode differed from the logged one for {e.mode_mismatch_s:.2f} s"
    return text


def format_report(report: ReplayReport) -> str:
    facts = report.log
    state = "closed cleanly" if facts["closed_cleanly"] else f"NOT closed cleanly: {facts['problem']}"
    lines = [f"replay of {facts['path']} ({state}): {facts['steps']} policy steps over {facts['duration_s']:.1f} s, "
             f"FSM {' -> '.join(facts['fsm_states'])}"]
    if facts["logger_dropped"]:
        lines.append(f"warning: the logger dropped {facts['logger_dropped']} messages")
    if facts["step_gaps"]:
        lines.append(f"warning: steps missing from the log: {facts['step_gaps']}")
    marks = verdicts(report)
    labels = {"actions": "(a) actions", "observations": "(b) observations", "plots": "(c) plots",
              "video": "(d) video", "open_loop": "(e) open loop"}
    lines.append(f"{'part':<18} {'verdict':<8} detail")
    lines += [f"{labels[part]:<18} {marks[part]:<8} {_detail(report, part)}" for part in labels]
    lines.append(f"summary: {report.json_path}")
    return "\n".join(lines)
