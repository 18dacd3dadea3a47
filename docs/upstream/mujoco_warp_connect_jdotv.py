#!/usr/bin/env python3
"""Reproduces a MuJoCo Warp 4.0 fidelity gap: connect/weld equality rows take their velocity
term from the previous substep's body velocities. See mujoco_warp_connect_jdotv.md.

A three-link arm whose tip is pinned to the world by a connect equality (a closed loop), stepped
8 times from the same state by MuJoCo C (mj_step, float64) and by MuJoCo Warp on the CPU: plainly,
with `com_vel` recomputed before each step, and with the whole position stage's body quantities
(kinematics, com_pos) and com_vel recomputed before each step. --no-equality removes the connect
row: the control. Needs only mujoco, mujoco-warp and warp-lang.
"""

import sys

import mujoco
import mujoco_warp as mjw
import numpy as np
import warp as wp

XML = """
<mujoco>
  <option timestep="0.002"/>
  <worldbody>
    <body name="a" pos="0 0 1">
      <joint type="hinge" axis="0 1 0"/>
      <geom type="capsule" fromto="0 0 0 0.5 0 0" size="0.03" mass="1"/>
      <body name="b" pos="0.5 0 0">
        <joint type="hinge" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 0.5 0 0" size="0.03" mass="1"/>
        <body name="c" pos="0.5 0 0">
          <joint type="hinge" axis="0 1 0"/>
          <geom type="capsule" fromto="0 0 0 0.4 0 0" size="0.03" mass="1"/>
        </body>
      </body>
    </body>
  </worldbody>
  <equality>
    <connect body1="c" body2="world" anchor="0.4 0 0"/>
  </equality>
</mujoco>
"""
STEPS = 8


def main() -> None:
    xml = XML
    if "--no-equality" in sys.argv[1:]:
        xml = xml[:xml.index("  <equality>")] + "</mujoco>\n"
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    data.qvel[:] = [2.0, -3.0, 1.5]
    mujoco.mj_forward(model, data)
    start = mujoco.MjData(model)
    mujoco.mj_copyData(start, model, data)
    reference = []
    for _ in range(STEPS):
        mujoco.mj_step(model, data)
        reference.append(data.qvel.copy())
    wp.config.log_level = wp.LOG_WARNING  # no per-module load lines
    with wp.ScopedDevice("cpu"):
        warp_model = mjw.put_model(model)
        for before in ((), (mjw.com_vel,), (mjw.kinematics, mjw.com_pos, mjw.com_vel)):
            warp_data = mjw.put_data(model, start, nworld=1)
            worst = 0.0
            for expected in reference:
                for stage in before:
                    stage(warp_model, warp_data)
                mjw.step(warp_model, warp_data)
                worst = max(worst, float(np.abs(warp_data.qvel.numpy()[0] - expected).max()))
            label = ", ".join([f.__name__ for f in before] + ["step"])
            print(f"{label:34s} max |qvel - mj_step qvel| over {STEPS} steps: {worst:.2e} rad/s")


if __name__ == "__main__":
    main()
