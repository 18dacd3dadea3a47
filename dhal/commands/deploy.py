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
from dhal.deploy.topics import Topic

DISCOVERY_SETTLE_S = 0.3
ACK_TIMEOUT_S = 2.0


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

    if cfg.request.startswith("estop"):
        delivery = _publish_once(topics.ESTOP, Bool(data=cfg.request == "estop"), cfg.domain_id, cfg.wait_s)
    else:
        delivery = _publish_once(topics.OPERATOR, String(data=cfg.request), cfg.domain_id, cfg.wait_s)
    return f"sent {cfg.request} to {delivery}"


@dataclass
class CmdVelConfig:
    """Send a velocity command (geometry_msgs/Twist on /cmd_vel); the policy node keeps the last one."""

    vx: float = 0.0
    """Forward speed, m/s (clipped by the policy node to the training range)."""
    yaw_rate: float = 0.0
    """Yaw rate, rad/s."""
    domain_id: int | None = None
    wait_s: float = 1.0


def run_cmd_vel(cfg: CmdVelConfig) -> str:
    from geometry_msgs.msg import Twist

    from dhal.deploy import topics

    message = Twist()
    message.linear.x, message.angular.z = float(cfg.vx), float(cfg.yaw_rate)
    delivery = _publish_once(topics.CMD_VEL, message, cfg.domain_id, cfg.wait_s)
    return f"sent vx {cfg.vx} m/s, yaw rate {cfg.yaw_rate} rad/s to {delivery}"


def _publish_once(topic: Topic, message: object, domain_id: int | None, wait_s: float) -> str:
    """Publish one message once a subscriber is matched (or `wait_s` passed); says to how many
    subscribers, and whether they acknowledged it."""
    from rclpy.duration import Duration
    from rclpy.node import Node

    from dhal.deploy.nodes import common
    from dhal.deploy.ros import qos

    context = common.init_context(domain_id)
    try:
        node = Node("dhal_request", context=context)
        publisher = node.create_publisher(type(message), topic.name, qos(topic))
        deadline = time.monotonic() + wait_s
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        subscribers = int(publisher.get_subscription_count())
        if subscribers:
            # Matching is seen from each side on its own: a reader that has not matched this writer
            # yet drops the sample (seen as a lost command about once in six runs), so give the
            # reader's side of discovery time to finish, then wait for every reader's acknowledgement.
            time.sleep(DISCOVERY_SETTLE_S)
        publisher.publish(message)
        acknowledged = publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
        node.destroy_node()
    finally:
        context.try_shutdown()
    unacknowledged = "" if acknowledged or not subscribers else f", NOT acknowledged within {ACK_TIMEOUT_S:g} s"
    return f"{subscribers} subscriber(s){unacknowledged}"


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
