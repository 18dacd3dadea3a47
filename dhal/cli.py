"""The `dhal` command: typed subcommands over the configs in dhal/commands.

    dhal sim --policy scripted --seconds 8     roll out, render env 0, plot
    dhal bench env --sizes 64 512              env vs its own physics throughput
    dhal bench update --preset paper           cost of one PPO update at a preset's sizes
    dhal bench modes --out-dir outputs/modes   mode identification on a switching linear system
    dhal bench learning --iterations 300       train, then beat random actions or fail
    dhal train --preset cpu --iterations 1000  multi-critic PPO + hybrid modes; --resume RUN_DIR
    dhal play RUN_DIR --command-vx 1.0         render a trained policy, coloured by mode
    dhal eval RUN_DIR --episodes 64            success rate, tracking, falls, mode statistics
    dhal export RUN_DIR --out policy.onnx      deterministic policy + contract metadata as ONNX
    dhal bench export RUN_DIR                  inference latency paced at the control rate
    dhal bench deploy policy.onnx              state-to-command latency of the node pair over DDS
    dhal replay logs/dhal_policy_*.mcap        re-run, rebuild, plot, render and re-simulate a deploy log
    dhal deploy sim                            the simulated Go1 on the deploy topics (ROS 2)
    dhal deploy policy policy.onnx             the onboard controller (dry run unless --no-dry-run)
    dhal deploy go1-bridge --config go1.json   the real Go1's UDP link on the same topics (docs/bringup.md)
    dhal deploy request stand_up               operator request or e-stop, without the ROS CLI
    dhal deploy cmd-vel --vx 1.0               a velocity command for the policy node
    dhal deploy log-info LOG.mcap              what a deploy log holds
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from tyro.extras import SubcommandApp

from dhal.commands import bench_deploy, bench_env, bench_learning, bench_update, deploy, export, play, replay, sim, train
from dhal.commands import eval as eval_command
from dhal.commands.errors import CommandError
from dhal.deploy.nodes.configs import PolicyNodeConfig, SimNodeConfig
from dhal.policies import bench_modes_seeds
from dhal.policies.bench_modes import BenchModesConfig

DESCRIPTION = "DHAL skateboarding stack: a Go1 on a skateboard in batched MuJoCo."


def build_app() -> SubcommandApp:
    app = SubcommandApp()
    app.command(name="sim")(sim.SimConfig)
    app.command(name="train")(train.TrainCommandConfig)
    app.command(name="play")(play.PlayConfig)
    app.command(name="eval")(eval_command.EvalConfig)
    app.command(name="export")(export.ExportConfig)
    app.command(name="replay")(replay.ReplayConfig)
    bench = SubcommandApp()
    bench.command(name="env")(bench_env.BenchEnvConfig)
    bench.command(name="update")(bench_update.BenchUpdateConfig)
    bench.command(name="modes")(BenchModesConfig)
    bench.command(name="export")(export.BenchExportConfig)
    bench.command(name="deploy")(bench_deploy.BenchDeployConfig)
    bench.command(name="learning")(bench_learning.BenchLearningConfig)
    app.command(bench, name="bench", help="Measure: throughput, PPO update cost, mode identification, learning, latency.")
    robot = SubcommandApp()
    robot.command(name="sim")(SimNodeConfig)
    robot.command(name="policy")(PolicyNodeConfig)
    robot.command(name="request")(deploy.RequestConfig)
    robot.command(name="cmd-vel")(deploy.CmdVelConfig)
    robot.command(name="log-info")(deploy.LogInfoConfig)
    app.command(robot, name="deploy", help="The robot computer's processes (ROS 2) and their tools; "
                "`dhal deploy go1-bridge --help` for the Go1 UDP bridge.")
    return app


def _bench_modes(cfg: BenchModesConfig) -> str:
    try:
        cfg.validate()
    except ValueError as error:
        raise CommandError(str(error)) from error
    return bench_modes_seeds.report(cfg)


def _bench_env(config: bench_env.BenchEnvConfig) -> str:
    table = bench_env.format_table(bench_env.run(config))
    return table if config.json is None else f"{table}\nresults: {config.json}"


# Each command's config type -> what runs it and returns the text to print.
HANDLERS: dict[type, Callable[[Any], str]] = {
    sim.SimConfig: lambda c: sim.report(sim.run(c)),
    train.TrainCommandConfig: lambda c: train.report(train.run(c)),
    play.PlayConfig: lambda c: play.report(play.run(c)),
    eval_command.EvalConfig: lambda c: eval_command.report(eval_command.run(c)),
    export.ExportConfig: export.run_export,
    replay.ReplayConfig: replay.run,
    bench_env.BenchEnvConfig: _bench_env,
    bench_update.BenchUpdateConfig: bench_update.run,
    BenchModesConfig: _bench_modes,
    export.BenchExportConfig: export.run_bench_export,
    bench_deploy.BenchDeployConfig: bench_deploy.run,
    bench_learning.BenchLearningConfig: bench_learning.run,
    SimNodeConfig: deploy.run_sim_node,
    PolicyNodeConfig: deploy.run_policy_node,
    deploy.RequestConfig: deploy.run_request,
    deploy.CmdVelConfig: deploy.run_cmd_vel,
    deploy.LogInfoConfig: deploy.run_log_info,
}


def dispatch(config: object) -> None:
    handler = HANDLERS.get(type(config))
    if handler is None:
        raise TypeError(f"no command for {type(config).__name__}")
    print(handler(config))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["deploy", "go1-bridge"]:
        # The bridge takes `--config FILE.json` before its flags, so it parses its own arguments.
        from dhal.deploy.go1 import bridge_node

        return bridge_node.main(args[2:])
    config = build_app().cli(prog="dhal", description=DESCRIPTION, args=args)
    try:
        dispatch(config)
    except CommandError as error:
        print(f"dhal: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
