"""The board alone on a floor: free rolling against analytic numbers, and lean-to-steer."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from dhal.envs.robots import skateboard as sb

PUSH_FORCE = 10.0  # N along the deck's x axis
PUSH_TIME = 0.5  # s
COAST_TIME = 3.0  # s


def _settled(m: mujoco.MjModel) -> mujoco.MjData:
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    mujoco.mj_step(m, d, nstep=int(0.5 / m.opt.timestep))
    return d


def _deck_axes(d: mujoco.MjData, deck: int) -> np.ndarray:
    return d.xmat[deck].reshape(3, 3)


def test_push_reaches_analytic_speed_and_coasts(board_model, tools) -> None:
    m = board_model
    deck = m.body(sb.DECK_BODY).id
    d = _settled(m)
    assert np.abs(d.qvel).max() < 1e-3, "the board does not rest on its wheels"

    meff = tools.wheel_effective_mass(m)
    v_analytic = PUSH_FORCE * PUSH_TIME / meff
    for _ in range(int(round(PUSH_TIME / m.opt.timestep))):
        d.xfrc_applied[deck, :3] = PUSH_FORCE * _deck_axes(d, deck)[:, 0]
        mujoco.mj_step(m, d)
    d.xfrc_applied[:] = 0
    v_push = d.qvel[0]
    print(f"\npushed: {v_push:.4f} m/s, analytic {v_analytic:.4f} m/s (m_eff {meff:.3f} kg)")
    assert v_push == pytest.approx(v_analytic, rel=0.02)
    # Without the wheels' spin inertia the same push would be 7 % faster: the check resolves it.
    assert abs(v_push - PUSH_FORCE * PUSH_TIME / m.body_subtreemass[deck]) > 0.02 * v_analytic

    start = d.qpos[:2].copy()
    mujoco.mj_step(m, d, nstep=int(round(COAST_TIME / m.opt.timestep)))
    v_coast = d.qvel[0]
    loss = 1 - v_coast / v_push
    print(f"coasted {COAST_TIME} s: {v_coast:.4f} m/s, loss {100 * loss:.2f} %")
    assert 0 <= loss < 0.05
    travelled = d.qpos[:2] - start
    assert travelled[0] > 0.95 * v_push * COAST_TIME
    assert abs(travelled[1]) < 0.01 and abs(d.qvel[5]) < 1e-3, "an unloaded straight board must not turn"
    assert not tools.warnings_raised(d)


def _lean_run(m: mujoco.MjModel, tools, roll_torque: float, speed: float = 1.5) -> dict[str, float]:
    """Roll at `speed`, a weight on the deck (a stand-in for the rider, so the unloaded 2.7 kg
    board does not lift its wheels) and a roll torque about the deck's x axis for 2 s."""
    deck = m.body(sb.DECK_BODY).id
    d = _settled(m)
    radius = m.geom_size[m.geom(sb.WHEEL_GEOMS[0]).id][0]
    d.qvel[0] = speed
    for j in sb.WHEEL_JOINTS:
        d.qvel[tools.dofadr(m, j)] = speed / radius
    rider_weight = 100.0  # N
    yaw_rates, front, rear = [], [], []
    steps = int(round(2.0 / m.opt.timestep))
    for i in range(steps):
        axes = _deck_axes(d, deck)
        d.xfrc_applied[deck, :3] = [0, 0, -rider_weight]
        d.xfrc_applied[deck, 3:] = roll_torque * axes[:, 0]
        mujoco.mj_step(m, d)
        touch = [d.sensor(s).data[0] for s in sb.WHEEL_TOUCH_SENSORS]
        assert min(touch) > 1.0, f"a wheel lifted: {touch}"
        if i >= steps // 2:  # the second second: steady carving
            yaw_rates.append(d.qvel[5])
            front.append(d.qpos[tools.qadr(m, "front_truck")])
            rear.append(d.qpos[tools.qadr(m, "rear_truck")])
    assert not tools.warnings_raised(d)
    axes = _deck_axes(d, deck)
    return {
        "yaw_rate": float(np.mean(yaw_rates)),
        "front": float(np.mean(front)),
        "rear": float(np.mean(rear)),
        "roll": float(np.arcsin(axes[2, 1])),  # > 0: the left edge up, i.e. leaning right
        "speed": float(np.linalg.norm(d.qvel[:2])),
    }


def test_lean_right_turns_right_and_left_turns_left(board_model, tools) -> None:
    m = board_model
    right = _lean_run(m, tools, +4.0)  # +x torque: left edge up, lean right
    left = _lean_run(m, tools, -4.0)
    straight = _lean_run(m, tools, 0.0)
    for label, run in (("right", right), ("left", left), ("none", straight)):
        print(
            f"\nlean {label}: yaw rate {run['yaw_rate']:+.3f} rad/s, "
            f"deck roll {np.degrees(run['roll']):+.2f} deg, "
            f"kingpin front {np.degrees(run['front']):+.2f} rear {np.degrees(run['rear']):+.2f} deg"
        )
    # Lean right: the deck rolls right, the front hanger turns negative and the rear positive
    # about their kingpins, and the board yaws clockwise seen from above (z up).
    assert right["roll"] > 0.01 and right["front"] < -0.01 and right["rear"] > 0.01
    assert right["yaw_rate"] < -0.05
    assert left["roll"] < -0.01 and left["front"] > 0.01 and left["rear"] < -0.01
    assert left["yaw_rate"] > 0.05
    assert right["yaw_rate"] == pytest.approx(-left["yaw_rate"], rel=0.05)
    assert abs(straight["yaw_rate"]) < 1e-3

    # Rolling without sideslip: each axle yaws by (hanger angle) * sin(kingpin tilt) in the
    # deck frame, and the board turns at v * (psi_front - psi_rear) / wheelbase.
    jf, jr = m.joint("front_truck").id, m.joint("rear_truck").id
    wheelbase = m.body_pos[m.jnt_bodyid[jf]][0] - m.body_pos[m.jnt_bodyid[jr]][0]
    for run in (right, left):
        psi_front = run["front"] * m.jnt_axis[jf][2]
        psi_rear = run["rear"] * m.jnt_axis[jr][2]
        predicted = run["speed"] * (psi_front - psi_rear) / wheelbase
        print(f"yaw rate {run['yaw_rate']:+.3f} rad/s, no-slip kinematics {predicted:+.3f} rad/s")
        assert run["yaw_rate"] == pytest.approx(predicted, rel=0.15)
