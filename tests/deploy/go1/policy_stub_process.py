"""A stand-in policy process for the "dead policy node" test: it requests a mode, streams constant
joint targets and prints 'streaming' once started, until it is killed.

    python policy_stub_process.py --domain-id 42 --mode 3 --targets 0.0,1.0,...
"""

from __future__ import annotations

import argparse
import sys

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray, UInt8

from dhal.deploy import topics
from dhal.deploy.ros import qos


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domain-id", type=int, required=True)
    parser.add_argument("--mode", type=int, required=True)
    parser.add_argument("--targets", type=str, required=True, help="comma-separated, contract joint order")
    parser.add_argument("--rate-hz", type=float, default=100.0)
    args = parser.parse_args(argv)
    targets = [float(v) for v in args.targets.split(",")]
    context = Context()
    rclpy.init(context=context, domain_id=args.domain_id)
    node = Node("policy_stub_process", context=context)
    target_pub = node.create_publisher(Float64MultiArray, topics.JOINT_TARGETS.name, qos(topics.JOINT_TARGETS))
    mode_pub = node.create_publisher(UInt8, topics.MODE_REQUEST.name, qos(topics.MODE_REQUEST))
    node.create_timer(1.0 / args.rate_hz, lambda: target_pub.publish(Float64MultiArray(data=targets)))
    mode_pub.publish(UInt8(data=args.mode))
    print("streaming", flush=True)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    while context.ok():
        executor.spin_once(timeout_sec=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
