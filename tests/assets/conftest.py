"""Shared models for the asset physics tests (MuJoCo used directly, CPU only)."""

from __future__ import annotations

from types import SimpleNamespace

import mujoco
import numpy as np
import pytest

from dhal.assets import SCENE_XML, SKATEBOARD_XML
from dhal.envs.robots import skateboard as sb


def board_only_model() -> mujoco.MjModel:
    """The skateboard alone on a floor, with the scene's solver settings."""
    scene = mujoco.MjModel.from_xml_path(str(SCENE_XML))
    spec = mujoco.MjSpec.from_file(str(SKATEBOARD_XML))
    spec.worldbody.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 1], contype=1, conaffinity=1
    )
    spec.option.timestep = scene.opt.timestep
    spec.option.integrator = scene.opt.integrator
    spec.option.cone = scene.opt.cone
    spec.option.iterations = scene.opt.iterations
    spec.option.ls_iterations = scene.opt.ls_iterations
    return spec.compile()


@pytest.fixture(scope="session")
def scene_model() -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(str(SCENE_XML))


@pytest.fixture(scope="session")
def board_model() -> mujoco.MjModel:
    return board_only_model()


def qadr(m: mujoco.MjModel, joint: str) -> int:
    return int(m.jnt_qposadr[m.joint(joint).id])


def dofadr(m: mujoco.MjModel, joint: str) -> int:
    return int(m.jnt_dofadr[m.joint(joint).id])


def wheel_effective_mass(m: mujoco.MjModel) -> float:
    """Board mass plus each wheel's spin inertia (body inertia about the hinge axis plus
    armature) reflected through the wheel radius: the mass a force along the deck accelerates."""
    total = float(m.body_subtreemass[m.body(sb.DECK_BODY).id])
    for joint, geom in zip(sb.WHEEL_JOINTS, sb.WHEEL_GEOMS):
        j = m.joint(joint).id
        body = m.jnt_bodyid[j]
        flat = np.zeros(9)
        mujoco.mju_quat2Mat(flat, m.body_iquat[body])
        rot = flat.reshape(3, 3)
        inertia = rot @ np.diag(m.body_inertia[body]) @ rot.T
        axis = m.jnt_axis[j]
        radius = m.geom_size[m.geom(geom).id][0]
        total += (axis @ inertia @ axis + m.dof_armature[m.jnt_dofadr[j]]) / radius**2
    return total


def warnings_raised(d: mujoco.MjData) -> dict[str, int]:
    return {
        mujoco.mjtWarning(i).name: int(w.number) for i, w in enumerate(d.warning) if w.number > 0
    }


@pytest.fixture(scope="session")
def tools() -> SimpleNamespace:
    """The helpers above, for test modules (importlib import mode: they cannot import conftest)."""
    return SimpleNamespace(
        qadr=qadr,
        dofadr=dofadr,
        wheel_effective_mass=wheel_effective_mass,
        warnings_raised=warnings_raised,
        board_only_model=board_only_model,
    )
