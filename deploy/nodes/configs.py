"""The deploy nodes' command-line configs, kept free of heavy imports so that `dhal` builds its
command tree (and `dhal sim`, `dhal train` run) where the deploy extras are not installed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro


@dataclass
class PolicyNodeConfig:
    """Run the policy node (ONNX Runtime, one thread) on the deploy topics."""

    policy: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="POLICY_ONNX")]
    """An ONNX file written by `dhal export`."""
    dry_run: bool = True
    """Compute and log everything, but never request ACTIVE_POLICY (the robot only stands)."""
    auto_start_after_s: float | None = None
    """Unattended start (sim-in-the-loop): stand up at once, start the policy after standing this long."""
    safety: tuple[str, ...] = ()
    """SafetyConfig overrides KEY=VALUE, e.g. state_timeout_s=0.03 max_tilt_rad=0.9."""
    state_rate_hz: float = 200.0
    """The robot side's joint-state rate; the policy steps on the first state one control period after the last."""
    log_dir: Path | None = Path("logs")
    """Where the MCAP log goes (one file per run); none with --log-dir ''."""
    duration_s: float | None = None
    """Stop after this long (default: until SIGINT/SIGTERM)."""
    executor: str = "events"
    """rclpy executor: events (EventsExecutor) or single (SingleThreadedExecutor)."""
    domain_id: int | None = None
    """ROS domain id (default: $ROS_DOMAIN_ID or 0)."""
    diagnostics_hz: float = 1.0
    expected_contract_digest: str | None = None
    """Refuse a policy whose contract digest differs (the robot side's contract)."""


@dataclass
class SimNodeConfig:
    """Run the simulated Go1 (MuJoCo, real time) on the deploy topics."""

    scene: str = "go1_skateboard"
    keyframe: str = "push"
    """Initial pose: push (on the board, right feet down) or glide."""
    backend: str = "mujoco_batch"
    realtime_factor: float = 1.0
    """1 = real time; the policy node's timeouts assume it."""
    log_dir: Path | None = Path("logs")
    duration_s: float | None = None
    executor: str = "events"
    domain_id: int | None = None
    bridge: tuple[str, ...] = ()
    """Robot-side safety overrides KEY=VALUE (BridgeConfig fields), e.g. command_timeout_s=0.1."""
    ground_truth_hz: float = 50.0
