"""`dhal deploy ...`: the processes of the robot computer, and small tools that replace the ROS CLI
(which PyPI wheels do not ship): sending an operator request or an e-stop, and reading a log."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from dhal.commands.errors import CommandError
from dhal.deploy.nodes.configs import PolicyNodeConfig, SimNodeConfig


def run_policy_node(cfg: PolicyNodeConfig) -> str:
    from dhal.deploy.nodes import policy_node
    from dhal.deploy.runtime import PolicyFileError

    try:
        return policy_node.run(cfg)
    except PolicyFileError as error:
        raise CommandError(str(error)) from error
    except ValueError as error:
        raise CommandError(f"policy node: {error}") from error


def run_sim_node(cfg: SimNodeConfig) -> str:
    from dhal.deploy.nodes import sim_node

    try:
        return sim_node.run(cfg)
    except (ValueError, KeyError) as error:
        raise CommandError(f"sim node: {error}") from error


@dataclass
class RequestConfig:
    """Send an operator request (or the e-stop) to the policy node, as the remote's buttons do."""

    request: Annotated[Literal["stand_up", "start_policy", "sit_down", "damp", "reset", "estop", "estop_release"],
                       tyro.conf.Positional]
    domain_id: int | None = None
    wait_s: float = 1.0
    """How long to wait for the policy node to be discovered before sending."""


def run_request(cfg: RequestConfig) -> str:
    from std_msgs.msg import Bool, String

    from dhal.deploy import topics
    from dhal.deploy.nodes import common
    from dhal.deploy.ros import qos

    context = common.init_context(cfg.domain_id)
    try:
        from rclpy.node import Node

        node = Node("dhal_request", context=context)
        if cfg.request.startswith("estop"):
            publisher = node.create_publisher(Bool, topics.ESTOP.name, qos(topics.ESTOP))
            message: object = Bool(data=cfg.request == "estop")
        else:
            publisher = node.create_publisher(String, topics.OPERATOR.name, qos(topics.OPERATOR))
            message = String(data=cfg.request)
        deadline = time.monotonic() + cfg.wait_s
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        subscribers = publisher.get_subscription_count()
        publisher.publish(message)
        time.sleep(0.2)  # let a reliable sample reach its readers before the context goes away
        node.destroy_node()
    finally:
        context.try_shutdown()
    return f"sent {cfg.request} to {subscribers} subscriber(s)"


@dataclass
class LogInfoConfig:
    """What a log holds: duration, messages per topic, attachments, metadata (like `ros2 bag info`)."""

    log: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="LOG")]


def run_log_info(cfg: LogInfoConfig) -> str:
    from dhal.deploy.log_schema import McapLogError
    from dhal.deploy.log_read import summary

    try:
        return summary(cfg.log)
    except McapLogError as error:
        raise CommandError(str(error)) from error
