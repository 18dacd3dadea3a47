"""Terrain scenes: the task scene plus slope, step or height-field geoms built from a
`TerrainConfig`, written as MJCF text (no simulator import) into a cache folder.

    path = terrain_scene(SCENE_XML, cfg.terrain)    # the scene itself for kind "flat"

The generated file includes the task scene by absolute path and adds static geoms in front of
the start (x > start_x), so the keyframes, which stand on the floor at x = 0, stay valid. Terrain
geoms collide like the floor (bits 1/1) with the floor's friction; the robot's and board's geoms
have the higher priority, so their (randomised) friction governs, as on the floor. Files are named
by a hash of the base scene and the terrain values, so equal configs share one file."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dhal.envs.skateboard.config import TerrainConfig

CACHE_DIR = Path(tempfile.gettempdir()) / "dhal_terrain"
_GEOM_ATTRIBUTES = 'contype="1" conaffinity="1" condim="3" friction="1 0.005 0.0001" material="ground"'
_TAPER_CELLS = 2  # height-field columns at each end held at the floor, so the board meets no lip
_HFIELD_BASE = 0.05  # m of solid below the height field's lowest point


def _box(name: str, centre: tuple[float, float, float], half: tuple[float, float, float], pitch: float = 0.0) -> str:
    """A box geom; `pitch` rotates it about y (positive tips its +x end down)."""
    pos = " ".join(f"{v:.6g}" for v in centre)
    size = " ".join(f"{v:.6g}" for v in half)
    return f'    <geom name="{name}" type="box" pos="{pos}" size="{size}" euler="0 {pitch:.9g} 0" {_GEOM_ATTRIBUTES}/>'


def _ramp(name: str, x_low: float, x_high: float, rising: bool, angle: float, half_width: float) -> str:
    """A box whose top face is the incline from height 0 at x_low to its top at x_high (rising) or
    the mirror image; the rest of the box lies under that face (and the floor)."""
    length = x_high - x_low
    height = length * math.tan(angle)
    thickness = height + 0.1
    sign = 1.0 if rising else -1.0
    normal = (-sign * math.sin(angle), math.cos(angle))  # (x, z) of the incline's upward normal
    top_centre = ((x_low + x_high) / 2, height / 2)
    centre = (top_centre[0] - normal[0] * thickness / 2, 0.0, top_centre[1] - normal[1] * thickness / 2)
    return _box(name, centre, (length / (2 * math.cos(angle)), half_width, thickness / 2), pitch=-sign * angle)


def height_profile(terrain: TerrainConfig, x: np.ndarray) -> np.ndarray:
    """The terrain's surface height along the centre line (y = 0) at `x`, for slope and step
    (uneven ground has no closed form; flat is 0)."""
    x = np.asarray(x, dtype=float)
    if terrain.kind == "slope":
        angle = math.radians(terrain.slope_deg)
        top = terrain.slope_length * math.tan(angle)
        up_end = terrain.start_x + terrain.slope_length
        down_start = up_end + terrain.plateau_length
        rising = np.clip((x - terrain.start_x) * math.tan(angle), 0.0, top)
        falling = np.clip(top - (x - down_start) * math.tan(angle), 0.0, top)
        return np.minimum(rising, falling)
    if terrain.kind == "step":
        inside = (x >= terrain.start_x) & (x <= terrain.start_x + terrain.step_length)
        return np.where(inside, terrain.step_height, 0.0)
    if terrain.kind == "flat":
        return np.zeros_like(x)
    raise ValueError(f"terrain {terrain.kind!r} has no height profile")


def uneven_elevation(terrain: TerrainConfig) -> np.ndarray:
    """[rows (y), cols (x)] bump heights in [0, 1] (times uneven_amplitude in metres), from the
    terrain seed; the first and last columns are 0 so the board meets no lip."""
    cols = max(2 * _TAPER_CELLS + 2, round(terrain.uneven_length / terrain.uneven_cell) + 1)
    rows = max(2, round(terrain.width / terrain.uneven_cell) + 1)
    heights = np.random.default_rng(terrain.seed).uniform(0.0, 1.0, size=(rows, cols))
    heights[:, :_TAPER_CELLS] = 0.0
    heights[:, -_TAPER_CELLS:] = 0.0
    return heights / heights.max()  # MuJoCo normalises the data to a maximum of 1 as well


def terrain_xml(base_scene: Path, terrain: TerrainConfig) -> str:
    half_width = terrain.width / 2
    assets = ""
    if terrain.kind == "slope":
        angle = math.radians(terrain.slope_deg)
        up_end = terrain.start_x + terrain.slope_length
        down_start = up_end + terrain.plateau_length
        top = terrain.slope_length * math.tan(angle)
        geoms = [
            _ramp("terrain_slope_up", terrain.start_x, up_end, True, angle, half_width),
            _box("terrain_slope_top", ((up_end + down_start) / 2, 0.0, top / 2),
                 (max(terrain.plateau_length, 1e-3) / 2, half_width, top / 2)),
            _ramp("terrain_slope_down", down_start, down_start + terrain.slope_length, False, angle, half_width),
        ]
    elif terrain.kind == "step":
        geoms = [_box("terrain_step", (terrain.start_x + terrain.step_length / 2, 0.0, terrain.step_height / 2),
                      (terrain.step_length / 2, half_width, terrain.step_height / 2))]
    elif terrain.kind == "uneven":
        elevation = uneven_elevation(terrain)
        rows, cols = elevation.shape
        values = " ".join(f"{v:.5f}" for v in elevation.reshape(-1))
        assets = (f'  <asset>\n    <hfield name="terrain_uneven" nrow="{rows}" ncol="{cols}" size="'
                  f'{terrain.uneven_length / 2:.6g} {half_width:.6g} {terrain.uneven_amplitude:.6g} {_HFIELD_BASE}" '
                  f'elevation="{values}"/>\n  </asset>\n')
        geoms = [f'    <geom name="terrain_uneven" type="hfield" hfield="terrain_uneven" '
                 f'pos="{terrain.start_x + terrain.uneven_length / 2:.6g} 0 0" {_GEOM_ATTRIBUTES}/>']
    else:
        raise ValueError(f"terrain {terrain.kind!r} adds no geoms")
    body = "\n".join(geoms)
    return (f'<!-- Generated by dhal.assets.terrain from {json.dumps(asdict(terrain))}. -->\n'
            f'<mujoco model="go1_skateboard_{terrain.kind}">\n  <include file="{base_scene.resolve()}"/>\n'
            f'{assets}  <worldbody>\n{body}\n  </worldbody>\n</mujoco>\n')


def terrain_scene(base_scene: Path, terrain: TerrainConfig, directory: Path = CACHE_DIR) -> Path:
    """The MJCF path of `base_scene` with `terrain` (the base scene itself for kind "flat")."""
    if terrain.kind == "flat":
        return base_scene
    text = terrain_xml(base_scene, terrain)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = directory / f"{base_scene.stem}_{terrain.kind}_{digest}.xml"
    if not path.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, suffix=".xml.tmp")
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(temporary, path)  # atomic: a parallel writer of the same file is harmless
    return path
