"""`dhal bench deploy`: state-to-command latency and loop jitter of the node pair over real DDS.

It starts the MuJoCo robot node and the policy node as two processes (as on the robot computer),
lets the policy ride for a while, stops both and measures from their logs:
* latency: from the robot side stamping the joint state a policy step used (PolicyStep.stamp) to
  the robot side receiving the resulting targets (its log time of the command whose
  layout.data_offset carries that step index); both are the same host's wall clock;
* the policy loop period (control jitter) and the robot side's state period;
* inference time, and how many states the policy node received of those published.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tyro

from dhal.commands.errors import CommandError


@dataclass
class BenchDeployConfig:
    """Latency and jitter of the policy node driving the MuJoCo robot node over DDS on this host."""

    policy: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="POLICY_ONNX")]
    seconds: float = 20.0
    """How long the pair runs (the policy starts after ~3.5 s of stand-up and standing)."""
    executor: str = "events"
    """rclpy executor of both nodes: events or single."""
    json: Path | None = None
    logs: Path | None = None
    """Keep the two MCAP logs here (default: a temporary folder)."""
    domain_id: int | None = None
    """ROS domain (default: a random one in 150..200, so a running robot stack is not disturbed)."""


def _stats(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"count": 0}
    return {"count": int(values.size), "p50": float(np.percentile(values, 50)), "p90": float(np.percentile(values, 90)),
            "p99": float(np.percentile(values, 99)), "max": float(values.max())}


def measure(policy_log: Path, sim_log: Path) -> dict[str, Any]:
    from dhal.deploy.log_read import read_log
    from dhal.deploy.safety_types import FsmState
    from dhal.deploy.topics import JOINT_STATES, JOINT_TARGETS

    policy, sim = read_log(policy_log), read_log(sim_log)
    steps = policy.steps
    acting = (steps.fsm_state == FsmState.POLICY) | (steps.fsm_state == FsmState.STAND)
    stamp_by_step = dict(zip(steps.step.tolist(), steps.stamp_ns.tolist()))
    commands = sim.topics[JOINT_TARGETS.name]
    latency = []
    for message, received_ns in zip(commands.messages, commands.log_time_ns):
        stamp = stamp_by_step.get(int(message.layout.data_offset))
        if stamp:
            latency.append((int(received_ns) - int(stamp)) / 1e6)
    states_sent = sim.topics[JOINT_STATES.name]
    states_seen = policy.topics[JOINT_STATES.name]
    return {
        "state_to_command_latency_ms": _stats(np.array(latency)),
        "policy_loop_period_ms": _stats(steps.loop_period_ms[acting]),
        "inference_ms": _stats(steps.inference_ms[acting]),
        "state_age_at_step_ms": _stats(steps.state_age_ms[acting]),
        "robot_state_period_ms": _stats(np.diff(np.asarray(states_sent.log_time_ns, dtype=np.float64)) / 1e6),
        "states_published": len(states_sent),
        "states_received_by_policy": len(states_seen),
        "policy_steps": int(acting.sum()),
        "policy_steps_riding": int((steps.fsm_state == FsmState.POLICY).sum()),
    }


def _start(args: list[str], env: dict[str, str], out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dhal.cli", *args], env=env, stdout=out.open("w"),
                            stderr=subprocess.STDOUT)


def run(cfg: BenchDeployConfig) -> str:
    if not cfg.policy.is_file():
        raise CommandError(f"policy file {cfg.policy} does not exist (write one with `dhal export`)")
    if cfg.seconds < 6:
        raise CommandError("run for at least 6 s: stand-up and standing take about 3.5 s before the policy acts")
    domain = cfg.domain_id if cfg.domain_id is not None else random.randint(150, 200)
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    with tempfile.TemporaryDirectory() as tmp:
        logs = cfg.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        common = ["--executor", cfg.executor, "--log-dir", str(logs)]
        sim = _start(["deploy", "sim", *common, "--duration-s", str(cfg.seconds + 8)], env, logs / "sim.out")
        time.sleep(1.0)
        policy = _start(["deploy", "policy", str(cfg.policy), "--no-dry-run", "--auto-start-after-s", "0.5",
                         *common, "--duration-s", str(cfg.seconds)], env, logs / "policy.out")
        try:
            policy_code = policy.wait(timeout=cfg.seconds + 60)
        finally:
            sim.send_signal(signal.SIGINT)
            sim.wait(timeout=30)
        if policy_code != 0:
            raise CommandError(f"the policy node failed:\n{(logs / 'policy.out').read_text()[-2000:]}")
        policy_log = next(logs.glob("dhal_policy_*.mcap"))
        sim_log = next(logs.glob("dhal_sim_*.mcap"))
        result = measure(policy_log, sim_log)
    result.update(policy=str(cfg.policy), seconds=cfg.seconds, executor=cfg.executor, cpus=os.cpu_count(),
                  load_avg_1min=os.getloadavg()[0])
    if cfg.json is not None:
        cfg.json.parent.mkdir(parents=True, exist_ok=True)
        cfg.json.write_text(json.dumps(result, indent=2))
    return report(result)


def report(result: dict[str, Any]) -> str:
    lines = [f"policy node <-> MuJoCo node over DDS, {result['executor']} executor, {result['seconds']:.0f} s "
             f"({result['policy_steps']} policy steps, {result['policy_steps_riding']} riding)",
             f"  {'ms':<32} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}"]
    for key in ("state_to_command_latency_ms", "policy_loop_period_ms", "robot_state_period_ms",
                "state_age_at_step_ms", "inference_ms"):
        s = result[key]
        if s.get("count"):
            lines.append(f"  {key[:-3].replace('_', ' '):<32} {s['p50']:>7.2f} {s['p90']:>7.2f} {s['p99']:>7.2f} {s['max']:>7.2f}")
    lines.append(f"  joint states received by the policy node: {result['states_received_by_policy']} of "
                 f"{result['states_published']} published (machine: {result['cpus']} CPUs, load {result['load_avg_1min']:.1f})")
    return "\n".join(lines)
