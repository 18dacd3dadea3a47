"""The mujoco.batch backend against a small self-made MJCF and a serial mj_step reference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

mujoco = pytest.importorskip("mujoco")

from dhal.envs.backends import (  # noqa: E402
    BACKEND_ALIASES,
    SimulationDiverged,
    Simulator,
    available_backends,
    canonical_backend,
    make_simulator,
    register_backend,
)
from dhal.envs.backends.batch_raw import raw_step_throughput  # noqa: E402
from dhal.envs.backends.mujoco_batch import MujocoBatchSimulator  # noqa: E402
from dhal.envs.backends.rendering import HeadlessGLUnavailable  # noqa: E402

# A free "trunk" with a hinged leg (position actuator) whose foot lands on the floor, a touch
# sensor on the foot, and a ball tethered to the world by a connect equality.
XML = """
<mujoco model="tiny">
  <option timestep="0.005" integrator="implicitfast"/>
  <worldbody>
    <light pos="0 0 3"/>
    <camera name="top" pos="0 0 3" xyaxes="1 0 0 0 1 0"/>
    <geom name="floor" type="plane" size="5 5 0.1"/>
    <body name="trunk" pos="0 0 0.3">
      <freejoint name="root"/>
      <geom name="torso" type="box" size="0.1 0.05 0.05" mass="1"/>
      <site name="tip" pos="0.1 0 0"/>
      <body name="leg" pos="0.1 0 0">
        <joint name="hinge" type="hinge" axis="0 1 0" range="-1 1" damping="0.1"/>
        <geom name="shin" type="capsule" fromto="0 0 0 0 0 -0.2" size="0.02" mass="0.2"/>
        <site name="foot" pos="0 0 -0.22" size="0.03"/>
      </body>
    </body>
    <body name="ball" pos="0.5 0 0.5">
      <freejoint name="ball_root"/>
      <geom name="ball" type="sphere" size="0.05" mass="0.5"/>
      <site name="ball_site"/>
    </body>
  </worldbody>
  <equality>
    <connect name="tether" body1="ball" body2="world" anchor="0 0 0"/>
  </equality>
  <actuator>
    <position name="hinge_act" joint="hinge" kp="5" kv="0.1" ctrlrange="-1 1"/>
  </actuator>
  <sensor>
    <touch name="foot_touch" site="foot"/>
    <framepos name="tip_pos" objtype="site" objname="tip"/>
    <jointpos name="hinge_pos" joint="hinge"/>
  </sensor>
  <keyframe>
    <key name="home" qpos="0 0 0.3 1 0 0 0  0.3  0.5 0 0.5 1 0 0 0" ctrl="0.3"/>
  </keyframe>
</mujoco>
"""

NQ, NV = 15, 13


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MuJoCo appends its warnings to MUJOCO_LOG.TXT in the working directory."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture()
def xml_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.xml"
    path.write_text(XML)
    return path


def make(xml_path: Path, n: int, **kw) -> MujocoBatchSimulator:
    sim = make_simulator("mujoco_batch", xml_path, n, "cpu", nthread=2, **kw)
    assert isinstance(sim, MujocoBatchSimulator)
    return sim


def varied_start(n: int, home: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-env different starting states: leg angle and body velocities."""
    g = torch.Generator().manual_seed(seed)
    qpos = home.expand(n, -1).clone()
    qpos[:, 7] += 0.3 * torch.randn(n, generator=g)
    qpos[:, 2] += 0.05 * torch.rand(n, generator=g)
    qvel = 0.2 * torch.randn(n, NV, generator=g)
    return qpos, qvel


