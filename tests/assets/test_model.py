"""The MJCF matches the constants in envs/robots/*.py, and its keyframes are consistent."""

from __future__ import annotations

import ast
import copy
import importlib.util
import itertools

import mujoco
import numpy as np
import pytest

import dhal.assets as assets
from dhal.envs.robots import go1, skateboard as sb

OBJ = mujoco.mjtObj


def _ids(m: mujoco.MjModel, obj: mujoco.mjtObj, names) -> list[int]:
    ids = [mujoco.mj_name2id(m, obj, n) for n in names]
    missing = [n for n, i in zip(names, ids) if i < 0]
    assert not missing, f"missing {obj.name}: {missing}"
    return ids


def test_assets_init_is_pure_paths() -> None:
    tree = ast.parse((assets.ASSETS_DIR / "__init__.py").read_text())
    imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name and name.startswith("mujoco") for name in imported)
    for path in (assets.SCENE_XML, assets.GO1_XML, assets.SKATEBOARD_XML, assets.SCENE_KEYFRAMES_XML):
        assert path.is_file(), path


@pytest.mark.parametrize("path", [assets.GO1_XML, assets.SKATEBOARD_XML], ids=["go1", "skateboard"])
def test_parts_compile_alone(path) -> None:
    mujoco.MjModel.from_xml_path(str(path))


def test_every_name_exists(scene_model) -> None:
    m = scene_model
    _ids(m, OBJ.mjOBJ_BODY, [go1.ROOT_BODY, sb.DECK_BODY])
    _ids(m, OBJ.mjOBJ_JOINT, [go1.ROOT_JOINT, sb.BOARD_ROOT_JOINT, *go1.JOINT_NAMES])
    _ids(m, OBJ.mjOBJ_JOINT, [*sb.TRUCK_JOINTS, *sb.WHEEL_JOINTS])
    _ids(m, OBJ.mjOBJ_ACTUATOR, go1.ACTUATOR_NAMES)
    _ids(m, OBJ.mjOBJ_SITE, [go1.IMU_SITE, *go1.FOOT_SITES, *sb.MARKER_SITES, sb.FOOT_MOUNT_SITE])
    _ids(m, OBJ.mjOBJ_GEOM, [sb.DECK_GEOM, *sb.WHEEL_GEOMS])
    _ids(m, OBJ.mjOBJ_EQUALITY, [sb.FOOT_ATTACH_EQUALITY])
    _ids(
        m,
        OBJ.mjOBJ_SENSOR,
        [
            go1.IMU_QUAT_SENSOR,
            go1.IMU_GYRO_SENSOR,
            go1.IMU_ACC_SENSOR,
            go1.IMU_LINVEL_SENSOR,
            *go1.FOOT_TOUCH_SENSORS,
            *go1.COLLISION_TOUCH_SENSORS,
            *sb.WHEEL_TOUCH_SENSORS,
        ],
    )
    for name in assets.KEYFRAMES:
        _ids(m, OBJ.mjOBJ_KEY, [name])
    assert m.key(0).name == "push", "backends start from the first keyframe"


def test_joint_types_order_and_free_roots(scene_model) -> None:
    m = scene_model
    assert m.jnt_type[m.joint(go1.ROOT_JOINT).id] == mujoco.mjtJoint.mjJNT_FREE
    assert m.jnt_bodyid[m.joint(go1.ROOT_JOINT).id] == m.body(go1.ROOT_BODY).id
    assert m.jnt_type[m.joint(sb.BOARD_ROOT_JOINT).id] == mujoco.mjtJoint.mjJNT_FREE
    assert m.jnt_bodyid[m.joint(sb.BOARD_ROOT_JOINT).id] == m.body(sb.DECK_BODY).id
    qadr = [m.jnt_qposadr[m.joint(n).id] for n in go1.JOINT_NAMES]
    assert qadr == list(range(7, 19)), "leg joints must follow the free joint, in JOINT_NAMES order"
    # Actuator i drives joint i.
    for i, (act, joint) in enumerate(zip(go1.ACTUATOR_NAMES, go1.JOINT_NAMES)):
        assert m.actuator(act).id == i
        assert m.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT
        assert m.actuator_trnid[i, 0] == m.joint(joint).id


