"""GPU backend: N MuJoCo simulations of one model stepped by MuJoCo Warp (`mujoco_warp`).

The same `Simulator` protocol as the CPU backend (mujoco_batch), so the task layer runs unchanged.
All state lives in float32 Warp arrays on one device ("cuda" for training, "cpu" for CI smoke
tests); qpos, qvel, ctrl, sensordata, site_xpos, xpos, xquat (w, x, y, z), actuator_force,
eq_active and the randomised model fields are exposed as zero-copy torch views made once
(`wp.to_torch`). A step copies the actions into ctrl and launches `mujoco_warp.step` nsteps times
(replaying captured Warp graphs: CUDA graphs on GPUs, recorded launch lists on the CPU with
Warp >= 1.19); a read clones the views.

Timing of derived fields after `step()` is the CPU backend's default (stage "vel"):
* with update_derived, `step1` (positions, velocities, position/velocity sensors) runs at the
  new state after the substeps, so sites, bodies, framequat/gyro/velocimeter are current;
* acceleration-stage values lag one substep, as after a plain mj_step: touch sensors,
  accelerometer and actuator_force describe the start of the last substep. (Warp's step1 zeroes
  all of sensordata; the acceleration-stage columns are saved and put back around it.)
* The next step reuses that step1: its first substep runs only `step2` (a plain mj_step =
  step1 + step2), so the derived update costs nothing extra unless the state was edited in
  between (set_qvel, set_equality_active, model_field/commit_model), in which case the first
  substep is a full step again. When the last derived update's step1 went unused that way
  (the GPU task resets a mask of envs between every two steps), the next one computes only
  what `read()` returns: poses, com velocities and the position/velocity sensors (the
  "observe" program; models with other sensors, tendons or flexes always get the full step1).
* `set_state()` ends with a full `forward` (all worlds: Warp has no per-world forward), so
  everything is current after a reset, as on the CPU; other worlds' acceleration-stage values
  are then those of their current state. With refresh="positions" it runs only the kinematics
  (bodies, sites), the reset worlds' sensors and actuator forces read 0, and the next step
  starts with a full substep, so the physics is the same for a fraction of the cost.

Model fields. Warp shares one copy of every model field between worlds unless `put_model` is
told up front which fields get a per-world copy; `randomized_fields` (default: the fields the
skateboard task randomises) lists them, and `model_field()` of any other field raises. The
constants `set_const` derives from them (body_subtreemass, dof_invweight0, body_invweight0,
actuator_acc0) are batched as well so `commit_model()` can recompute them per world. Model
values are float32 here (float64 on the CPU backend).

What Warp lacks compared with mujoco.batch, and what this backend does instead:
* no warning counters and no automatic reset of diverged data: after each step the backend
  checks qpos/qvel/qacc for NaN/Inf/|x| > 1e10, resets those worlds to the model defaults (as
  MuJoCo does) and raises `SimulationDiverged` with their ids; `warning_counts()` reports these
  as mjWARN_BADQPOS / BADQVEL / BADQACC.
* fixed-size contact and constraint buffers (nconmax per world on average, njmax per world):
  an overflow makes the physics silently wrong in Warp (it only printf's "nefc overflow").
  The printf is switched off and every step checks Warp's per-world overflow flags and the
  counts, raising `WarpCapacityError` (a RuntimeError) that names the setting and a value to use.
  Solver/line-search iteration-limit flags are not errors (MuJoCo C does not warn about them).
  An EPA horizon overflow (a fixed limit inside Warp; the world lost a contact for a substep) is
  a fault of that world alone: it is reported like a divergence, as `SimulationDiverged` with
  its id and a "warp_EPA_HORIZON" warning count, so a long run ends that episode and goes on.
* `set_const` skips actuator_length0, dof_length and tendon_lengthspring (not used by this
  scene); everything mj_setConst computes for mass/inertia edits is recomputed.
* rendering: one world's state is copied into a host MjData (nominal model) and drawn with the
  CPU rendering helpers.

Streams: Warp launches on its own (blocking) CUDA stream, which orders itself with torch's
default stream. Do not drive this simulator from a non-default torch stream.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import mujoco
import numpy as np
import torch

from dhal.envs.compilation import maybe_compile
from dhal.envs.packing import pack_rows, unpack_rows

from .base import ModelInfo, Refresh, SimState, SimulationDiverged, check_refresh, env_mask
from .model_info import build_model_info, ctrl_history_columns, model_field_copy
from .warp_checks import BAD_WARNINGS, MAXVAL, Problems, WarpCapacityError, capacity_error, find_problems
from .warp_programs import WarpPrograms, observable
from .warp_setup import (
    DEFAULT_NCONMAX,
    DEFAULT_NJMAX,
    RANDOMIZED_FIELDS,
    batched_fields,
    graphs_supported,
    mjw,
    put_model_and_data,
    resolve_device,
    wp,
)

__all__ = ["MujocoWarpSimulator", "WarpCapacityError"]

_SNAPSHOT_FIELDS = ("qpos", "qvel", "sensordata", "site_xpos", "xpos", "xquat", "actuator_force")  # SimState's order


class MujocoWarpSimulator:
    """`Simulator` on MuJoCo Warp: num_envs copies of the MJCF at xml_path on `device`.

    Keyword arguments: nconmax / njmax (contacts per world on average / constraint rows per world;
    default DEFAULT_NCONMAX / DEFAULT_NJMAX), randomized_fields (Model fields that get a per-world
    copy, readable and writable through model_field()), graphs (replay captured Warp graphs
    instead of launching kernel by kernel; None: where the device supports it, on CUDA and on the
    CPU; results are identical), reuse_step1 (let the next step skip the step1 computed by the last
    derived update; False runs plain mujoco_warp.step substeps), track_body (the body the default
    render camera follows), compile_checks (torch.compile the per-step health check of the data: a
    couple of kernels instead of about 20; SimConfig.compile sets it), fresh_constraint_velocities
    (recompute the body velocities before each substep's constraints: warp_programs.py says why;
    SimConfig.fresh_constraint_velocities sets it).
    """

    def __init__(
        self,
        xml_path: str | Path,
        num_envs: int,
        device: str | torch.device = "cuda",
        nconmax: int | None = None,
        njmax: int | None = None,
        randomized_fields: Sequence[str] = RANDOMIZED_FIELDS,
        *,
        graphs: bool | None = None,
        reuse_step1: bool = True,
        track_body: str = "trunk",
        compile_checks: bool = False,
        fresh_constraint_velocities: bool = False,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.device, wp_name = resolve_device(device)
        self._wp_device = wp.get_device(wp_name)
        self.xml_path = Path(xml_path)
        self.model = mujoco.MjModel.from_xml_path(str(self.xml_path))
        self.info: ModelInfo = build_model_info(self.model)
        self.num_envs = int(num_envs)
        self.nconmax = DEFAULT_NCONMAX if nconmax is None else int(nconmax)
        self.njmax = DEFAULT_NJMAX if njmax is None else int(njmax)
        self.randomized_fields = tuple(dict.fromkeys(randomized_fields))
        self._batched = batched_fields(self.randomized_fields)
        self._reuse_step1 = bool(reuse_step1)
        self._track_body = track_body

        with wp.ScopedDevice(self._wp_device):
            self.wp_model, self.wp_data, _ = put_model_and_data(
                self.model, self.num_envs, self._batched, self.nconmax, self.njmax
            )
            d = self.wp_data
            self._naconmax = int(d.naconmax)
            # torch views, made once (zero-copy)
            self._t = {
                name: wp.to_torch(getattr(d, name))
                for name in (
                    "qpos", "qvel", "qacc", "ctrl", "sensordata", "site_xpos", "xpos", "xquat",
                    "actuator_force", "eq_active", "overflow", "nefc", "nacon", "ncollision", "history",
                )
            }  # fmt: skip
            # every stored control value of every delayed actuator: history column -> actuator
            pairs = [(actuator, column) for actuator, columns in ctrl_history_columns(self.model) for column in columns]
            self._history_actuator = torch.tensor([a for a, _ in pairs], dtype=torch.long, device=self.device)
            self._history_columns = torch.tensor([c for _, c in pairs], dtype=torch.long, device=self.device)
            not_float = [n for n in _SNAPSHOT_FIELDS if self._t[n].dtype != torch.float32]
            if not_float:  # read() copies them into one float32 buffer
                raise TypeError(f"MuJoCo Warp's {not_float} are not float32; this backend needs float32 data")
            reset_mask = wp.zeros(self.num_envs, dtype=bool)
            self._reset_mask = wp.to_torch(reset_mask)
        self._model_fields: dict[str, torch.Tensor] = {}
        self._scrub_views: list[torch.Tensor] | None = None
        self._warnings = dict.fromkeys(BAD_WARNINGS, 0)
        # what the last step1 left current: "full" (the next step may skip its step1), "observed"
        # (poses, com velocities, sensors only) or "none" (the state changed since)
        self._stage1 = "none"
        self._derive_pending = False  # a derived update not yet followed by a step
        self._full_derive = True  # whether the next derived update is a whole step1
        self._can_observe = observable(self.model)
        self._unchecked: Problems | None = None  # what the steps since the last check found
        self._find_problems = maybe_compile(find_problems, compile_checks, self.device)
        self._use_graphs = graphs_supported(self._wp_device) if graphs is None else bool(graphs)
        self._programs = WarpPrograms(self.model, self.wp_model, self.wp_data, self._wp_device, reset_mask,
                                      self._use_graphs, fresh_constraint_velocities)
        self._renderer: Any = None
        self._render_data: mujoco.MjData | None = None

        # model defaults, then forward: derived fields are populated (as the CPU backend's reset)
        self._launch("forward")
        self._stage1 = "full"
        if self._use_graphs:
            self._programs.capture()
        self.check()

    def _launch(self, name: str, times: int = 1) -> None:
        self._programs.launch(name, times)

    # ------------------------------------------------------------------ stepping
    def step(self, ctrl: torch.Tensor, nsteps: int = 1, update_derived: bool = True, check: bool = True) -> None:
        """Write ctrl [N, nu] and advance every env by nsteps substeps. With update_derived,
        positions, sites, bodies and position/velocity sensors are current after the call.
        check=False only queues the work: divergence and overflow are raised by `check()`."""
        nsteps = int(nsteps)
        if nsteps < 1:
            raise ValueError(f"nsteps must be at least 1, got {nsteps}")
        self._t["ctrl"].copy_(ctrl)
        if self._derive_pending:
            # A whole step1 at the end of a step pays only if nothing changes the state before the
            # next step; with a (masked) reset in between every step, as on a GPU, poses and
            # sensors suffice. Decided by what happened after the last one.
            self._full_derive = self._stage1 != "none"
            self._derive_pending = False
        if self._reuse_step1 and self._stage1 == "full":
            self._launch("step2")
            self._launch("step", nsteps - 1)
        else:
            self._launch("step", nsteps)
        self._stage1 = "none"
        if update_derived:
            full = self._full_derive or not self._can_observe or not self._reuse_step1
            self._launch("derive" if full else "observe")
            self._stage1 = "full" if full else "observed"
            self._derive_pending = True
        if check:
            self.check()
        else:  # judged now, on the device: the caller may reset these worlds before check()
            self._unchecked = self._problems(self._unchecked)

    def _problems(self, earlier: Problems | None = None) -> Problems:
        """What is wrong now, on the device (no host sync), or-ed with `earlier`."""
        t = self._t
        if earlier is None:  # made now, not kept: a compiled check then sees tensors of one kind
            # (inference tensors under torch.inference_mode, as in a rollout) and compiles once
            no_world = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
            earlier = Problems(
                torch.zeros(self.num_envs, len(BAD_WARNINGS), dtype=torch.bool, device=self.device),
                torch.zeros_like(t["overflow"]), torch.zeros((), dtype=torch.bool, device=self.device), no_world)
        return self._find_problems(t["qpos"], t["qvel"], t["qacc"], t["overflow"], t["nefc"], t["nacon"],
                                   t["ncollision"], self.njmax, self._naconmax, earlier)

    def check(self) -> None:
        """Raise on divergence or capacity overflow since the last check (one host sync): what
        unchecked steps found when they ran, and what is wrong now. Warp's overflow flags are
        sticky, so an unchecked reset's overflow is seen too."""
        t = self._t
        problems = self._problems(self._unchecked)
        self._unchecked = None
        bad = problems.diverged
        capacity = (problems.capacity_flags != 0).any() | problems.counts_over
        diverged, overflowed = torch.stack((bad.any(), capacity)).tolist()
        if overflowed and not diverged:
            self._raise_capacity(problems.capacity_flags)
        t["overflow"].zero_()  # solver iteration-limit flags are sticky; they are not errors
        if not diverged:
            return
        ids = bad.nonzero().squeeze(-1)
        which = problems.kinds[ids].int().argmax(-1).tolist()  # each env's first kind, as BAD_WARNINGS orders them
        for w in which:
            self._warnings[BAD_WARNINGS[w]] += 1
        env_ids = ids.tolist()
        # as MuJoCo does: reset the diverged worlds' data to the model defaults. Warp keeps
        # NaNs in per-world work arrays (constraint rows beyond nefc, ...) that later steps
        # read, so those rows are zeroed first.
        self._scrub(ids)
        self._reset_rows(ids)
        self._stage1 = "none"
        note = (
            "; Warp's contact/constraint buffers also overflowed in this call (likely caused by "
            "the diverged envs; if it recurs, raise nconmax/njmax)"
            if overflowed
            else ""
        )
        cause = (
            "MuJoCo Warp's EPA horizon overflowed (a contact was dropped for a substep; the limit is fixed in Warp)"
            if BAD_WARNINGS[which[0]] == "warp_EPA_HORIZON" else f"NaN, Inf or huge value (> {MAXVAL:g})"
        )
        raise SimulationDiverged(
            env_ids,
            f"{cause}: env {env_ids[0]}: {BAD_WARNINGS[which[0]]}; the data of these envs was reset to the "
            "model defaults" + note,
        )

    def unchecked_divergence(self) -> torch.Tensor:
        if self._unchecked is None:
            return torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return self._unchecked.diverged

    def _scrub(self, ids: torch.Tensor) -> None:
        """Zero every per-world float array of Data (and its constraint rows) for `ids`."""
        if self._scrub_views is None:
            d, views = self.wp_data, []
            for owner in (d, d.efc):
                for field in dataclasses.fields(owner):
                    array = getattr(owner, field.name, None)
                    if not isinstance(array, wp.array) or array.ndim < 1 or not array.size:
                        continue
                    if array.shape[0] != self.num_envs:
                        continue
                    view = wp.to_torch(array)
                    if view.is_floating_point():
                        views.append(view)
            self._scrub_views = views
        for view in self._scrub_views:
            view[ids] = 0

    def _raise_capacity(self, flags: torch.Tensor) -> None:
        t = self._t
        raise capacity_error(
            flags, t["nefc"], int(t["nacon"][0].item()), int(t["ncollision"][0].item()),
            njmax=self.njmax, nconmax=self.nconmax, naconmax=self._naconmax,
        )

    # ------------------------------------------------------------------ reading
    def read(self) -> SimState:
        """A fresh float32 snapshot on `device` (the sim is never aliased), copied in one
        operation: the fields are views of one new [N, *] buffer (a kernel instead of seven)."""
        fields = [self._t[name] for name in _SNAPSHOT_FIELDS]
        return SimState(*unpack_rows(pack_rows(fields), fields))

    # ------------------------------------------------------------------ writing state
    def _ids(self, env_ids: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
        ids = torch.as_tensor(env_ids, device=self.device).reshape(-1).long()
        if ids.numel():
            srt = ids.sort().values
            bad = torch.stack(
                (srt[0] < 0, srt[-1] >= self.num_envs, (srt[1:] == srt[:-1]).any())
            ).tolist()
            if bad[0] or bad[1]:
                raise IndexError(f"env_ids must be in [0, {self.num_envs}), got {env_ids}")
            if bad[2]:
                raise ValueError(f"env_ids must be unique, got {env_ids}")
        return ids

    def _rows(self, values: torch.Tensor | np.ndarray, n: int, width: int) -> torch.Tensor:
        rows = torch.as_tensor(values, device=self.device, dtype=torch.float32)
        if rows.ndim == 1:
            rows = rows.expand(n, width)
        if tuple(rows.shape) != (n, width):
            raise ValueError(f"expected rows of shape {(n, width)}, got {tuple(rows.shape)}")
        return rows

    def _reset_rows(self, ids: torch.Tensor) -> None:
        """mujoco_warp.reset_data for the given worlds: model defaults, zero time, ctrl, act,
        warm-start, applied forces, eq_active = eq_active0, overflow flags."""
        self._reset_mask.zero_()
        self._reset_mask[ids] = True
        self._launch("reset")

    def set_state(
        self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor, ctrl: torch.Tensor | None = None,
        check: bool = True, refresh: Refresh = "forward",
    ) -> None:
        """Reset the given envs (time, warm-start, act, ctrl, forces, eq_active to the model's
        defaults), write qpos/qvel ([n, nq] / [n, nv], or one row for all) and, if given, ctrl
        and the control histories, then forward. With a bool mask for `env_ids`, rows are given
        for every env and nothing waits for the device."""
        check_refresh(refresh)
        mask = env_mask(env_ids, self.num_envs)
        if mask is not None:
            mask = mask.to(self.device)
            select: torch.Tensor = mask.unsqueeze(-1)
            self._reset_mask.copy_(mask)
            self._launch("reset")
            self._write_where(select, qpos, qvel, ctrl)
        else:
            select = self._ids(env_ids)
            if select.numel() == 0:
                return
            self._reset_rows(select)
            self._write_rows(select, qpos, qvel, ctrl)
        if refresh == "forward":
            self._launch("forward")  # all worlds (Warp has no per-world forward); same result
            self._stage1 = "full"
        else:  # poses now; the next step starts with a full step, so its physics is unchanged
            self._launch("kinematics")
            for name in ("sensordata", "actuator_force"):
                view = self._t[name]
                if select.dtype == torch.bool:
                    view.masked_fill_(select, 0.0)
                else:
                    view[select] = 0.0
            self._stage1 = "none"
        if check:
            self.check()
        # a bad qpos/qvel shows up as a divergence at the next step, as on the CPU backend

    def _write_rows(self, ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor, ctrl: torch.Tensor | None) -> None:
        n = ids.numel()
        self._t["qpos"][ids] = self._rows(qpos, n, self.info.nq)
        self._t["qvel"][ids] = self._rows(qvel, n, self.info.nv)
        if ctrl is not None:
            ctrl_rows = self._rows(ctrl, n, self.info.nu)
            self._t["ctrl"][ids] = ctrl_rows
            if self._history_columns.numel():  # one write for all actuators' stored controls
                self._t["history"][ids.unsqueeze(-1), self._history_columns] = ctrl_rows[:, self._history_actuator]

    def _write_where(self, select: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor,
                     ctrl: torch.Tensor | None) -> None:
        """The masked form of `_write_rows`: rows for every env, written where `select` [N, 1]."""
        n = self.num_envs

        def put(view: torch.Tensor, rows: torch.Tensor) -> None:
            view.copy_(torch.where(select, rows, view))

        put(self._t["qpos"], self._rows(qpos, n, self.info.nq))
        put(self._t["qvel"], self._rows(qvel, n, self.info.nv))
        if ctrl is not None:
            ctrl_rows = self._rows(ctrl, n, self.info.nu)
            put(self._t["ctrl"], ctrl_rows)
            if self._history_columns.numel():
                history = self._t["history"]
                cols = self._history_columns
                history[:, cols] = torch.where(select, ctrl_rows[:, self._history_actuator], history[:, cols])

    def set_qvel(self, env_ids: torch.Tensor, qvel: torch.Tensor) -> None:
        """Overwrite velocities of the given envs; velocity-dependent outputs follow at the next
        step."""
        ids = self._ids(env_ids)
        if ids.numel():
            self._t["qvel"][ids] = self._rows(qvel, ids.numel(), self.info.nv)
            self._stage1 = "none"

    def set_equality_active(self, name: str, env_ids: torch.Tensor, active: bool) -> None:
        """Switch equality `name` on or off in the given envs (a reset restores eq_active0)."""
        self.info.require("equality", [name])
        ids = self._ids(env_ids)
        if ids.numel():
            self._t["eq_active"][ids, self.info.equality_ids[name]] = bool(active)
            self._stage1 = "none"

    # ------------------------------------------------------------------ model fields
    def model_field(self, name: str) -> torch.Tensor:
        """Live per-env float32 view [N, ...] of Model field `name` (one of randomized_fields).

        Writes go straight to the device model; call commit_model() after editing fields that
        set_const reads (body_mass, body_inertia, body_ipos, dof_armature). Fields not listed in
        `randomized_fields` at construction are shared by all worlds and cannot be edited per env.
        """
        view = self._model_fields.get(name)
        if view is None:
            if name not in self._batched:
                raise KeyError(
                    f"model field {name!r} is not per-world in this MuJoCo Warp model: Warp needs "
                    f"the per-env fields up front; pass randomized_fields=(..., {name!r}) "
                    f"(per-world now: {list(self._batched)})"
                )
            owner = self.wp_model.opt if name.startswith("opt.") else self.wp_model
            view = wp.to_torch(getattr(owner, name.removeprefix("opt.")))
            if view.shape[0] != self.num_envs:  # pragma: no cover
                raise KeyError(f"model field {name!r} has {view.shape[0]} copies, not per env")
            self._model_fields[name] = view
        self._stage1 = "none"  # the caller may write the field before the next step
        return view

    def nominal_field(self, name: str) -> torch.Tensor:
        """The compiled model's value of `name` on `device` (the MjModel's dtype; never
        randomised)."""
        return torch.as_tensor(model_field_copy(self.model, name), device=self.device)

    def commit_model(self) -> None:
        """mujoco_warp.set_const (subtree masses, inverse weights, actuator_acc0, ... per world),
        then forward, so constants and outputs follow the edited fields. What it finds wrong is
        raised by the next `check()`, with what earlier unchecked steps found: the task edits the
        model in the middle of a step (its randomisation curriculum), before its check-in."""
        with wp.ScopedDevice(self._wp_device):
            mjw.set_const(self.wp_model, self.wp_data)
        self._launch("forward")
        self._stage1 = "full"
        self._unchecked = self._problems(self._unchecked)

    # ------------------------------------------------------------------ diagnostics
    def warning_counts(self) -> dict[str, int]:
        """Divergences so far, by the MuJoCo warning the CPU backend would report
        (mjWARN_BADQPOS / BADQVEL / BADQACC), and EPA horizon faults (warp_EPA_HORIZON), non-zero
        entries only. Buffer overflows raise WarpCapacityError instead."""
        return {name: n for name, n in self._warnings.items() if n}

    def render(
        self,
        env_id: int = 0,
        width: int = 640,
        height: int = 480,
        camera: str | int = -1,
    ) -> np.ndarray:
        """An (height, width, 3) uint8 RGB image of env `env_id`: its state is copied into a host
        MjData of the nominal model and drawn as on the CPU backend (same cameras)."""
        from .mujoco_batch import MujocoBatchSimulator
        from .rendering import OffscreenRenderer

        if not 0 <= env_id < self.num_envs:
            raise IndexError(f"env_id must be in [0, {self.num_envs}), got {env_id}")
        if self._render_data is None:
            self._render_data = mujoco.MjData(self.model)
        data = self._render_data
        t = self._t
        data.qpos[:] = t["qpos"][env_id].double().cpu().numpy()
        data.qvel[:] = t["qvel"][env_id].double().cpu().numpy()
        data.ctrl[:] = t["ctrl"][env_id].double().cpu().numpy()
        data.eq_active[:] = t["eq_active"][env_id].cpu().numpy().astype(np.uint8)
        mujoco.mj_forward(self.model, data)
        renderer = self._renderer
        if renderer is None or width > renderer.max_width or height > renderer.max_height:
            if renderer is not None:
                renderer.close()
            self._renderer = None
            renderer = OffscreenRenderer(self.model, width, height)
            self._renderer = renderer
        # the CPU backend's camera logic only reads self.info and self._track_body
        cam = MujocoBatchSimulator._camera(self, self.model, camera)  # type: ignore[arg-type]
        return renderer.render(data, width, height, cam)

    def close(self) -> None:
        """Free the rendering context and the captured graphs."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._programs.close()

    def __repr__(self) -> str:
        return (
            f"MujocoWarpSimulator({str(self.xml_path)!r}, num_envs={self.num_envs}, "
            f"device={str(self.device)!r}, nconmax={self.nconmax}, njmax={self.njmax}, "
            f"graphs={self._use_graphs})"
        )