def test_model_info(xml_path: Path) -> None:
    sim = make(xml_path, 2)
    info = sim.info
    assert isinstance(sim, Simulator)
    assert (info.nq, info.nv, info.nu, info.nsensordata) == (NQ, NV, 1, 5)
    assert info.physics_dt == pytest.approx(0.005)
    assert info.joint_qpos_adr == {"root": 0, "hinge": 7, "ball_root": 8}
    assert info.joint_qvel_adr == {"root": 0, "hinge": 6, "ball_root": 7}
    assert info.actuator_names == ("hinge_act",)
    assert info.actuator_joint == {"hinge_act": "hinge"}
    assert info.sensor_slices == {"foot_touch": (0, 1), "tip_pos": (1, 3), "hinge_pos": (4, 1)}
    assert info.site_ids == {"tip": 0, "foot": 1, "ball_site": 2}
    assert info.body_ids == {"world": 0, "trunk": 1, "leg": 2, "ball": 3}
    assert info.geom_ids == {"floor": 0, "torso": 1, "shin": 2, "ball": 3}
    assert info.equality_ids == {"tether": 0}
    assert set(info.keyframes) == {"home"}
    assert info.keyframes["home"].dtype == torch.float32
    assert info.keyframes["home"][7].item() == pytest.approx(0.3)
    info.require("site", ["foot"])
    with pytest.raises(KeyError, match="nope"):
        info.require("body", ["trunk", "nope"])


def test_step_matches_serial_mj_step(xml_path: Path) -> None:
    n, nsub, ncall = 5, 4, 40
    sim = make(xml_path, n)
    m = mujoco.MjModel.from_xml_path(str(xml_path))
    qpos, qvel = varied_start(n, sim.info.keyframes["home"])
    sim.set_state(torch.arange(n), qpos, qvel)

    datas = []
    for i in range(n):  # what set_state does, serially: reset, write, mj_forward
        d = mujoco.MjData(m)
        d.qpos[:] = sim.batch.bind("qpos")[i]  # the float64 rows the batch holds
        d.qvel[:] = sim.batch.bind("qvel")[i]
        mujoco.mj_forward(m, d)
        datas.append(d)

    g = torch.Generator().manual_seed(1)
    touched = False
    for _ in range(ncall):
        ctrl = torch.rand(n, 1, generator=g) * 2 - 1
        sim.step(ctrl, nsub)
        state = sim.read()
        for i, d in enumerate(datas):
            d.ctrl[:] = ctrl[i].double().numpy()
            mujoco.mj_step(m, d, nsub)
            mujoco.mj_step1(m, d)  # the batch's stage=VEL: positions/velocities current
            ref = {
                "qpos": d.qpos,
                "qvel": d.qvel,
                "sensordata": d.sensordata,  # touch: one substep behind, as after mj_step
                "site_xpos": d.site_xpos,
                "xpos": d.xpos,
                "xquat": d.xquat,
                "actuator_force": d.actuator_force,
            }
            for name, value in ref.items():
                got = getattr(state, name)[i]
                want = torch.as_tensor(np.asarray(value), dtype=torch.float32)
                torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6, msg=name)
            touched |= bool(d.sensordata[0] > 0)
    assert touched, "the foot never touched the floor: the touch sensor was not exercised"
    # and the positions really are current: tip site == framepos sensor == site_xpos
    torch.testing.assert_close(state.sensordata[:, 1:4], state.site_xpos[:, 0])
    assert sim.warning_counts() == {}


def test_stage_acc_makes_touch_current(xml_path: Path) -> None:
    n = 3
    sim = make(xml_path, n, stage="acc")
    m = mujoco.MjModel.from_xml_path(str(xml_path))
    qpos, qvel = varied_start(n, sim.info.keyframes["home"])
    sim.set_state(torch.arange(n), qpos, qvel)
    datas = []
    for i in range(n):
        d = mujoco.MjData(m)
        d.qpos[:] = sim.batch.bind("qpos")[i]
        d.qvel[:] = sim.batch.bind("qvel")[i]
        mujoco.mj_forward(m, d)
        datas.append(d)
    for _ in range(30):
        sim.step(torch.zeros(n, 1), 4)
        for d in datas:
            mujoco.mj_step(m, d, 4)
            mujoco.mj_forward(m, d)
        want = torch.tensor(np.stack([d.sensordata for d in datas]), dtype=torch.float32)
        torch.testing.assert_close(sim.read().sensordata, want, rtol=1e-6, atol=1e-6)