def test_limits_gains_and_torque_clip(scene_model) -> None:
    m = scene_model
    jids = [m.joint(n).id for n in go1.JOINT_NAMES]
    np.testing.assert_allclose(m.jnt_range[jids, 0], go1.JOINT_LOWER)
    np.testing.assert_allclose(m.jnt_range[jids, 1], go1.JOINT_UPPER)
    assert m.jnt_limited[jids].all()
    np.testing.assert_allclose(m.actuator_ctrlrange[:, 0], go1.JOINT_LOWER)
    np.testing.assert_allclose(m.actuator_ctrlrange[:, 1], go1.JOINT_UPPER)
    assert m.actuator_ctrllimited.all() and m.actuator_forcelimited.all()
    np.testing.assert_allclose(m.actuator_forcerange[:, 0], -np.array(go1.TORQUE_LIMITS))
    np.testing.assert_allclose(m.actuator_forcerange[:, 1], go1.TORQUE_LIMITS)
    # Plain position servo: force = gain * ctrl + b0 + b1 q + b2 qdot.
    assert (m.actuator_gaintype == mujoco.mjtGain.mjGAIN_FIXED).all()
    assert (m.actuator_biastype == mujoco.mjtBias.mjBIAS_AFFINE).all()
    np.testing.assert_allclose(m.actuator_gainprm[:, 0], go1.KP)
    np.testing.assert_allclose(m.actuator_biasprm[:, :3], np.tile([0.0, -go1.KP, -go1.KD], (12, 1)))
    assert (m.actuator_dyntype == mujoco.mjtDyn.mjDYN_NONE).all()

    # DHAL's law, evaluated by MuJoCo, with one saturated joint per kind.
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, m.key("push").id)
    rng = np.random.default_rng(0)
    dof = [m.jnt_dofadr[j] for j in jids]
    d.qvel[dof] = rng.uniform(-3, 3, 12)
    d.ctrl[:] = np.clip(m.key_ctrl[0] + rng.uniform(-0.3, 0.3, 12), *m.actuator_ctrlrange.T)
    d.ctrl[:3] = m.actuator_ctrlrange[:3, 1]  # far targets: these three clip at the limit
    mujoco.mj_forward(m, d)
    q = d.qpos[[m.jnt_qposadr[j] for j in jids]]
    limit = np.array(go1.TORQUE_LIMITS)
    expected = np.clip(go1.KP * (d.ctrl - q) - go1.KD * d.qvel[dof], -limit, limit)
    np.testing.assert_allclose(d.actuator_force, expected, atol=1e-9)
    assert np.any(np.abs(d.actuator_force) == limit), "no joint saturated"


def test_masses_geometry_and_stock_trunk(scene_model) -> None:
    m = scene_model
    trunk = m.body(go1.ROOT_BODY).id
    assert m.body_mass[trunk] == pytest.approx(5.204)
    # Stock principal moments of the URDF tensor (0.0168/0.063/0.0717), not DHAL's 0.0628/0.243/0.2817.
    np.testing.assert_allclose(np.sort(m.body_inertia[trunk]), [0.0168, 0.063, 0.0717], atol=1e-3)
    assert m.body_subtreemass[trunk] == pytest.approx(5.204 + 4 * (0.591 + 0.92 + 0.135862 + 0.06))
    for leg, sy in zip(go1.LEGS, (-1, 1, -1, 1)):
        sx = 1 if leg[0] == "F" else -1
        np.testing.assert_allclose(m.body_pos[m.body(f"{leg}_hip").id], [sx * 0.1881, sy * 0.04675, 0])
        np.testing.assert_allclose(m.body_pos[m.body(f"{leg}_thigh").id], [0, sy * 0.08, 0])
        np.testing.assert_allclose(m.body_pos[m.body(f"{leg}_calf").id], [0, 0, -go1.THIGH_LENGTH])
        foot = m.site(f"{leg}_foot").id
        foot_from_calf = m.body_pos[m.site_bodyid[foot]] + m.site_pos[foot]
        np.testing.assert_allclose(foot_from_calf, [0, 0, -go1.CALF_LENGTH])
        geom = m.geom(f"{leg}_foot_geom").id
        assert m.geom_type[geom] == mujoco.mjtGeom.mjGEOM_SPHERE
        assert m.geom_size[geom][0] == pytest.approx(go1.FOOT_RADIUS)
    deck = m.geom(sb.DECK_GEOM).id
    np.testing.assert_allclose(2 * m.geom_size[deck], sb.DECK_SIZE)
    for g in sb.WHEEL_GEOMS:
        assert m.geom_size[m.geom(g).id][0] == pytest.approx(sb.WHEEL_RADIUS)


