"""rclpy glue shared by the deploy nodes: QoS profiles and message classes from `topics.Topic`.

The only module (with the node files) that imports rclpy; core logic stays testable without ROS.
"""

from __future__ import annotations

import importlib
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from dhal.deploy.topics import Topic


def qos(topic: Topic, depth: int | None = None) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=topic.depth if depth is None else depth,
        reliability=ReliabilityPolicy.RELIABLE if topic.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if topic.transient_local else DurabilityPolicy.VOLATILE,
    )


def message_class(topic: Topic) -> Any:
    """The Python class of a topic's interface, e.g. sensor_msgs.msg.JointState."""
    package, kind, name = topic.type.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def stamp_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def to_stamp(ns: int) -> Any:
    from builtin_interfaces.msg import Time

    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))
