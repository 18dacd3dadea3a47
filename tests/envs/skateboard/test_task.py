"""The skateboard task on the real Go1 + board scene and the CPU backend."""

import pytest
import torch

from dhal.envs.contract import go1_contract
from dhal.envs.registry import make_config, make_env
from dhal.envs.skateboard.transition import transition_from_snapshot

QUIET = {"randomization.enabled": False, "observations.noise": False}


@pytest.fixture(scope="module")
def env():
    return make_env(num_envs=4, seed=0)


def test_observation_groups_and_sizes(env):
    obs = env.observations()
    assert {k: v.shape for k, v in obs.items()} == {
        "history": (4, 960), "proprio": (4, 48), "privileged": (4, 1630)}
    assert env.observation_sizes == {"history": 960, "proprio": 48, "privileged": 1630}
    # Right after a reset the whole history is the first frame.
    frames = obs["history"].view(4, 20, 48)
    assert torch.equal(frames, obs["proprio"].unsqueeze(1).expand(4, 20, 48))


def test_lean_critic_variant():
    lean = make_env(num_envs=2, overrides={"observations.critic": "lean"})
    assert lean.observations()["privileged"].shape == (2, 122)


def test_step_outputs_are_fresh_and_consistent(env):
    actions = torch.zeros(4, 12)
    first = env.step(actions)
    kept = first.observations["history"].clone()
    second = env.step(actions)
    assert torch.equal(first.observations["history"], kept)  # not overwritten by the next step
    assert second.observations["history"].data_ptr() != first.observations["history"].data_ptr()
    assert second.observations["privileged"].data_ptr() != first.observations["privileged"].data_ptr()
    assert torch.equal(second.observations["proprio"], second.observations["history"].view(4, 20, 48)[:, -1])
    ex = second.extras
    assert ex["reward_group_names"] == ("glide", "push", "sim2real")
    assert ex["reward_groups"].shape == (4, 3)
    assert torch.allclose(second.reward, ex["reward_groups"].sum(-1))
    assert ex["dynamics_targets"]["next_state"].shape == (4, 33)
    assert ex["dynamics_targets"]["next_contacts"].shape == (4, 3)
    assert torch.equal(ex["time_outs"], second.truncated)
    # The newest history frame moved one slot back.
    h1 = first.observations["history"].view(4, 20, 48)
    h2 = second.observations["history"].view(4, 20, 48)
    alive = ~(second.terminated | second.truncated)
    assert torch.equal(h2[alive, -2], h1[alive, -1])


def test_a_learner_writing_into_its_observations_does_not_change_the_env():
    """The history is the env's memory: what `step` returns is a copy of it."""
    env = make_env(num_envs=2, seed=2, overrides=QUIET)
    reference = make_env(num_envs=2, seed=2, overrides=QUIET)
    for step in range(3):
        mine, theirs = env.step(torch.zeros(2, 12)), reference.step(torch.zeros(2, 12))
        for value in mine.observations.values():
            value.fill_(7.0)
        assert torch.equal(env.observations()["history"], theirs.observations["history"]), step
    nxt, ref = env.step(torch.zeros(2, 12)), reference.step(torch.zeros(2, 12))
    assert all(torch.equal(nxt.observations[k], ref.observations[k]) for k in ref.observations)


@pytest.mark.parametrize("queued", [False, True])
def test_time_out_truncates_and_resets_only_that_env(queued):
    # queued: the GPU's way (masked, before the sync), here on the CPU
    env = make_env(num_envs=3, seed=1, overrides={**QUIET, "sim.queue_resets": queued})
    env.episode_length_buf[:] = torch.tensor([5, env.max_episode_length - 1, 7])
    out = env.step(torch.zeros(3, 12))
    assert out.truncated.tolist() == [False, True, False]
    assert not out.terminated.any()
    assert env.episode_length_buf.tolist() == [6, 0, 8]
    # Dynamics targets describe the state before the reset: they match the final observation.
    c = go1_contract()
    final = out.extras["final_observations"]["proprio"]
    dyn_cols = torch.cat([torch.arange(48)[c.term_slice(t)] for t in c.dynamics_terms])
    assert torch.allclose(out.extras["dynamics_targets"]["next_state"], final[:, dyn_cols], atol=1e-6)
    # They are the caller's: later steps and resets never write them.
    kept = {k: v.clone() for k, v in out.extras["final_observations"].items()}
    env.episode_length_buf[0] = env.max_episode_length - 1
    for _ in range(2):
        env.step(torch.zeros(3, 12))
    assert all(torch.equal(kept[k], v) for k, v in out.extras["final_observations"].items())