def _collides(m: mujoco.MjModel, a: int, b: int) -> bool:
    return bool((m.geom_contype[a] & m.geom_conaffinity[b]) or (m.geom_contype[b] & m.geom_conaffinity[a]))


def test_collision_masks(scene_model) -> None:
    m = scene_model

    def geoms_of(root: str) -> list[int]:
        """The colliding geoms of the tree under body `root`."""
        tree = m.body(root).id
        return [
            g
            for g in range(m.ngeom)
            if m.body_rootid[m.geom_bodyid[g]] == tree and (m.geom_contype[g] or m.geom_conaffinity[g])
        ]

    robot = geoms_of(go1.ROOT_BODY)
    board = geoms_of(sb.DECK_BODY)
    floor = m.geom("floor").id
    deck = m.geom(sb.DECK_GEOM).id
    wheels = [m.geom(g).id for g in sb.WHEEL_GEOMS]
    feet = [m.geom(f"{leg}_foot_geom").id for leg in go1.LEGS]
    assert sorted(board) == sorted([deck, *wheels]), "only deck and wheels may collide on the board"
    assert not any(_collides(m, a, b) for a, b in itertools.combinations(robot, 2)), "robot self-collision"
    assert all(_collides(m, g, floor) for g in robot)
    assert all(_collides(m, g, deck) for g in robot)
    assert all(_collides(m, w, floor) for w in wheels) and _collides(m, deck, floor)
    assert not any(_collides(m, w, g) for w in wheels for g in [deck, *robot, *wheels])
    assert all(_collides(m, f, deck) and _collides(m, f, floor) for f in feet)


def test_wheels_and_trucks(scene_model) -> None:
    m = scene_model
    for joint in sb.WHEEL_JOINTS:
        j = m.joint(joint).id
        assert m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE and not m.jnt_limited[j]
        assert m.dof_damping[m.jnt_dofadr[j]] <= 1e-5
        assert m.jnt_stiffness[j] == 0
    # No actuator and no hidden assist on the board.
    board_dofs = set(range(m.jnt_dofadr[m.joint(sb.BOARD_ROOT_JOINT).id], m.nv))
    assert not any(m.actuator_trnid[i, 0] in [m.dof_jntid[d] for d in board_dofs] for i in range(m.nu))
    # Kingpin axes in the deck frame: tilted up, front pointing forward and rear backward.
    for joint, sign in zip(sb.TRUCK_JOINTS, (1, -1)):
        j = m.joint(joint).id
        axis = m.jnt_axis[j]  # truck bodies are not rotated relative to the deck
        assert np.allclose(m.body_quat[m.jnt_bodyid[j]], [1, 0, 0, 0])
        tilt = np.degrees(np.arctan2(axis[2], sign * axis[0]))
        assert 30 < tilt < 50 and abs(axis[1]) < 1e-9 and m.jnt_stiffness[j] > 0


