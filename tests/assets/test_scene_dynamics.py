"""The full scene: numerical health under random actions, the FL foot tie, and the keyframes."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from mujoco import batch

from dhal.assets import KEYFRAMES
from dhal.envs.robots import go1, skateboard as sb

DECIMATION = 4  # physics steps per policy step (DHAL: 0.005 s x 4)


def _batch_rollout(m: mujoco.MjModel, seconds: float, noise, seed: int):
    """32 envs, half from each keyframe; each policy step sets targets = keyframe pose + noise.

    Returns the per-step FL foot-to-mount distances (steps, envs) and the batch.
    """
    n = 32
    b = batch.Batch(m, n, nthread=2)
    keys = np.arange(n) % m.nkey
    b.reset(None, keyframe=keys)
    ctrl, qpos, qvel = b.bind("ctrl"), b.bind("qpos"), b.bind("qvel")
    sensordata, site_xpos = b.bind("sensordata"), b.bind("site_xpos")
    foot, mount = m.site("FL_foot").id, m.site(sb.FOOT_MOUNT_SITE).id
    lo, hi = m.actuator_ctrlrange.T
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(int(round(seconds / (DECIMATION * m.opt.timestep)))):
        ctrl[:] = np.clip(m.key_ctrl[keys] + noise(rng, (n, m.nu)), lo, hi)
        b.step(nstep=DECIMATION)  # raises mujoco.batch.SimulationError on a failed env
        assert np.isfinite(qpos).all() and np.isfinite(qvel).all() and np.isfinite(sensordata).all()
        gaps.append(np.linalg.norm(site_xpos[:, foot] - site_xpos[:, mount], axis=1))
    return np.array(gaps), b


def test_random_actions_stay_finite_without_warnings(scene_model) -> None:
    """10 s in 32 envs with targets drawn uniformly over DHAL's whole action range (+-0.75 rad
    around the pose, i.e. a = +-3 at scale 0.25): robots flail, fall and hit the board."""
    gaps, b = _batch_rollout(scene_model, 10.0, lambda rng, shape: rng.uniform(-0.75, 0.75, shape), seed=0)
    warnings = np.asarray(b.warning)
    assert not warnings.any(), f"MuJoCo warnings raised: {np.nonzero(warnings)}"
    assert np.abs(b.bind("qvel")).max() < 500.0
    print(f"\nwild actions: FL tie error max {1e3 * gaps.max():.2f} mm")


def test_foot_tie_holds_under_mild_actions(scene_model) -> None:
    gaps, b = _batch_rollout(scene_model, 4.0, lambda rng, shape: 0.1 * rng.standard_normal(shape), seed=1)
    assert not np.asarray(b.warning).any()
    print(f"\nmild actions: FL tie error max {1e3 * gaps.max():.2f} mm, mean {1e3 * gaps.mean():.2f} mm")
    assert gaps.max() < 5e-3


def _hold(m: mujoco.MjModel, name: str, seconds: float) -> tuple[mujoco.MjData, float]:
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, m.key(name).id)
    foot, mount = m.site("FL_foot").id, m.site(sb.FOOT_MOUNT_SITE).id
    worst = 0.0
    for _ in range(int(round(seconds / m.opt.timestep))):
        mujoco.mj_step(m, d)
        worst = max(worst, float(np.linalg.norm(d.site_xpos[foot] - d.site_xpos[mount])))
    return d, worst


@pytest.mark.parametrize("name", KEYFRAMES)
def test_foot_tie_holds_in_keyframe_pose(scene_model, tools, name) -> None:
    d, worst = _hold(scene_model, name, 2.0)
    print(f"\n{name} held 2 s: FL tie error max {1e3 * worst:.3f} mm")
    assert worst < 5e-3
    assert not tools.warnings_raised(d)


def _in_deck_frame(m: mujoco.MjModel, d: mujoco.MjData, point: np.ndarray) -> np.ndarray:
    deck = m.body(sb.DECK_BODY).id
    return d.xmat[deck].reshape(3, 3).T @ (point - d.xpos[deck])


@pytest.mark.parametrize("name", KEYFRAMES)
def test_keyframe_settles(scene_model, tools, name) -> None:
    """Fixed targets for 0.5 s: the robot stays up, the board stays on its wheels, and the feet
    stay where the keyframe put them."""
    m = scene_model
    d, _ = _hold(m, name, 0.5)
    assert not tools.warnings_raised(d)
    trunk = m.body(go1.ROOT_BODY).id
    up = d.xmat[trunk].reshape(3, 3)[:, 2]
    assert d.xpos[trunk][2] > 0.2, "the trunk sagged or fell"
    assert up[2] > np.cos(0.25), "the trunk tipped more than 0.25 rad"
    assert np.linalg.norm(d.qvel[:3]) < 0.1, "the robot is still moving"

    for s in sb.WHEEL_TOUCH_SENSORS:
        assert d.sensor(s).data[0] > 1.0, f"{s}: wheel off the ground"
    for g in sb.WHEEL_GEOMS:
        gid = m.geom(g).id
        assert abs(d.geom_xpos[gid][2] - m.geom_size[gid][0]) < 2e-3

    deck_geom = m.geom(sb.DECK_GEOM).id
    half = m.geom_size[deck_geom]
    on_deck = ("FL", "RL") if name == "push" else go1.LEGS
    for leg in go1.LEGS:
        p = d.site_xpos[m.site(f"{leg}_foot").id]
        local = _in_deck_frame(m, d, p)
        if leg in on_deck:
            # Resting on the deck top, inside its outline, near the leg's marker.
            assert abs(local[2] - (half[2] + go1.FOOT_RADIUS)) < 3e-3, leg
            assert abs(local[0]) < half[0] and abs(local[1]) < half[1], leg
            marker = m.site_pos[m.site(f"{leg}_marker").id]
            assert np.linalg.norm(local[:2] - marker[:2]) < 0.05, leg
        else:
            # On the floor beside the deck.
            assert abs(p[2] - go1.FOOT_RADIUS) < 3e-3, leg
            assert abs(local[1]) > half[1] + go1.FOOT_RADIUS, leg
        # Every foot but the tied FL one carries its share of the weight.
        if leg != "FL":
            assert d.sensor(f"{leg}_foot_touch").data[0] > 5.0, leg
    for s in go1.COLLISION_TOUCH_SENSORS:
        assert d.sensor(s).data[0] == 0.0, f"{s}: a leg link touches something"
