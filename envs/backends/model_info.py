"""What both backends read from an MjModel: its named objects (`ModelInfo`), the columns of its
actuators' control histories, copies of its fields, and the control bank of the raw-stepping
benchmarks."""

from __future__ import annotations

import mujoco
import numpy as np
import torch

from .base import ModelInfo

__all__ = ["build_model_info", "ctrl_history_columns", "keyframe_control_bank", "model_field_copy", "object_name"]


def ctrl_history_columns(model: mujoco.MjModel) -> list[tuple[int, np.ndarray]]:
    """(actuator, columns of its stored control values in mjData.history) for each actuator
    with a history. MuJoCo's layout per actuator: [user, cursor, nsample times, nsample values]."""
    columns = []
    for actuator in range(model.nu):
        nsample = int(model.actuator_history[actuator, 0])
        if nsample > 0:
            start = int(model.actuator_historyadr[actuator]) + 2 + nsample
            columns.append((actuator, np.arange(start, start + nsample)))
    return columns


def object_name(model: mujoco.MjModel, obj: mujoco.mjtObj, i: int) -> str:
    return mujoco.mj_id2name(model, obj, i) or ""


def build_model_info(model: mujoco.MjModel) -> ModelInfo:
    """Resolve every named object of `model` once. Unnamed objects are left out."""
    obj = mujoco.mjtObj

    def named(kind: mujoco.mjtObj, count: int) -> dict[str, int]:
        out = {}
        for i in range(count):
            name = object_name(model, kind, i)
            if name:
                out[name] = i
        return out

    joints = named(obj.mjOBJ_JOINT, model.njnt)
    actuator_names = tuple(object_name(model, obj.mjOBJ_ACTUATOR, i) for i in range(model.nu))
    actuator_joint: dict[str, str] = {}
    joint_trn = (int(mujoco.mjtTrn.mjTRN_JOINT), int(mujoco.mjtTrn.mjTRN_JOINTINPARENT))
    for i, name in enumerate(actuator_names):
        if name and int(model.actuator_trntype[i]) in joint_trn:
            joint = object_name(model, obj.mjOBJ_JOINT, int(model.actuator_trnid[i, 0]))
            if joint:
                actuator_joint[name] = joint
    sensors = {
        name: (int(model.sensor_adr[i]), int(model.sensor_dim[i]))
        for name, i in named(obj.mjOBJ_SENSOR, model.nsensor).items()
    }
    keyframes = {
        name: torch.tensor(model.key_qpos[i], dtype=torch.float32)
        for name, i in named(obj.mjOBJ_KEY, model.nkey).items()
    }
    return ModelInfo(
        nq=model.nq,
        nv=model.nv,
        nu=model.nu,
        nsensordata=model.nsensordata,
        physics_dt=float(model.opt.timestep),
        joint_qpos_adr={n: int(model.jnt_qposadr[i]) for n, i in joints.items()},
        joint_qvel_adr={n: int(model.jnt_dofadr[i]) for n, i in joints.items()},
        actuator_names=actuator_names,
        actuator_joint=actuator_joint,
        sensor_slices=sensors,
        site_ids=named(obj.mjOBJ_SITE, model.nsite),
        body_ids=named(obj.mjOBJ_BODY, model.nbody),
        geom_ids=named(obj.mjOBJ_GEOM, model.ngeom),
        equality_ids=named(obj.mjOBJ_EQUALITY, model.neq),
        keyframes=keyframes,
    )


def model_field_copy(model: mujoco.MjModel, name: str) -> np.ndarray:
    """A copy of an MjModel array field, or of an option field named 'opt.<name>'."""
    value = getattr(model.opt, name[4:], None) if name.startswith("opt.") else getattr(model, name, None)
    if value is None or isinstance(value, (str, bytes)):
        raise KeyError(f"MjModel has no array field {name!r}")
    return np.array(value, copy=True)


def keyframe_control_bank(
    model: mujoco.MjModel, keyframe: str | int | None, num_envs: int, noise: float, seed: int, size: int = 16
) -> tuple[int, np.ndarray]:
    """(keyframe index or -1, controls [size, num_envs, nu]) for the bare-stepping benchmarks:
    the keyframe's ctrl (where it is all zero: the keyframe qpos of each joint-driven actuator's
    joint, i.e. position targets) plus N(0, noise), clipped to ctrlrange. Default keyframe: the
    first one, if the model has any."""
    key = -1
    if isinstance(keyframe, str):
        key = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, keyframe)
        if key < 0:
            raise KeyError(f"model has no keyframe named {keyframe!r}")
    elif keyframe is not None:
        key = int(keyframe)
    elif model.nkey > 0:
        key = 0
    target = model.key_ctrl[key].copy() if key >= 0 else np.zeros(model.nu)
    qpos = model.key_qpos[key] if key >= 0 else model.qpos0
    if not target.any():
        for i in range(model.nu):
            if int(model.actuator_trntype[i]) == int(mujoco.mjtTrn.mjTRN_JOINT):
                target[i] = qpos[model.jnt_qposadr[model.actuator_trnid[i, 0]]]
    rng = np.random.default_rng(seed)
    bank = target + noise * rng.standard_normal((size, num_envs, model.nu))
    limited = model.actuator_ctrllimited.astype(bool)
    lo, hi = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    return key, np.where(limited, np.clip(bank, lo, hi), bank)
