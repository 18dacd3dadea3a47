"""CPU backend: N MuJoCo simulations of one model stepped by `mujoco.batch.Batch`.

The batch keeps every simulation's state in float64 rows and steps them on its own thread pool
with the GIL released. The state fields (qpos, qvel, ctrl, eq_active) and the derived fields we
read (sensordata, site_xpos, xpos, xquat, actuator_force) are bound once as live numpy arrays, with
torch views made once; a step copies the actions into ctrl, a read copies the rows out as float32.

Timing of derived fields after `step()` (checked against a serial mj_step loop in the tests):
* `step()` runs the substeps, then mjSTAGE_VEL at the new state (as mj_step1 does), so positions,
  sites, bodies and position/velocity sensors (framepos, jointpos, gyro, velocimeter, ...) are
  current.
* Acceleration-stage values lag one substep, exactly as after a plain mj_step: touch sensors
  (and accelerometer, force, torque) and actuator_force describe the start of the last substep,
  i.e. the contact forces and actuator forces that produced the current state. Pass
  `stage="acc"` to compute them at the new state instead (a full mj_forward per call; its
  actuator forces use the controls of the step just taken).
* `set_state()` ends with mj_forward, so everything is current after a reset.

Divergence: MuJoCo does not raise on NaN/Inf/huge values; it warns (mjWARN_BADQPOS / BADQVEL /
BADQACC) and resets that simulation's data to the model defaults. `step()` watches those warning
counters (and `mujoco.batch.SimulationError`) and raises `SimulationDiverged` with the env ids;
the other envs have completed the step, and the diverged ones should be reset by the caller.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import mujoco
import numpy as np
import torch
from mujoco import batch as mjbatch

from .base import Refresh, SimState, SimulationDiverged, check_refresh, env_mask
from .model_info import build_model_info, ctrl_history_columns, model_field_copy, object_name

__all__ = ["STAGES", "MujocoBatchSimulator", "default_nthread"]

STAGES = {
    "none": mujoco.mjtStage.mjSTAGE_NONE,
    "pos": mujoco.mjtStage.mjSTAGE_POS,
    "vel": mujoco.mjtStage.mjSTAGE_VEL,
    "acc": mujoco.mjtStage.mjSTAGE_ACC,
}
# warnings after which MuJoCo has reset the simulation's data: the physics diverged
_BAD_STATE_WARNINGS = (
    mujoco.mjtWarning.mjWARN_BADQPOS,
    mujoco.mjtWarning.mjWARN_BADQVEL,
    mujoco.mjtWarning.mjWARN_BADQACC,
)
_WARNING_NAMES = tuple(
    mujoco.mjtWarning(i).name for i in range(mujoco.mjtWarning.mjNWARNING.value)
)


def default_nthread() -> int:
    """CPUs this process may run on (cgroup/affinity aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _torch_view(array: np.ndarray) -> torch.Tensor:
    """A torch view of a live batch array (outputs are read-only in numpy; we only read them)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not writable.*")
        return torch.from_numpy(array)


class MujocoBatchSimulator:
    """`Simulator` on `mujoco.batch.Batch`: num_envs copies of the MJCF at xml_path, on CPU.

    Extra keyword arguments: nthread (None: every CPU this process may use), stage ("vel" or
    "acc", the stages computed at the new state after each step; see the module docstring),
    persistent (one MjData per env; needed only for sleep/IPC models), track_body (the body the
    default render camera follows).
    """

    def __init__(
        self,
        xml_path: str | Path,
        num_envs: int,
        nthread: int | None = None,
        device: str | torch.device = "cpu",
        *,
        stage: Literal["none", "pos", "vel", "acc"] = "vel",
        persistent: bool = False,
        track_body: str = "trunk",
    ) -> None:
        self.device = torch.device(device)
        if self.device.type != "cpu":
            raise ValueError(
                f"the mujoco_batch backend runs on the CPU and serves CPU tensors; got device "
                f"{str(self.device)!r} (use the mujoco_warp backend for GPU simulation)"
            )
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {list(STAGES)}, got {stage!r}")
        self.xml_path = Path(xml_path)
        self.model = mujoco.MjModel.from_xml_path(str(self.xml_path))
        self.info = build_model_info(self.model)
        self.num_envs = int(num_envs)
        self.nthread = default_nthread() if nthread is None else int(nthread)
        self._stage = int(STAGES[stage])
        self.batch = mjbatch.Batch(self.model, self.num_envs, self.nthread, persistent)
        b = self.batch

        # live arrays, bound once; the torch tensors below are views of them
        self._np = {name: b.bind(name) for name in ("qpos", "qvel", "ctrl", "eq_active", "history")}
        self._ctrl_history = ctrl_history_columns(self.model)
        self._outputs = {
            name: b.bind(name)
            for name in ("sensordata", "site_xpos", "xpos", "xquat", "actuator_force")
        }
        self._ctrl_t = torch.from_numpy(self._np["ctrl"])
        self._views = {
            name: _torch_view(arr)
            for name, arr in (
                ("qpos", self._np["qpos"]),
                ("qvel", self._np["qvel"]),
                *self._outputs.items(),
            )
        }
        # warning counters: (N, mjNWARNING, 2) int32, [..., 1] = number; reset clears a row
        self._warning_number = b.warning[:, :, 1]
        self._bad_first = min(int(w) for w in _BAD_STATE_WARNINGS)
        self._bad_last = max(int(w) for w in _BAD_STATE_WARNINGS) + 1
        assert self._bad_last - self._bad_first == len(_BAD_STATE_WARNINGS)
        self._bad_seen = np.zeros(self.num_envs, dtype=np.int64)
        self._warning_prev = b.warning.copy()
        self._warnings_cleared = np.zeros(len(_WARNING_NAMES), dtype=np.int64)

        self._model_fields: dict[str, torch.Tensor] = {}
        self._track_body = track_body
        self._renderer: Any = None
        self._render_model: mujoco.MjModel | None = None
        self._render_data: mujoco.MjData | None = None

        self._pending: tuple[list[int], str] | None = None  # a divergence for check() to raise
        self._unread = np.zeros(self.num_envs, dtype=bool)  # envs whose forces read 0 (Refresh)
        b.reset(None)  # model defaults, then mj_forward: derived fields are populated

    # ------------------------------------------------------------------ stepping
    def step(self, ctrl: torch.Tensor, nsteps: int = 1, update_derived: bool = True, check: bool = True) -> None:
        """Write ctrl [N, nu] and advance every env by nsteps substeps. With update_derived the
        configured stages are computed at the new state (positions current after the call).
        With check=False a divergence is raised by the next `check()` instead."""
        self._ctrl_t.copy_(ctrl)
        self._unread[:] = False
        stage = self._stage if update_derived else int(mujoco.mjtStage.mjSTAGE_NONE)
        try:
            self.batch.step(None, int(nsteps), stage)
        except mjbatch.SimulationError as err:
            diverged = self._check_bad_state()
            self._defer(sorted(set(int(i) for i in err.ids) | set(diverged)), str(err))
        else:
            diverged = self._check_bad_state()
            if diverged:
                self._defer(diverged, self._bad_state_message(diverged))
        if check:
            self.check()

    def _defer(self, env_ids: list[int], message: str) -> None:
        """Keep a divergence for `check()`, merged with one already pending."""
        if self._pending is not None:
            env_ids = sorted(set(self._pending[0]) | set(env_ids))
            message = f"{self._pending[1]}; then {message}"
        self._pending = (env_ids, message)

    def check(self) -> None:
        """Raise the divergence an unchecked step or reset found (MuJoCo has already reset those
        envs); nothing to synchronise on the CPU."""
        pending, self._pending = self._pending, None
        if pending is not None:
            raise SimulationDiverged(*pending)

    def unchecked_divergence(self) -> torch.Tensor:
        mask = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        if self._pending is not None:
            mask[self._pending[0]] = True
        return mask

    def _check_bad_state(self) -> list[int]:
        """Envs whose bad-state warning counters rose since the last check."""
        warning = self.batch.warning
        if np.array_equal(warning, self._warning_prev):  # the common case: no new warning
            return []
        np.copyto(self._warning_prev, warning)
        bad = self._warning_number[:, self._bad_first : self._bad_last].sum(axis=1)
        if np.array_equal(bad, self._bad_seen):
            return []
        ids = np.flatnonzero(bad != self._bad_seen)
        self._bad_seen[:] = bad
        return ids.tolist()

    def _bad_state_message(self, ids: list[int]) -> str:
        env = ids[0]
        counts = self.batch.warning[env]
        names = [
            f"{_WARNING_NAMES[int(w)]} (dof/index {int(counts[int(w), 0])})"
            for w in _BAD_STATE_WARNINGS
            if counts[int(w), 1] > 0
        ]
        return (
            f"NaN, Inf or huge value: env {env}: {', '.join(names)}; MuJoCo has reset the data "
            f"of these envs to the model defaults"
        )

    # ------------------------------------------------------------------ reading
    def read(self) -> SimState:
        """A fresh float32 snapshot (new tensors every call; the sim is never aliased)."""
        v = self._views

        def copy(name: str) -> torch.Tensor:
            src = v[name]
            return torch.empty(src.shape, dtype=torch.float32).copy_(src)

        state = SimState(
            qpos=copy("qpos"),
            qvel=copy("qvel"),
            sensordata=copy("sensordata"),
            site_xpos=copy("site_xpos"),
            xpos=copy("xpos"),
            xquat=copy("xquat"),
            actuator_force=copy("actuator_force"),
        )
        if self._unread.any():  # reset with refresh="positions" and not stepped since
            blank = torch.from_numpy(self._unread)
            state.sensordata[blank] = 0.0
            state.actuator_force[blank] = 0.0
        return state

    # ------------------------------------------------------------------ writing state
    def _ids(self, env_ids: torch.Tensor | np.ndarray | list[int]) -> tuple[np.ndarray, Any]:
        """Sorted unique int ids and the permutation that sorted them (None if already sorted)."""
        if isinstance(env_ids, torch.Tensor):
            ids = env_ids.detach().cpu().numpy()
        else:
            ids = np.asarray(env_ids)
        ids = ids.astype(np.int64, copy=False).reshape(-1)
        order = None
        if ids.size > 1 and not (ids[1:] > ids[:-1]).all():
            order = np.argsort(ids, kind="stable")
            ids = ids[order]
            if (ids[1:] == ids[:-1]).any():
                raise ValueError(f"env_ids must be unique, got {env_ids}")
        if ids.size and (ids[0] < 0 or ids[-1] >= self.num_envs):
            raise IndexError(f"env_ids must be in [0, {self.num_envs}), got {env_ids}")
        return ids, order

    @staticmethod
    def _rows(values: torch.Tensor | np.ndarray, order: Any, n: int, width: int) -> np.ndarray:
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        values = np.asarray(values)
        if values.ndim == 1:
            values = np.broadcast_to(values, (n, width))
        if values.shape != (n, width):
            raise ValueError(f"expected rows of shape {(n, width)}, got {values.shape}")
        return values if order is None else values[order]

    def set_state(
        self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor, ctrl: torch.Tensor | None = None,
        check: bool = True, refresh: Refresh = "forward",
    ) -> None:
        """Reset the given envs (time, warm-start, act, ctrl, forces, eq_active to the model's
        defaults), write qpos/qvel ([n, nq] / [n, nv], or one row for all) and, if given, ctrl
        and the control histories, then mj_forward."""
        check_refresh(refresh)
        mask = env_mask(env_ids, self.num_envs)
        if mask is not None:
            ids = np.flatnonzero(mask.cpu().numpy())
            order, rows = ids, self.num_envs  # rows are given for every env: pick the masked ones
        else:
            ids, order = self._ids(env_ids)
            rows = ids.size
        if ids.size == 0:
            return
        qpos_rows = self._rows(qpos, order, rows, self.info.nq)
        qvel_rows = self._rows(qvel, order, rows, self.info.nv)
        # the reset clears the warning counters of these envs: keep their totals
        self._warnings_cleared += self._warning_number[ids].sum(axis=0)
        self.batch.reset(ids, stage=mujoco.mjtStage.mjSTAGE_NONE)
        self._np["qpos"][ids] = qpos_rows
        self._np["qvel"][ids] = qvel_rows
        if ctrl is not None:
            ctrl_rows = self._rows(ctrl, order, rows, self.info.nu)
            self._np["ctrl"][ids] = ctrl_rows
            history = self._np["history"]
            for actuator, columns in self._ctrl_history:
                history[np.ix_(ids, columns)] = ctrl_rows[:, actuator : actuator + 1]
        self._bad_seen[ids] = 0
        try:
            self.batch.forward(ids)
        except mjbatch.SimulationError as err:
            self._defer([int(i) for i in err.ids], str(err))
        if refresh == "positions":  # an mj_forward per env is cheap here; read like the GPU backend
            self._unread[ids] = True
        if check:
            self.check()
        # a bad qpos/qvel is reported (and reset by MuJoCo) at the next step

    def set_qvel(self, env_ids: torch.Tensor, qvel: torch.Tensor) -> None:
        """Overwrite velocities of the given envs; velocity-dependent outputs follow at the next
        step."""
        ids, order = self._ids(env_ids)
        if ids.size:
            self._np["qvel"][ids] = self._rows(qvel, order, ids.size, self.info.nv)

    def set_equality_active(self, name: str, env_ids: torch.Tensor, active: bool) -> None:
        """Switch equality `name` on or off in the given envs (a reset restores eq_active0)."""
        self.info.require("equality", [name])
        ids, _ = self._ids(env_ids)
        self._np["eq_active"][ids, self.info.equality_ids[name]] = 1.0 if active else 0.0

    # ------------------------------------------------------------------ model fields
    def model_field(self, name: str) -> torch.Tensor:
        """Live per-env view [N, ...] of MjModel field `name` ('body_mass', 'opt.timestep', ...).

        Writes go straight to the sims (call commit_model() after editing fields mj_setConst
        reads, e.g. body_mass, body_inertia, dof_armature). The dtype is the model's (float64 for
        mjtNum fields). The first call expands the field: every env starts from the nominal value.
        """
        view = self._model_fields.get(name)
        if view is None:
            try:
                array = self.batch.expand(name)
            except ValueError as err:
                raise KeyError(f"cannot randomise model field {name!r} per env: {err}") from err
            view = torch.from_numpy(array)
            self._model_fields[name] = view
        return view

    def nominal_field(self, name: str) -> torch.Tensor:
        """A copy of the compiled model's value of `name` (never randomised)."""
        return torch.from_numpy(model_field_copy(self.model, name))

    def commit_model(self) -> None:
        """mj_setConst per env, so constants derived from edited fields follow them."""
        try:
            self.batch.set_const()
        except mjbatch.SimulationError as err:
            raise SimulationDiverged([int(i) for i in err.ids], str(err)) from err

    # ------------------------------------------------------------------ diagnostics
    def warning_counts(self) -> dict[str, int]:
        """Warnings raised so far over all envs, by mjtWarning name (e.g. 'mjWARN_CONTACTFULL'),
        non-zero entries only. Counts survive resets."""
        totals = self._warnings_cleared + self._warning_number.sum(axis=0)
        return {name: int(n) for name, n in zip(_WARNING_NAMES, totals) if n}

    def render(
        self,
        env_id: int = 0,
        width: int = 640,
        height: int = 480,
        camera: str | int = -1,
        geom_rgba: Mapping[int, Sequence[float]] | None = None,
    ) -> np.ndarray:
        """An (height, width, 3) uint8 RGB image of env `env_id`.

        camera: a camera name or id of the model, or -1 for a free camera that tracks the body
        `track_body` (default 'trunk'; the first body otherwise) from behind and to the side.
        geom_rgba: {geom id: (r, g, b, a)} colours for this image only (the geoms' materials are
        ignored for it); the simulated models are not changed.
        Headless: uses EGL, or OSMesa (see envs/backends/rendering.py for the Debian packages).
        """
        from .rendering import OffscreenRenderer

        if not 0 <= env_id < self.num_envs:
            raise IndexError(f"env_id must be in [0, {self.num_envs}), got {env_id}")
        if self._render_model is None:
            self._render_model = self.batch.get_model(env_id)
            self._render_data = mujoco.MjData(self.model)
        model, data = self._render_model, self._render_data
        assert data is not None
        renderer = self._renderer
        if renderer is None or width > renderer.max_width or height > renderer.max_height:
            if renderer is not None:
                renderer.close()
            self._renderer = None
            self.batch.get_model(env_id, model)
            renderer = OffscreenRenderer(model, width, height)
            self._renderer = renderer
        offsize = (model.vis.global_.offwidth, model.vis.global_.offheight)
        self.batch.get_model(env_id, model)
        model.vis.global_.offwidth, model.vis.global_.offheight = offsize
        for geom, rgba in (geom_rgba or {}).items():  # the next get_model restores them
            model.geom_rgba[geom] = rgba
            model.geom_matid[geom] = -1
        self.batch.get_data(env_id, data)
        mujoco.mj_forward(model, data)
        return renderer.render(data, width, height, self._camera(model, camera))

    def _camera(self, model: mujoco.MjModel, camera: str | int) -> mujoco.MjvCamera:
        cam = mujoco.MjvCamera()
        if isinstance(camera, str):
            cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
            if cam_id < 0:
                names = [object_name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
                raise KeyError(f"model has no camera named {camera!r}; it has {names}")
        else:
            cam_id = int(camera)
        if cam_id >= 0:
            if cam_id >= model.ncam:
                raise IndexError(f"camera id {cam_id} out of range: the model has {model.ncam}")
            cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            cam.fixedcamid = cam_id
            return cam
        body = self.info.body_ids.get(self._track_body, 1 if model.nbody > 1 else 0)
        cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        cam.trackbodyid = body
        cam.distance = 1.6
        cam.azimuth = 45.0  # looking along +x+y from behind (-x) and the right side (-y)
        cam.elevation = -20.0
        cam.lookat[:] = 0.0
        return cam

    def close(self) -> None:
        """Free the rendering context (the batch itself is freed with this object)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __repr__(self) -> str:
        return (
            f"MujocoBatchSimulator({str(self.xml_path)!r}, num_envs={self.num_envs}, "
            f"nthread={self.nthread})"
        )
