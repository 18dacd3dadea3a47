"""The MuJoCo Warp launches behind `MujocoWarpSimulator`'s building blocks ("programs"), each
replayed as one captured graph where the device supports it.

* step: `mujoco_warp.step`; step2: its second half, for a step whose step1 is current;
* derive: step1 at the new state after a step (positions, velocities, their sensors), keeping
  the acceleration-stage sensor columns, which step1 would zero;
* observe: what `read()` returns of derive, no more: poses, com frames and velocities, the
  position/velocity sensors (no collision, constraints or mass matrix); only for models whose
  sensors it covers (`observable`);
* kinematics: body and site poses (the cheap refresh after a reset); forward; reset (the worlds
  in the reset mask back to the model defaults).
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from .warp_setup import capture_graph, mjw, wp

NAMES = ("step", "step2", "derive", "observe", "kinematics", "forward", "reset")

# Position/velocity sensors computed from poses, com frames and velocities alone: with only these
# (and acceleration-stage ones, which both derived updates keep), observe computes every sensor.
_S = mujoco.mjtSensor
_OBSERVABLE_SENSORS = frozenset(int(t) for t in (
    _S.mjSENS_FRAMEPOS, _S.mjSENS_FRAMEQUAT, _S.mjSENS_FRAMEXAXIS, _S.mjSENS_FRAMEYAXIS, _S.mjSENS_FRAMEZAXIS,
    _S.mjSENS_JOINTPOS, _S.mjSENS_BALLQUAT, _S.mjSENS_SUBTREECOM, _S.mjSENS_GYRO, _S.mjSENS_VELOCIMETER,
    _S.mjSENS_FRAMELINVEL, _S.mjSENS_FRAMEANGVEL, _S.mjSENS_JOINTVEL, _S.mjSENS_BALLANGVEL,
))


def observable(model: mujoco.MjModel) -> bool:
    """Whether the "observe" program computes every position- and velocity-stage sensor of `model`."""
    acc = int(mujoco.mjtStage.mjSTAGE_ACC)
    return model.ntendon == 0 and model.nflex == 0 and all(
        int(model.sensor_needstage[i]) == acc or int(model.sensor_type[i]) in _OBSERVABLE_SENSORS
        for i in range(model.nsensor)
    )


@wp.kernel
def _copy_columns(
    cols: wp.array(dtype=wp.int32),  # type: ignore[valid-type]
    src: wp.array2d(dtype=wp.float32),  # type: ignore[valid-type]
    dst: wp.array2d(dtype=wp.float32),  # type: ignore[valid-type]
):
    world, i = wp.tid()  # type: ignore[misc]
    c = cols[i]
    dst[world, c] = src[world, c]


@wp.kernel
def _zero_columns(
    cols: wp.array(dtype=wp.int32),  # type: ignore[valid-type]
    dst: wp.array2d(dtype=wp.float32),  # type: ignore[valid-type]
):
    world, i = wp.tid()  # type: ignore[misc]
    dst[world, cols[i]] = wp.float32(0.0)


class WarpPrograms:
    """The programs of one model and data on one Warp device; `reset_mask` (a Warp bool array
    [nworld]) selects the worlds the reset program resets.

    fresh_constraint_velocities: MuJoCo Warp 4.0 builds the velocity term (Jdot v) of connect and
    weld equality rows while it makes the constraints, from the body velocities (cvel, cdof_dot)
    that the last velocity stage left, i.e. those of the previous substep's state; MuJoCo C uses
    the current ones. With this, every program that makes constraints first recomputes them
    (com_vel: 2 kernels, on the previous substep's dof axes): qvel then follows MuJoCo C to about
    1e-4 instead of 1e-3 to 4e-3 on this scene, whose FL foot is tied to the deck by such a row
    (a minimal reproduction for upstream: docs/upstream/mujoco_warp_connect_jdotv.md)."""

    def __init__(self, model: mujoco.MjModel, wp_model: Any, wp_data: Any, wp_device: Any, reset_mask: Any,
                 use_graphs: bool, fresh_constraint_velocities: bool = False) -> None:
        self.model, self.data, self.device = wp_model, wp_data, wp_device
        self.fresh_constraint_velocities = fresh_constraint_velocities
        self.num_envs = int(wp_data.nworld)
        self._reset_mask = reset_mask
        self.use_graphs = use_graphs
        self._graphs: dict[str, Any] = {}
        with wp.ScopedDevice(wp_device):
            # acceleration-stage sensor columns: kept across step1, cleared before a bare step2
            acc = [
                int(model.sensor_adr[i]) + k
                for i in range(model.nsensor)
                if int(model.sensor_needstage[i]) == int(mujoco.mjtStage.mjSTAGE_ACC)
                for k in range(int(model.sensor_dim[i]))
            ]
            self._acc_cols: Any = wp.array(np.asarray(acc, dtype=np.int32), dtype=wp.int32)
            self._sensor_saved = wp.zeros_like(wp_data.sensordata)

    def run(self, name: str) -> None:
        """Launch the program's kernels one by one."""
        m, d = self.model, self.data
        if self.fresh_constraint_velocities and name in ("step", "derive", "forward"):
            mjw.com_vel(m, d)
        if name == "step":
            mjw.step(m, d)
        elif name == "step2":
            if self._acc_cols.shape[0]:
                wp.launch(_zero_columns, dim=(self.num_envs, self._acc_cols.shape[0]), inputs=[self._acc_cols],
                          outputs=[d.sensordata])  # fmt: skip
            mjw.step2(m, d)
        elif name == "derive":
            self._keeping_acc_sensors(lambda: mjw.step1(m, d))
        elif name == "observe":
            self._keeping_acc_sensors(self._observe)
        elif name == "forward":
            mjw.forward(m, d)
        elif name == "kinematics":
            mjw.kinematics(m, d)
        elif name == "reset":
            mjw.reset_data(m, d, reset=self._reset_mask)
        else:
            raise KeyError(f"unknown Warp program {name!r}; known: {', '.join(NAMES)}")

    def _observe(self) -> None:
        m, d = self.model, self.data
        mjw.kinematics(m, d)
        mjw.com_pos(m, d)
        d.sensordata.zero_()  # as step1 does
        mjw.sensor_pos(m, d)
        mjw.com_vel(m, d)
        mjw.sensor_vel(m, d)

    def _keeping_acc_sensors(self, update: Any) -> None:
        ncols = self._acc_cols.shape[0]
        if ncols:
            wp.copy(self._sensor_saved, self.data.sensordata)
        update()
        if ncols:
            wp.launch(_copy_columns, dim=(self.num_envs, ncols),
                      inputs=[self._acc_cols, self._sensor_saved], outputs=[self.data.sensordata])  # fmt: skip

    def capture(self) -> None:
        """Run every program once (loads its kernels), restore the model defaults with forward,
        then capture each as a graph."""
        with wp.ScopedDevice(self.device):
            for name in NAMES[:5]:
                self.run(name)
            self._reset_mask.fill_(True)
            self.run("reset")
            self.run("forward")
        for name in NAMES:
            self._graphs[name] = capture_graph(self.device, lambda: self.run(name))

    def close(self) -> None:
        """Drop the captured graphs (later launches run kernel by kernel)."""
        self._graphs.clear()

    def launch(self, name: str, times: int = 1) -> None:
        # One graph per program. One graph of a whole control step (4 substeps and the derive)
        # saved no host time on an H200: graph launches took 1.5 ms per step instead of 1.1 ms
        # (profiles in docs/results/gpu_h200_2026-11-27{b,c}).
        with wp.ScopedDevice(self.device):
            graph = self._graphs.get(name)
            for _ in range(times):
                if graph is not None:
                    wp.capture_launch(graph)
                else:
                    self.run(name)
