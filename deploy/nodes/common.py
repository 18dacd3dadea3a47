"""What every deploy node process shares: the rclpy context and executor loop, stop signals, the
per-run MCAP logger with its metadata, and diagnostics messages."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dhal.deploy.mcap_log import McapLogger
from dhal.deploy.topics import ALL_TOPICS, Topic

if TYPE_CHECKING:  # rclpy is imported when a node starts, so `dhal` works where ROS is not installed
    from rclpy.context import Context


def wall_s() -> float:
    return time.time()


def init_context(domain_id: int | None) -> Context:
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    return context


def make_executor(context: Context, kind: str) -> Any:
    """'events' (rclpy's EventsExecutor: half the CPU, fewer overruns) or 'single'."""
    if kind == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor(context=context)
    if kind == "single":
        from rclpy.executors import SingleThreadedExecutor

        return SingleThreadedExecutor(context=context)
    raise ValueError(f"executor must be 'events' or 'single', got {kind!r}")


class StopFlag:
    """Set by SIGINT/SIGTERM or a deadline; the spin loop checks it (spin_once, never spin(): a
    spinning EventsExecutor in another thread has hung the process on shutdown, DEPLOY.md §2)."""

    def __init__(self, duration_s: float | None) -> None:
        self.deadline = None if duration_s is None else time.monotonic() + duration_s
        self.stopped = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.stopped = True

    def __bool__(self) -> bool:
        return self.stopped or (self.deadline is not None and time.monotonic() >= self.deadline)


def spin_until(executor: Any, context: Context, stop: StopFlag, on_idle: Callable[[], None] | None = None) -> None:
    import rclpy

    while rclpy.ok(context=context) and not stop:
        executor.spin_once(timeout_sec=0.01)
        if on_idle is not None:
            on_idle()


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def session_metadata(node_name: str, config: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    import onnxruntime

    return {
        "session": {
            "node": node_name, "host": platform.node(), "python": platform.python_version(),
            "rclpy": _version("ros-rclpy"), "onnxruntime": onnxruntime.__version__, "git_sha": git_sha(),
            "ros_domain_id": os.environ.get("ROS_DOMAIN_ID", ""), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "config": {"json": json.dumps(config, sort_keys=True, default=str)},
    }


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def open_log(log_dir: Path | None, node_name: str, metadata: Mapping[str, Mapping[str, str]],
             attachments: Mapping[str, bytes]) -> McapLogger | None:
    if log_dir is None:
        return None
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{node_name}_{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}.mcap"
    return McapLogger(path, metadata=metadata, attachments=attachments, topics=ALL_TOPICS)


class TopicIO:
    """A node's publishers and subscriptions on the deploy topics; every message that goes out or
    comes in is also written to the node's log (when it has one)."""

    def __init__(self, node: Any, log: McapLogger | None) -> None:
        self.node, self.log = node, log

    def record(self, topic: Topic, msg: Any) -> None:
        if self.log is not None:
            self.log.log_message(topic, msg, time.time_ns())

    def subscribe(self, topic: Topic, callback: Callable[[Any], None]) -> None:
        from dhal.deploy.ros import message_class, qos

        def logged(msg: Any) -> None:
            self.record(topic, msg)
            callback(msg)

        self.node.create_subscription(message_class(topic), topic.name, logged, qos(topic))

    def publisher(self, topic: Topic) -> Any:
        from dhal.deploy.ros import message_class, qos

        return self.node.create_publisher(message_class(topic), topic.name, qos(topic))

    def publish(self, publisher: Any, topic: Topic, msg: Any) -> None:
        publisher.publish(msg)
        self.record(topic, msg)


def diagnostic_array(stamp: Any, name: str, level: int, message: str, values: Mapping[str, Any]) -> Any:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id="go1",
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array
