"""The Warp programs behind the MuJoCo Warp simulator (tested through it in test_mujoco_warp.py):
which models the "observe" program covers, and a clear error for an unknown program."""

from __future__ import annotations

import mujoco
import pytest
import torch

pytest.importorskip("mujoco_warp")

from dhal.envs.backends import make_simulator  # noqa: E402
from dhal.envs.backends.warp_programs import NAMES, observable  # noqa: E402
from dhal.envs.registry import scene_path  # noqa: E402

SCENE = scene_path("go1_skateboard")


def test_models_with_sensors_the_observe_program_lacks_always_derive_whole() -> None:
    model = mujoco.MjModel.from_xml_path(str(SCENE))
    assert observable(model)
    spec = mujoco.MjSpec.from_file(str(SCENE))
    spec.add_sensor(type=mujoco.mjtSensor.mjSENS_ACTUATORPOS, objtype=mujoco.mjtObj.mjOBJ_ACTUATOR,
                    objname=mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, 0))
    assert not observable(spec.compile())


def test_an_unknown_program_is_named_with_the_known_ones() -> None:
    sim = make_simulator("mujoco_warp", SCENE, 1, "cpu")
    with pytest.raises(KeyError, match="unknown Warp program 'stepp'.*" + ", ".join(NAMES)):
        sim._programs.run("stepp")
    sim._programs.run("kinematics")  # and the simulator still works
    sim.step(torch.zeros(1, sim.info.nu))
