"""Terrain: the generated scenes have the configured heights and angles (measured by ray casts),
the task runs on them, and a terrain config without its terrain in the scene is an error."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch

from dhal.assets import SCENE_XML
from dhal.assets.terrain import height_profile, terrain_scene
from dhal.envs.overrides import apply_overrides
from dhal.envs.registry import make_env
from dhal.envs.skateboard.config import SkateboardConfig, TerrainConfig

torch.set_num_threads(1)

LINE_Y = 1.0  # a line beside the robot, so the rays hit terrain, not the robot or board


def ground_heights(terrain: TerrainConfig, xs: np.ndarray, tmp_path) -> np.ndarray:
    model = mujoco.MjModel.from_xml_path(str(terrain_scene(SCENE_XML, terrain, tmp_path)))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    top = 2.0
    hit = np.zeros(1, dtype=np.int32)
    return np.array([top - mujoco.mj_ray(model, data, np.array([x, LINE_Y, top]), np.array([0.0, 0.0, -1.0]),
                                         None, 1, -1, hit) for x in xs])


def test_a_slope_rises_and_falls_at_the_configured_angle(tmp_path):
    terrain = TerrainConfig(kind="slope", start_x=1.0, slope_deg=10.0, slope_length=2.0, plateau_length=1.0)
    xs = np.linspace(0.0, 7.0, 71)
    heights = ground_heights(terrain, xs, tmp_path)
    assert np.allclose(heights, height_profile(terrain, xs), atol=1e-6)
    assert heights.max() == pytest.approx(2.0 * math.tan(math.radians(10.0)))
    rising = (xs > 1.05) & (xs < 2.95)
    assert np.allclose(np.diff(heights[rising]) / np.diff(xs[rising]), math.tan(math.radians(10.0)))
    assert heights[xs < 1.0].max() == 0.0 and heights[xs > 6.0].max() == 0.0  # flat start and end


def test_a_step_has_the_configured_height_and_place(tmp_path):
    terrain = TerrainConfig(kind="step", start_x=2.0, step_height=0.025, step_length=1.5)
    xs = np.array([1.9, 2.05, 3.0, 3.45, 3.6])
    assert ground_heights(terrain, xs, tmp_path) == pytest.approx([0.0, 0.025, 0.025, 0.025, 0.0], abs=1e-9)


def test_uneven_ground_has_bumps_up_to_the_amplitude_and_a_seed_fixes_them(tmp_path):
    terrain = TerrainConfig(kind="uneven", start_x=1.0, uneven_amplitude=0.03, uneven_cell=0.1, uneven_length=4.0)
    xs = np.linspace(0.0, 6.0, 241)
    heights = ground_heights(terrain, xs, tmp_path)
    on = (xs > 1.3) & (xs < 4.7)
    assert heights.max() <= 0.03 + 1e-9 and heights[on].max() > 0.02 and heights[on].std() > 0.004
    assert heights[xs < 1.0].max() == 0.0 and heights[xs > 5.0].max() == 0.0
    again = ground_heights(terrain, xs, tmp_path)
    other = ground_heights(TerrainConfig(kind="uneven", start_x=1.0, uneven_amplitude=0.03, uneven_cell=0.1,
                                         uneven_length=4.0, seed=1), xs, tmp_path)
    assert np.array_equal(heights, again) and not np.allclose(heights, other)


def test_equal_configs_share_one_scene_file_and_flat_is_the_scene_itself(tmp_path):
    step = TerrainConfig(kind="step")
    assert terrain_scene(SCENE_XML, step, tmp_path) == terrain_scene(SCENE_XML, step, tmp_path)
    assert terrain_scene(SCENE_XML, TerrainConfig(kind="step", step_height=0.01), tmp_path) != \
        terrain_scene(SCENE_XML, step, tmp_path)
    assert terrain_scene(SCENE_XML, TerrainConfig(), tmp_path) == SCENE_XML


def test_the_task_runs_on_terrain_and_refuses_a_scene_without_it():
    from dhal.envs.backends import make_simulator
    from dhal.envs.skateboard.task import SkateboardEnv

    cfg = apply_overrides(SkateboardConfig(), {"terrain.kind": "uneven"})
    sim = make_simulator("mujoco_batch", terrain_scene(SCENE_XML, cfg.terrain), 2)
    env = SkateboardEnv(cfg, sim)
    result = env.step(torch.zeros(2, 12))
    assert torch.isfinite(result.reward).all()
    with pytest.raises(ValueError, match="terrain.kind is 'uneven' but the scene has no such terrain"):
        SkateboardEnv(cfg, make_simulator("mujoco_batch", SCENE_XML, 1))
    env = make_env(num_envs=1, overrides={"terrain.kind": "uneven"})  # the registry builds the terrain scene
    assert torch.isfinite(env.step(torch.zeros(1, 12)).reward).all()
    env.close()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("terrain.slope_deg", 50.0, "slope_deg must be in"),
    ("terrain.step_height", 0.0, "step_height"),
    ("terrain.kind", "stairs", "is not one of"),
])
def test_bad_terrain_values_are_errors(key, value, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(SkateboardConfig(), {key: value})