def test_read_returns_fresh_tensors(xml_path: Path) -> None:
    sim = make(xml_path, 3)
    sim.step(torch.zeros(3, 1), 2)
    a, b = sim.read(), sim.read()
    for name in ("qpos", "qvel", "sensordata", "site_xpos", "xpos", "xquat", "actuator_force"):
        ta, tb = getattr(a, name), getattr(b, name)
        assert ta.dtype == torch.float32 and ta.device.type == "cpu"
        assert ta is not tb and ta.data_ptr() != tb.data_ptr()
        torch.testing.assert_close(ta, tb)
        ta.fill_(123.0)
        torch.testing.assert_close(getattr(sim.read(), name), tb)  # the sim is untouched
    assert a.site_xpos.shape == (3, 3, 3)
    assert a.xpos.shape == (3, 4, 3) and a.xquat.shape == (3, 4, 4)


def test_set_state_touches_only_given_envs(xml_path: Path) -> None:
    n = 6
    sim = make(xml_path, n)
    home = sim.info.keyframes["home"]
    qpos, qvel = varied_start(n, home)
    sim.set_state(torch.arange(n), qpos, qvel)
    sim.step(torch.full((n, 1), 0.5), 8)
    before = sim.read()
    ids = torch.tensor([4, 1])  # unsorted on purpose
    new_qpos = home.expand(2, -1).clone()
    new_qpos[:, 0] = torch.tensor([4.0, 1.0])  # x position tags the env
    new_qvel = torch.zeros(2, NV)
    new_qvel[:, 6] = torch.tensor([-4.0, -1.0])
    sim.set_state(ids, new_qpos, new_qvel)
    after = sim.read()
    others = [0, 2, 3, 5]
    for name in ("qpos", "qvel", "sensordata", "xpos"):
        assert torch.equal(getattr(after, name)[others], getattr(before, name)[others]), name
    torch.testing.assert_close(after.qpos[[1, 4], 0], torch.tensor([1.0, 4.0]))
    torch.testing.assert_close(after.qvel[[1, 4], 6], torch.tensor([-1.0, -4.0]))
    # derived fields are current after the reset (mj_forward): the trunk body is at qpos[0:3]
    torch.testing.assert_close(after.xpos[[1, 4], 1], after.qpos[[1, 4], 0:3])
    # controls and warm-start were cleared: ctrl rows of the reset envs are zero
    ctrl = sim.batch.bind("ctrl")
    assert (ctrl[[1, 4]] == 0).all() and (ctrl[others] == 0.5).all()
    assert (sim.batch.bind("qacc_warmstart")[[1, 4]] == 0).all()
    with pytest.raises(ValueError, match="unique"):
        sim.set_state(torch.tensor([2, 2]), new_qpos, new_qvel)
    with pytest.raises(ValueError, match="mask must have shape"):
        sim.set_state(torch.tensor([True, False]), new_qpos, new_qvel)

    # set_qvel writes only velocities
    pos_before = sim.read().qpos
    push = torch.zeros(1, NV)
    push[0, 0] = 2.0
    sim.set_qvel(torch.tensor([3]), push)
    st = sim.read()
    assert torch.equal(st.qpos, pos_before)
    assert st.qvel[3, 0] == 2.0 and (st.qvel[3, 1:] == 0).all()
    assert torch.equal(st.qvel[others[:-2]], after.qvel[others[:-2]])


