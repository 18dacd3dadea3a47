"""The pieces of the suites without a policy: Wilson intervals, the paper's table and the
ablation labels, the scenarios' physics, and physics settings written into the model."""

from __future__ import annotations

import pytest
import torch

from dhal.envs.backends import make_simulator
from dhal.envs.registry import make_config, scene_path
from dhal.envs.skateboard.task import SkateboardEnv
from dhal.sim2real import paper, physics, scenarios
from dhal.sim2real.stats import wilson_interval

torch.set_num_threads(1)


def test_wilson_interval_matches_known_values():
    assert (wilson_interval(0, 5).low, wilson_interval(0, 5).high) == pytest.approx((0.0, 0.4345), abs=1e-4)
    assert (wilson_interval(5, 5).low, wilson_interval(5, 5).high) == pytest.approx((0.5655, 1.0), abs=1e-4)
    four = wilson_interval(4, 5)
    assert (four.rate, four.low, four.high) == pytest.approx((0.8, 0.3755, 0.9638), abs=1e-4)
    wide, narrow = wilson_interval(16, 32), wilson_interval(500, 1000)
    assert wide.high - wide.low > narrow.high - narrow.low > 0
    with pytest.raises(ValueError, match="at least one trial"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match=r"successes must be in \[0, 5\]"):
        wilson_interval(6, 5)


def test_the_paper_table_and_its_intervals():
    dhal_slope = paper.paper_result(paper.DHAL, "slope")
    assert dhal_slope is not None and dhal_slope.proportion.successes == 4 and dhal_slope.proportion.trials == 5
    wo_mc = paper.paper_result(paper.WO_MC, "slope")
    assert wo_mc is not None and wo_mc.proportion.rate == 0.0 and wo_mc.note == ""
    gaussian = paper.paper_result(paper.WO_BETA, "ceramic")
    assert gaussian is not None and gaussian.proportion.rate == 0.0 and "joint protection" in gaussian.note
    assert paper.paper_result("K=1", "ceramic") is None  # the paper has no K = 1 row
    with pytest.raises(KeyError, match="unknown hardware scenario"):
        paper.paper_result(paper.DHAL, "ice")


@pytest.mark.parametrize(("critic", "distribution", "modes", "label"), [
    ("multi", "beta", 3, "DHAL"),
    ("single", "beta", 3, "wo-MC"),
    ("single_transferred", "beta", 3, "wo-MC (transferred weights)"),
    ("multi", "gaussian", 3, "wo-Beta"),
    ("multi", "beta", 1, "K=1"),
    ("single", "gaussian", 1, "wo-MC, wo-Beta, K=1"),
])
def test_a_checkpoints_training_config_names_its_ablation(critic, distribution, modes, label):
    config = {"train": {"critic": {"mode": critic}, "actor": {"distribution": distribution},
                        "modes": {"num_modes": modes}}}
    assert paper.method_of(config) == label


def test_scenarios_fix_the_physics_they_describe():
    ceramic = make_config("dhal-skateboard-play", scenarios.HARDWARE_SCENARIOS["ceramic"].overrides)
    r = ceramic.randomization
    assert r.enabled and r.friction == (0.4, 0.4) and r.friction[1] < make_config().randomization.friction[0]
    assert r.kp_factor == (1.0, 1.0) and r.payload_mass == (0.0, 0.0) and r.push_velocity == 0.0
    carpet = make_config("dhal-skateboard-play", scenarios.HARDWARE_SCENARIOS["carpet"].overrides).randomization
    assert carpet.wheel_rolling_resistance[0] > make_config().randomization.wheel_rolling_resistance[1]
    pushes = make_config("dhal-skateboard-play", scenarios.HARDWARE_SCENARIOS["disturbance"].overrides).randomization
    assert pushes.push_velocity == 0.6 and pushes.push_interval_s == 3.0
    assert [s.name for s in scenarios.select(None)] == list(paper.SCENARIOS)
    assert [s.name for s in scenarios.select(("carpet", "ceramic"))] == ["ceramic", "carpet"]
    with pytest.raises(KeyError, match="unknown scenarios \\['ice'\\]"):
        scenarios.select(("ice",))
    with pytest.raises(KeyError, match="not randomised parameters"):
        scenarios.nominal_physics(gravity=3.0)


def test_terrain_scenarios_put_their_terrain_in_the_config():
    kinds = {name: make_config("dhal-skateboard-play", scenarios.HARDWARE_SCENARIOS[name].overrides).terrain.kind
             for name in paper.SCENARIOS}
    assert kinds == {"ceramic": "flat", "carpet": "flat", "disturbance": "flat", "slope": "slope",
                     "single_step": "step", "uneven": "uneven"}


def env_on(settings: physics.PhysicsSettings) -> SkateboardEnv:
    cfg = make_config("dhal-skateboard-play")
    sim = make_simulator("mujoco_batch", scene_path(cfg.scene), 2)
    return SkateboardEnv(physics.apply_physics(sim, cfg, settings), sim)


def test_physics_settings_reach_every_env_of_the_model():
    env = env_on(physics.PhysicsSettings("x", "", cone="elliptic", impratio=1.0, solver="cg", iterations=30,
                                         integrator="euler", noslip_iterations=3, contact_timeconst_scale=2.0))
    sim = env.sim
    assert sim.model_field("opt.cone").tolist() == [1, 1] and sim.model_field("opt.solver").tolist() == [1, 1]
    assert sim.model_field("opt.iterations").tolist() == [30, 30]
    assert sim.model_field("opt.integrator").tolist() == [0, 0]
    assert sim.model_field("opt.noslip_iterations").tolist() == [3, 3]
    assert torch.allclose(sim.model_field("geom_solref")[1, :, 0], 2.0 * sim.nominal_field("geom_solref")[:, 0])
    env.step(torch.zeros(2, 12))  # and the task runs on it


def test_a_smaller_timestep_keeps_the_control_period():
    env = env_on(physics.PhysicsSettings("dt", "", physics_dt=0.0025))
    assert env.cfg.sim.physics_dt == 0.0025 and env.cfg.sim.decimation == 8 and env.step_dt == pytest.approx(0.02)
    assert env.sim.model_field("opt.timestep").tolist() == [0.0025, 0.0025]
    assert env.cfg.action.delay_range_s == pytest.approx((0.0, 0.0175))  # 8 samples of history at 2.5 ms
    with pytest.raises(ValueError, match="does not divide the control period"):
        physics.retimed_config(make_config(), 0.003, 0.02)


def test_physics_selection_always_keeps_the_trained_baseline():
    names = [s.name for s in physics.select_settings(("elliptic_cone",))]
    assert names == ["trained", "elliptic_cone"]
    with pytest.raises(KeyError, match="unknown physics settings"):
        physics.select_settings(("bullet",))


def test_a_capacity_error_at_env_build_is_not_reported_as_a_missing_backend(monkeypatch):
    from dhal.envs.backends.base import SimulatorCapacityError
    from dhal.sim2real import envs

    def too_small(*args, **kwargs):
        raise SimulatorCapacityError("contact buffer too small", {"sim.njmax": 512})

    monkeypatch.setattr(envs, "make_task_simulator", too_small)
    loaded = type("Loaded", (), {"config": {}})()
    with pytest.raises(SimulatorCapacityError) as caught:
        envs.build_env(loaded, envs.EnvRequest(), num_envs=2)  # type: ignore[arg-type]
    assert caught.value.overrides == {"sim.njmax": 512}
