"""Rewrite go1_skateboard_keyframes.xml: the `push` and `glide` start states of the scene.

Run from anywhere: ``python assets/scenes/make_keyframes.py``. Rerun it after changing any
geometry in assets/go1, assets/skateboard or the scene; tests/assets checks that the stored
keyframes still satisfy the contacts and the FL foot tie.

Each keyframe holds the Go1 in a pose of envs/robots/go1.py with its root at x = y = 0, yaw 0,
and root height, roll and pitch solved so that every foot centre sits exactly one foot radius
above its support: the deck top for feet on the board, the floor for the push pose's right
feet. The board is level with all four wheels touching the floor, and placed so that its FL_mount
site coincides with the FL foot centre (zero violation of FL_foot_attach).
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from dhal.envs.robots import go1, skateboard

HERE = Path(__file__).resolve().parent
SCENE_XML = HERE / "go1_skateboard.xml"
KEYFRAMES_XML = HERE / "go1_skateboard_keyframes.xml"

# Which feet stand on the deck in each keyframe (the others stand on the floor).
ON_DECK = {
    "push": ("FL", "RL"),
    "glide": ("FR", "FL", "RR", "RL"),
}
POSES = {"push": go1.PUSH_POSE, "glide": go1.GLIDE_POSE}


def compile_without_keyframes() -> mujoco.MjModel:
    spec = mujoco.MjSpec.from_file(str(SCENE_XML))
    for key in list(spec.keys):
        spec.delete(key)
    return spec.compile()


def _qadr(m: mujoco.MjModel, joint: str) -> int:
    return int(m.jnt_qposadr[m.joint(joint).id])


def board_rest_height(m: mujoco.MjModel) -> float:
    """Height of the deck origin when the level board's lowest wheel touches z = 0."""
    d = mujoco.MjData(m)
    a = _qadr(m, skateboard.BOARD_ROOT_JOINT)
    d.qpos[a : a + 7] = [0, 0, 0, 1, 0, 0, 0]
    mujoco.mj_kinematics(m, d)
    bottoms = [d.geom_xpos[m.geom(g).id][2] - m.geom_size[m.geom(g).id][0] for g in skateboard.WHEEL_GEOMS]
    return -min(bottoms)


def _rpy_quat(roll: float, pitch: float) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_euler2Quat(q, np.array([roll, pitch, 0.0]), "xyz")
    return q


def solve_keyframe(m: mujoco.MjModel, name: str) -> np.ndarray:
    d = mujoco.MjData(m)
    deck_z = board_rest_height(m)
    mount = m.site(skateboard.FOOT_MOUNT_SITE)
    mount_local = m.site_pos[mount.id].copy()
    if m.site_bodyid[mount.id] != m.body(skateboard.DECK_BODY).id:
        raise RuntimeError("FL_mount must be a site of the deck body")
    deck_foot_z = deck_z + mount_local[2]  # a resting foot centre on the deck
    floor_foot_z = go1.FOOT_RADIUS
    targets = np.array([deck_foot_z if leg in ON_DECK[name] else floor_foot_z for leg in go1.LEGS])

    root = _qadr(m, go1.ROOT_JOINT)
    for jname, q in zip(go1.JOINT_NAMES, POSES[name]):
        d.qpos[_qadr(m, jname)] = q
    feet = [m.site(s).id for s in go1.FOOT_SITES]

    def foot_z(u: np.ndarray) -> np.ndarray:
        d.qpos[root : root + 3] = [0.0, 0.0, u[0]]
        d.qpos[root + 3 : root + 7] = _rpy_quat(u[1], u[2])
        mujoco.mj_kinematics(m, d)
        return d.site_xpos[feet, 2].copy()

    # Gauss-Newton on (height, roll, pitch): 4 foot heights, 3 unknowns.
    u = np.array([0.3, 0.0, 0.0])
    for _ in range(50):
        r = foot_z(u) - targets
        if np.max(np.abs(r)) < 1e-12:
            break
        jac = np.stack([(foot_z(u + h) - foot_z(u - h)) / 2e-7 for h in np.eye(3) * 1e-7], axis=1)
        u -= np.linalg.lstsq(jac, r, rcond=None)[0]
    residual = np.max(np.abs(foot_z(u) - targets))
    if residual > 1e-9:
        raise RuntimeError(f"{name}: feet cannot reach their supports (residual {residual:.2e} m)")

    # Level board, yaw 0, FL_mount on the FL foot centre.
    fl = d.site_xpos[feet[go1.LEGS.index("FL")]].copy()
    b = _qadr(m, skateboard.BOARD_ROOT_JOINT)
    d.qpos[b : b + 3] = fl - mount_local
    d.qpos[b + 3 : b + 7] = [1, 0, 0, 0]
    if abs(d.qpos[b + 2] - deck_z) > 1e-9:
        raise RuntimeError(f"{name}: deck height {d.qpos[b + 2]} != rest height {deck_z}")
    mujoco.mj_forward(m, d)
    worst = min((d.contact[i].dist for i in range(d.ncon)), default=0.0)
    if worst < -1e-6:
        raise RuntimeError(f"{name}: keyframe starts with {-worst * 1e3:.2f} mm of penetration")
    return d.qpos.copy()


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.9g}" if abs(v) > 1e-12 else "0" for v in values)


def write_keyframes(m: mujoco.MjModel, path: Path = KEYFRAMES_XML) -> str:
    lines = [
        "<!-- Written by make_keyframes.py: do not edit by hand, rerun the script. -->",
        "<mujoco>",
        "  <keyframe>",
    ]
    root, board = _qadr(m, go1.ROOT_JOINT), _qadr(m, skateboard.BOARD_ROOT_JOINT)
    for name in ("push", "glide"):
        qpos = solve_keyframe(m, name)
        robot = qpos[root : root + 19]
        rest = qpos[board:]
        if root != 0 or board != 19 or len(qpos) != 19 + len(rest):
            raise RuntimeError("expected the robot's 19 qpos first, then the board's")
        lines += [
            f'    <key name="{name}"',
            f'         qpos="{_fmt(robot[:7])}',
            f"               {_fmt(robot[7:])}",
            f'               {_fmt(rest)}"',
            f'         ctrl="{_fmt(np.array(POSES[name]))}"/>',
        ]
    lines += ["  </keyframe>", "</mujoco>", ""]
    text = "\n".join(lines)
    path.write_text(text)
    return text


if __name__ == "__main__":
    print(write_keyframes(compile_without_keyframes()))