def test_model_field_randomises_per_env(xml_path: Path) -> None:
    n = 3
    sim = make(xml_path, n)
    body_mass = sim.model_field("body_mass")
    assert sim.model_field("body_mass") is body_mass  # cached live view
    nominal = sim.nominal_field("body_mass").clone()
    assert body_mass.shape == (n, 4) and torch.equal(body_mass[1], nominal)
    leg = sim.info.body_ids["leg"]
    body_mass[1, leg] = nominal[leg] * 10.0  # a heavy leg
    friction = sim.model_field("geom_friction")
    friction[2, :, 0] = 0.0  # env 2: frictionless
    timestep = sim.model_field("opt.timestep")
    assert timestep.shape == (n,) and torch.allclose(timestep, torch.tensor(0.005, dtype=torch.float64))
    sim.commit_model()
    # the per-env values are the sims' models
    assert sim.batch.get_model(1).body_mass[leg] == pytest.approx(nominal[leg].item() * 10)
    assert sim.batch.get_model(0).body_mass[leg] == pytest.approx(nominal[leg].item())

    home = sim.info.keyframes["home"]
    sim.set_state(torch.arange(n), home.expand(n, -1), torch.zeros(n, NV))
    for _ in range(10):
        sim.step(torch.full((n, 1), -0.8), 4)
    hinge = sim.read().qpos[:, sim.info.joint_qpos_adr["hinge"]]
    # same start, same ctrl: the heavy leg lags behind the nominal one
    assert abs(hinge[1] - hinge[0]) > 1e-2, hinge
    # the nominal model is unchanged, and env 0 still runs it
    torch.testing.assert_close(sim.nominal_field("body_mass"), nominal)
    ref = make(xml_path, 1)
    ref.set_state(torch.arange(1), home.expand(1, -1), torch.zeros(1, NV))
    for _ in range(10):
        ref.step(torch.full((1, 1), -0.8), 4)
    torch.testing.assert_close(ref.read().qpos[0], sim.read().qpos[0])
    with pytest.raises(KeyError, match="no_such_field"):
        sim.model_field("no_such_field")


def test_set_equality_active_switches_connect(xml_path: Path) -> None:
    n = 3
    sim = make(xml_path, n)
    ball = sim.info.body_ids["ball"]
    sim.set_equality_active("tether", torch.tensor([1]), False)
    for _ in range(25):
        sim.step(torch.zeros(n, 1), 4)
    z = sim.read().xpos[:, ball, 2]
    assert abs(z[0] - 0.5) < 2e-3 and abs(z[2] - 0.5) < 2e-3, z  # held by the connect
    assert z[1] < 0.1, z  # released: fell to the floor (radius 0.05)
    # a reset restores the model's eq_active0 (on)
    sim.set_state(torch.tensor([1]), sim.info.keyframes["home"].unsqueeze(0), torch.zeros(1, NV))
    assert sim.batch.bind("eq_active")[1, 0] == 1.0
    with pytest.raises(KeyError, match="no_eq"):
        sim.set_equality_active("no_eq", torch.tensor([0]), True)


@pytest.mark.parametrize("bad", [float("nan"), 1e12])
def test_divergence_names_the_env(xml_path: Path, bad: float) -> None:
    n = 4
    sim = make(xml_path, n)
    sim.step(torch.zeros(n, 1), 4)
    qvel = sim.read().qvel
    qvel[2, 0] = bad
    sim.set_qvel(torch.arange(n), qvel)
    before = sim.read().qpos
    with pytest.raises(SimulationDiverged) as exc:
        sim.step(torch.zeros(n, 1), 4)
    assert exc.value.env_ids == [2]
    assert "BADQVEL" in str(exc.value)
    after = sim.read()
    assert torch.isfinite(after.qpos).all()  # MuJoCo reset env 2's data
    assert not torch.equal(after.qpos[[0, 1, 3]], before[[0, 1, 3]])  # the others stepped
    sim.step(torch.zeros(n, 1), 4)  # not raised again for the same event
    assert sim.warning_counts() == {"mjWARN_BADQVEL": 1}
    sim.set_state(torch.tensor([2]), sim.info.keyframes["home"].unsqueeze(0), torch.zeros(1, NV))
    sim.step(torch.zeros(n, 1), 4)
    assert sim.warning_counts() == {"mjWARN_BADQVEL": 1}  # totals survive the reset