def test_fall_terminates_with_its_reason():
    env = make_env(num_envs=2, seed=2, overrides=QUIET)
    sim = env.sim
    state = sim.read()
    qpos = state.qpos.clone()
    root = sim.info.joint_qpos_adr["root"]
    qpos[1, root + 3 : root + 7] = torch.tensor([0.5**0.5, 0.5**0.5, 0.0, 0.0])  # rolled 90 degrees
    sim.set_state(torch.tensor([1]), qpos[1:2], state.qvel[1:2])
    out = env.step(torch.zeros(2, 12))
    assert out.terminated.tolist() == [False, True]
    assert out.extras["log"]["Episode_Termination/base_tilted"] >= 1.0


def test_randomisation_is_per_env_and_seeded():
    a = make_env(num_envs=3, seed=5)
    b = make_env(num_envs=3, seed=5)
    mass_a = a.sim.model_field("body_mass")
    assert not torch.allclose(mass_a[0], mass_a[1])
    assert torch.equal(mass_a, b.sim.model_field("body_mass"))
    assert torch.equal(a.domain.friction, b.domain.friction)
    nominal = a.sim.nominal_field("body_mass")
    trunk = a.idx.trunk_body
    assert torch.allclose(mass_a[:, trunk] - nominal[trunk], a.domain.payload_mass.double(), atol=1e-6)


def test_full_action_delay_holds_previous_targets():
    """A 20 ms delay (all 4 substeps) makes step t apply step t-1's targets: the delayed env
    given actions (a, b) moves exactly like an undelayed env given (0, a), where action 0 is the
    reset pose's target (push pose) that the delayed env holds after its reset."""
    fixed = {**QUIET, "reset.glide_fraction": 0.0, "randomization.enabled": False}
    delayed = make_env(num_envs=1, overrides={**fixed, "action.delay_range_s": (0.02, 0.02)})
    direct = make_env(num_envs=1, overrides={**fixed, "action.delay_range_s": (0.0, 0.0)})
    a, b = torch.full((1, 12), 1.0), torch.full((1, 12), -0.5)
    for delayed_action, direct_action in ((a, torch.zeros(1, 12)), (b, a)):
        delayed.step(delayed_action)
        direct.step(direct_action)
        assert torch.equal(delayed.sim.read().qpos, direct.sim.read().qpos)
    # and the delay is real: without it, the first step would already have moved differently
    undelayed = make_env(num_envs=1, overrides={**fixed, "action.delay_range_s": (0.0, 0.0)})
    undelayed.step(a)
    assert not torch.allclose(undelayed.sim.read().qpos, direct.sim.read().qpos)


def test_delay_longer_than_the_control_history_is_rejected():
    with pytest.raises(ValueError, match="nsample"):
        make_env(num_envs=1, overrides={"action.delay_range_s": (0.0, 0.2)})


def test_bad_actions_are_rejected_by_name(env):
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(4, 11))
    with pytest.raises(ValueError, match="non-finite"):
        env.step(torch.full((4, 12), float("nan")))


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(KeyError, match="dhal-skateboard"):
        make_config("skateboard-v9")


