"""The bridge as a process: `main(argv)` talks to a fake Go1 and leaves it damped on SIGINT."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

from dhal.deploy.go1.bridge_node import main
from dhal.deploy.go1.fake_robot import FakeGo1
from dhal.deploy.go1.joint_map import SDK_MOTOR_JOINTS
from dhal.deploy.go1.packets import POS_STOP_F

DEADLINE_S = 20.0


def test_bad_configuration_is_an_error_naming_the_problem(tmp_path, capsys):
    path = tmp_path / "bridge.json"
    path.write_text(json.dumps({"comand_timeout_s": 0.1}))
    assert main(["--config", str(path)]) == 2
    assert "comand_timeout_s" in capsys.readouterr().err


def test_process_streams_to_the_robot_and_exits_damped_on_sigint():
    with FakeGo1() as fake:
        env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
               "ROS_DOMAIN_ID": str(random.SystemRandom().randint(1, 100))}
        process = subprocess.Popen(
            [sys.executable, "-m", "dhal.deploy.go1.bridge_node", "--robot-host", "127.0.0.1",
             "--robot-port", str(fake.address[1]), "--local-host", "127.0.0.1", "--local-port", "0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + DEADLINE_S
            while fake.snapshot().packets < 100 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert process.poll() is None and fake.snapshot().packets >= 100, process.communicate(timeout=DEADLINE_S)
            assert fake.snapshot().max_kp == 0.0
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=DEADLINE_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, err
        assert "damping sent" in err

        def damped() -> bool:
            commands = [fake.snapshot().command_for(name) for name in SDK_MOTOR_JOINTS]
            return all(c["kp"] == 0.0 and c["kd"] > 0.0 and c["q"] == np.float32(POS_STOP_F) for c in commands)

        deadline = time.monotonic() + DEADLINE_S
        while not damped():  # the last datagrams may still be in the fake's socket buffer
            assert time.monotonic() < deadline, "the fake robot never received the exit damping packets"
            time.sleep(0.01)