def test_unknown_backend_is_a_clear_error(xml_path: Path) -> None:
    assert "mujoco_batch" in available_backends()
    with pytest.raises(ValueError, match=r"unknown simulator backend 'bullet'.*mujoco_batch"):
        make_simulator("bullet", xml_path, 2, "cpu")


def test_short_backend_names_resolve_to_the_registered_ones(xml_path: Path) -> None:
    assert canonical_backend("mjwarp") == "mujoco_warp" and canonical_backend("mujoco_warp") == "mujoco_warp"
    assert set(BACKEND_ALIASES.values()) <= set(available_backends())
    assert isinstance(make_simulator("mjbatch", xml_path, 2, "cpu"), MujocoBatchSimulator)
    with pytest.raises(ValueError, match="short name"):
        register_backend("mjwarp", MujocoBatchSimulator)


def test_cpu_only(xml_path: Path) -> None:
    with pytest.raises(ValueError, match="mujoco_warp"):
        make_simulator("mujoco_batch", xml_path, 2, "cuda")


def test_raw_step_throughput(xml_path: Path) -> None:
    rate = raw_step_throughput(xml_path, 8, nsteps_per_call=4, seconds=0.2, nthread=1)
    assert rate > 1000.0


def test_render_rgb(xml_path: Path) -> None:
    sim = make(xml_path, 2)
    try:
        img = sim.render(1, 96, 64)
    except HeadlessGLUnavailable as err:
        pytest.skip(f"no OpenGL platform for headless rendering here: {err}")
    assert img.shape == (64, 96, 3) and img.dtype == np.uint8
    assert img.std() > 1.0  # not a blank frame
    big = sim.render(0, 800, 600)  # larger than the default 640x480 framebuffer
    assert big.shape == (600, 800, 3)
    top = sim.render(1, 96, 64, camera="top")
    assert top.shape == img.shape and not np.array_equal(top, img)
    assert np.array_equal(sim.render(1, 96, 64, camera=0), top)
    with pytest.raises(KeyError, match="no camera"):
        sim.render(0, 32, 32, camera="nope")
    sim.close()


def test_render_geom_rgba_colours_one_image_only(xml_path: Path) -> None:
    sim = make(xml_path, 1)
    try:
        plain = sim.render(0, 64, 48, camera="top")
    except HeadlessGLUnavailable as err:
        pytest.skip(f"no OpenGL platform for headless rendering here: {err}")
    torso = sim.info.geom_ids["torso"]
    red = sim.render(0, 64, 48, camera="top", geom_rgba={torso: (1.0, 0.0, 0.0, 1.0)})
    assert not np.array_equal(red, plain)
    changed = np.abs(red.astype(int) - plain.astype(int)).sum(-1) > 0
    assert (red[changed][:, 0] > red[changed][:, 1]).mean() > 0.9  # the changed pixels are reddish
    assert np.array_equal(sim.render(0, 64, 48, camera="top"), plain)  # nothing persisted
    sim.close()


@pytest.mark.parametrize("platform", ["egl", "osmesa"])
def test_render_platform_subprocess(xml_path: Path, platform: str) -> None:
    """Each GL platform in a fresh process (PyOpenGL fixes its platform per process)."""
    code = (
        "import sys\n"
        "from dhal.envs.backends import make_simulator\n"
        "from dhal.envs.backends.rendering import HeadlessGLUnavailable\n"
        f"sim = make_simulator('mujoco_batch', {str(xml_path)!r}, 1, 'cpu')\n"
        "try:\n"
        "    img = sim.render(0, 48, 32)\n"
        "except HeadlessGLUnavailable as err:\n"
        "    print(err); sys.exit(3)\n"
        "assert img.shape == (32, 48, 3) and img.dtype.name == 'uint8' and img.std() > 1\n"
    )
    env = {**os.environ, "MUJOCO_GL": platform}
    env.pop("PYOPENGL_PLATFORM", None)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    if proc.returncode == 3:
        pytest.skip(f"MUJOCO_GL={platform} unavailable here: {proc.stdout.strip()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