def test_random_actions_stay_numerically_clean():
    env = make_env(num_envs=16, seed=3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(100):
        out = env.step(6.0 * torch.rand(16, 12, generator=gen) - 3.0)
        assert torch.isfinite(out.reward).all()
        assert all(torch.isfinite(v).all() for v in out.observations.values())
    assert env.sim.warning_counts() == {}


@pytest.mark.parametrize("queued", [False, True])
@pytest.mark.parametrize("backend", ["mujoco_batch", "mujoco_warp"])
def test_a_diverged_env_ends_its_episode_and_leaks_no_nan(backend, queued, tmp_path, monkeypatch):
    if backend == "mujoco_warp":
        pytest.importorskip("mujoco_warp")
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warning to MUJOCO_LOG.TXT here
    env = make_env(num_envs=3, seed=3, backend=backend, device="cpu", overrides={**QUIET, "sim.queue_resets": queued})
    env.step(torch.zeros(3, 12))
    sums_before = env.episode_sums.clone()
    env.sim.set_qvel(torch.tensor([1]), torch.full((env.sim.info.nv,), 1e11))
    out = env.step(torch.zeros(3, 12))
    assert out.terminated.tolist() == [False, True, False]
    assert out.extras["terminations"]["diverged"].tolist() == [False, True, False]
    assert out.extras["log"]["Episode_Termination/diverged"] == 1.0
    assert out.reward[1] == 0.0 and (out.extras["reward_groups"][1] == 0).all()
    outputs = [out.reward, out.extras["reward_groups"], *out.observations.values(),
               *out.extras["final_observations"].values(), *out.extras["dynamics_targets"].values(),
               *out.extras["metrics"].values()]
    assert all(torch.isfinite(t).all() for t in outputs)
    # the diverged env starts afresh; the others carry on
    assert env.episode_length_buf.tolist() == [2, 0, 2]
    assert torch.equal(env.episode_sums[1], torch.zeros_like(sums_before[1]))
    nxt = env.step(torch.zeros(3, 12))
    assert not nxt.terminated.any()
    assert all(torch.isfinite(t).all() for t in nxt.observations.values())


def test_a_warp_collision_fault_ends_its_episode_and_the_run_goes_on(tmp_path, monkeypatch):
    """MuJoCo Warp's EPA horizon overflow (one world lost a contact for a substep; seen once in a
    4,096-env GPU run) ends that env's episode as a divergence does instead of stopping training."""
    pytest.importorskip("mujoco_warp")
    from dhal.envs.backends.warp_setup import mjw

    monkeypatch.chdir(tmp_path)
    env = make_env(num_envs=3, seed=3, backend="mujoco_warp", device="cpu",
                   overrides={**QUIET, "sim.queue_resets": True, "sim.check_every": 2})
    env.step(torch.zeros(3, 12))
    env.sim._t["overflow"][2] |= int(mjw.OverflowType.EPA_HORIZON)
    outs = [env.step(torch.zeros(3, 12)) for _ in range(2)]
    assert outs[1].terminated.tolist() == [False, False, True]
    assert outs[1].extras["terminations"]["diverged"].tolist() == [False, False, True]
    assert outs[0].reward[2] == 0.0 and not outs[0].terminated.any()  # discarded until the check-in
    assert env.sim.warning_counts() == {"warp_EPA_HORIZON": 1}
    assert not env.step(torch.zeros(3, 12)).terminated.any()


@pytest.mark.parametrize("path", [{}, {"sim.queue_resets": True, "sim.check_every": 2}], ids=["cpu", "gpu"])
def test_the_compiled_step_matches_the_eager_one(path):
    """SimConfig.compile fuses the pure per-step functions; it must not change a number, through
    a step and a reset (fullgraph: a graph break fails here), on the CPU's path and on the GPU's
    (queued resets, check-ins every few steps). Compiled for rollouts (inference mode) only, each
    graph once: a step's derived state and transition, the restart, the restarted envs' derived
    state and observations, the ended episodes' log totals; not again for the constructor's
    calls, lazily built constants or the layout of the last step's joint velocities."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    eager, compiled = (make_env(num_envs=3, seed=4, overrides={"sim.compile": flag, **path}) for flag in (False, True))
    assert eager._transition is transition_from_snapshot and compiled._transition is not transition_from_snapshot
    draws = torch.Generator().manual_seed(0)
    for i in range(4):
        actions = 0.5 * torch.randn(3, 12, generator=draws)
        with torch.inference_mode():  # as in every rollout; the first call of each runs eagerly
            if i == 2:  # a time-out: the reset path's observations are compiled too
                for env in (eager, compiled):
                    env.episode_length_buf[1] = env.max_episode_length - 1
            a, b = eager.step(actions), compiled.step(actions)
        assert torch.equal(a.truncated, b.truncated)
        assert torch.allclose(a.reward, b.reward, atol=1e-6)
        assert torch.allclose(a.extras["reward_groups"], b.extras["reward_groups"], atol=1e-6)
        for key in a.observations:
            assert torch.allclose(a.observations[key], b.observations[key], atol=1e-5), key
        for group in ("metrics", "dynamics_targets", "final_observations"):
            assert (group in a.extras) == (group in b.extras)
            for key, value in a.extras.get(group, {}).items():
                assert torch.allclose(value, b.extras[group][key], atol=1e-5), (group, key)
        # the time-out's report: at once on the CPU's path, and at step 2's check-in on the GPU's
        assert ("log" in a.extras) == (i == 2) == ("log" in b.extras)
        if i == 2:
            assert a.extras["log"] == pytest.approx(b.extras["log"], abs=1e-6)
    # (on the CPU's path the one reset ran each reset function once, eagerly)
    assert counters["stats"]["unique_graphs"] == (4 if compiled.queue_resets else 1)
    compiled.step(torch.zeros(3, 12))  # outside inference mode: eager, nothing compiled
    assert counters["stats"]["unique_graphs"] == (4 if compiled.queue_resets else 1)


def test_a_second_number_of_envs_in_one_process_compiles_again_and_still_matches():
    """Compiled shapes start static (floats from the config stay constants); an env of another
    size in the same process gets its own compilation, not the first one's sizes."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    for n in (2, 4):
        eager, compiled = (make_env(num_envs=n, seed=1, overrides={"sim.compile": flag}) for flag in (False, True))
        for _ in range(3):  # a first call runs eagerly
            actions = torch.full((n, 12), 0.3)
            with torch.inference_mode():
                a, b = eager.step(actions), compiled.step(actions)
            assert torch.allclose(a.reward, b.reward, atol=1e-6)
            for key in a.observations:
                assert torch.allclose(a.observations[key], b.observations[key], atol=1e-5), key
        graphs = counters["stats"]["unique_graphs"]
        assert graphs == (1 if n == 2 else 2)  # the transition (no reset), then again for the new size


@pytest.mark.parametrize("backend", ["mujoco_batch", "mujoco_warp"])
def test_positions_only_resets_change_no_observation_or_reward(backend):
    """sim.reset_refresh="positions" (the GPU's cheap reset) against a full forward, through a
    time-out: the reset path's observations need no sensor, so nothing the learner sees moves."""
    if backend == "mujoco_warp":
        pytest.importorskip("mujoco_warp")
    envs = [make_env(num_envs=3, seed=5, backend=backend, device="cpu",
                     overrides={**QUIET, "sim.reset_refresh": refresh}) for refresh in ("forward", "positions")]
    draws = torch.Generator().manual_seed(1)
    for i in range(3):
        if i == 1:
            for env in envs:
                env.episode_length_buf[2] = env.max_episode_length - 1
        actions = 0.3 * torch.randn(3, 12, generator=draws)
        a, b = (env.step(actions) for env in envs)
        assert torch.equal(a.truncated, b.truncated)
        assert torch.allclose(a.reward, b.reward, atol=1e-4)
        for key in a.observations:
            assert torch.allclose(a.observations[key], b.observations[key], atol=1e-4), key
    assert envs[1].episode_length_buf[2] == 1  # it did reset


@pytest.mark.parametrize("backend", ["mujoco_batch", "mujoco_warp"])
def test_between_check_ins_a_diverged_env_leaks_no_nan_and_ends_at_the_check_in(backend, tmp_path, monkeypatch):
    if backend == "mujoco_warp":
        pytest.importorskip("mujoco_warp")
    monkeypatch.chdir(tmp_path)
    env = make_env(num_envs=3, seed=3, backend=backend, device="cpu",
                   overrides={**QUIET, "sim.queue_resets": True, "sim.check_every": 3})
    env.step(torch.zeros(3, 12))  # checks in; the next check-in is 3 steps on
    env.sim.set_qvel(torch.tensor([1]), torch.full((env.sim.info.nv,), 1e11))
    outs = [env.step(torch.zeros(3, 12)) for _ in range(3)]
    for out in outs:
        values = [out.reward, out.extras["reward_groups"], *out.observations.values(),
                  *out.extras["dynamics_targets"].values(), *out.extras["metrics"].values()]
        assert all(torch.isfinite(t).all() for t in values)
    # The check-in (the third step) resets its simulator data and ends its episode; before
    # that only the task's own non_finite termination may end it (MuJoCo Warp keeps the NaN,
    # the CPU backend puts the env at the model defaults at once).
    assert outs[2].terminated.tolist() == [False, True, False]
    for out in outs[:2]:
        assert not out.terminated[[0, 2]].any() and not out.extras["terminations"]["diverged"].any()
        assert torch.equal(out.terminated, out.extras["terminations"]["non_finite"])
    log = outs[2].extras["log"]  # shares of the episodes ended since the last check-in
    assert log["Episode_Termination/diverged"] > 0
    assert {k for k, v in log.items() if k.startswith("Episode_Termination/") and v > 0} <= {
        "Episode_Termination/diverged", "Episode_Termination/non_finite"}
    assert outs[0].reward[1] == 0.0 and outs[1].reward[1] == 0.0
    nxt = env.step(torch.zeros(3, 12))
    assert not nxt.terminated.any() and env.episode_length_buf.tolist() == [5, 1, 5]


def test_non_finite_actions_between_check_ins_are_zeroed_then_raised():
    env = make_env(num_envs=2, seed=0, overrides={**QUIET, "sim.check_every": 3})
    env.step(torch.zeros(2, 12))
    nan_for_env_1 = torch.zeros(2, 12)
    nan_for_env_1[1, 4] = float("nan")
    env.step(nan_for_env_1)  # queued: zeroed, remembered
    assert env.actions[1].eq(0).all() and torch.isfinite(env.sim.read().qpos).all()
    env.step(torch.zeros(2, 12))
    with pytest.raises(ValueError, match=r"non-finite actions for envs \[1\] \(in the last 3 steps\)"):
        env.step(torch.zeros(2, 12))
    env.step(torch.zeros(2, 12))  # reported once; the env carries on


def test_check_every_must_be_positive():
    with pytest.raises(ValueError, match="check_every"):
        make_env(num_envs=1, overrides={"sim.check_every": 0})


@pytest.mark.parametrize("backend", ["mujoco_batch", "mujoco_warp"])
def test_resets_between_check_ins_leave_a_pending_divergence_to_the_check_in(backend, tmp_path, monkeypatch):
    """A partial reset does not swallow (or raise) a divergence found since the last check-in:
    the next check-in ends that episode and leaves the reset env alone; a full reset clears it
    and starts every env afresh."""
    if backend == "mujoco_warp":
        pytest.importorskip("mujoco_warp")
    monkeypatch.chdir(tmp_path)
    env = make_env(num_envs=3, seed=3, backend=backend, device="cpu",
                   overrides={**QUIET, "sim.queue_resets": True, "sim.check_every": 3})
    zeros = torch.zeros(3, 12)
    env.step(zeros)  # checks in; the next check-in is the fourth step
    env.sim.set_qvel(torch.tensor([1]), torch.full((env.sim.info.nv,), 1e11))
    env.step(zeros)
    env.reset(torch.tensor([2]))  # another env, between check-ins
    assert env.episode_length_buf[2] == 0
    env.step(zeros)
    out = env.step(zeros)  # the check-in
    assert out.extras["terminations"]["diverged"].tolist() == [False, True, False]
    assert env.episode_length_buf[2] == 2  # the check-in did not restart the env reset before
    env.sim.set_qvel(torch.tensor([0]), torch.full((env.sim.info.nv,), 1e11))
    env.step(zeros)
    observations = env.reset()  # a full reset with a divergence pending
    assert all(torch.isfinite(v).all() for v in observations.values())
    assert env.episode_length_buf.tolist() == [0, 0, 0]
    after = env.step(zeros)
    assert not after.terminated.any() and all(torch.isfinite(v).all() for v in after.observations.values())