def _load_generator():
    path = assets.ASSETS_DIR / "scenes" / "make_keyframes.py"
    spec = importlib.util.spec_from_file_location("make_keyframes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stored_keyframes_are_reproducible(scene_model) -> None:
    gen = _load_generator()
    m = gen.compile_without_keyframes()
    for name in assets.KEYFRAMES:
        np.testing.assert_allclose(
            gen.solve_keyframe(m, name), scene_model.key(name).qpos, atol=1e-7,
            err_msg=f"{name}: stale keyframe, rerun assets/scenes/make_keyframes.py",
        )


@pytest.mark.parametrize("name", assets.KEYFRAMES)
def test_keyframe_start_state(scene_model, tools, name) -> None:
    m = scene_model
    d = mujoco.MjData(m)
    key = m.key(name).id
    mujoco.mj_resetDataKeyframe(m, d, key)
    mujoco.mj_forward(m, d)
    pose = go1.PUSH_POSE if name == "push" else go1.GLIDE_POSE
    np.testing.assert_allclose([d.qpos[tools.qadr(m, j)] for j in go1.JOINT_NAMES], pose)
    np.testing.assert_allclose(m.key_ctrl[key], pose)
    np.testing.assert_allclose(d.qpos[:2], 0, atol=1e-12)
    # Zero violation of the tie, feet and wheels touching without penetration, board level.
    gap = d.site_xpos[m.site("FL_foot").id] - d.site_xpos[m.site(sb.FOOT_MOUNT_SITE).id]
    assert np.linalg.norm(gap) < 1e-6
    assert all(d.contact[i].dist > -1e-6 for i in range(d.ncon))
    for g in sb.WHEEL_GEOMS:
        gid = m.geom(g).id
        assert d.geom_xpos[gid][2] - m.geom_size[gid][0] == pytest.approx(0, abs=1e-6)
    np.testing.assert_allclose(d.xmat[m.body(sb.DECK_BODY).id], np.eye(3).ravel(), atol=1e-12)
    deck_top = d.geom_xpos[m.geom(sb.DECK_GEOM).id][2] + m.geom_size[m.geom(sb.DECK_GEOM).id][2]
    on_deck = ("FL", "RL") if name == "push" else go1.LEGS
    for leg in go1.LEGS:
        z = d.site_xpos[m.site(f"{leg}_foot").id][2]
        want = deck_top + go1.FOOT_RADIUS if leg in on_deck else go1.FOOT_RADIUS
        assert z == pytest.approx(want, abs=1e-6), leg
    # Markers sit at resting foot-centre height.
    for s in sb.MARKER_SITES:
        assert d.site_xpos[m.site(s).id][2] == pytest.approx(deck_top + go1.FOOT_RADIUS, abs=1e-9)


def test_robot_and_wheel_friction_govern_their_floor_contacts(scene_model) -> None:
    """Randomised friction must reach the contacts: with MuJoCo's default 'max of both geoms' a
    robot friction below the floor's would be silently ignored. Geom priorities prevent that."""
    m = copy.copy(scene_model)
    floor = m.geom("floor").id
    moving = m.geom_bodyid != 0
    m.geom_friction[moving, 0] = 0.3
    m.geom_friction[[m.geom(g).id for g in sb.WHEEL_GEOMS], 0] = 0.7
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, m.keyframe("push").id)
    d.ctrl[:] = m.key_ctrl[m.keyframe("push").id]
    mujoco.mj_step(m, d, 20)  # settle onto the floor
    wheels = {m.geom(g).id for g in sb.WHEEL_GEOMS}
    seen = {"wheel": 0, "foot": 0}
    for c in d.contact[: d.ncon]:
        if floor not in (c.geom1, c.geom2):
            continue
        other = c.geom2 if c.geom1 == floor else c.geom1
        kind = "wheel" if other in wheels else "foot"
        assert c.friction[0] == pytest.approx(0.7 if kind == "wheel" else 0.3)
        seen[kind] += 1
    assert seen["wheel"] >= 4 and seen["foot"] >= 2  # FR and RR stand on the floor in `push`
