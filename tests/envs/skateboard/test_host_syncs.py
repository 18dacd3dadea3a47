"""On a GPU every host read of a device value (`.item()`, `bool()`, `.tolist()`, `nonzero`)
stalls the launch queue. The env step keeps them out of the window between queueing the physics
and asking the simulator whether it diverged, so the task's launches overlap the simulation, and
with `sim.check_every` > 1 out of the steps between check-ins altogether. Counted here on the CPU
through torch's function hook, which sees the same calls."""

from __future__ import annotations

import collections

import pytest
import torch
from torch.overrides import TorchFunctionMode

from dhal.envs.registry import make_env
from tests.host_reads import SYNCING

HOST_DATA = {"tensor", "as_tensor"}  # from Python data (not a tensor): a copy to the device
BACKENDS = ["mujoco_batch", pytest.param("mujoco_warp", marks=pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("mujoco_warp") is None, reason="mujoco_warp not installed"))]


class HostReads(TorchFunctionMode):
    """Counts syncing calls, separately inside the physics window."""

    def __init__(self) -> None:
        super().__init__()
        self.in_window = False
        self.total: collections.Counter[str] = collections.Counter()
        self.window: collections.Counter[str] = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCING:
            self.total[name] += 1
        from_host = name in HOST_DATA and not (args and isinstance(args[0], torch.Tensor))
        if self.in_window and (name in SYNCING or from_host):
            self.window[name] += 1
        return func(*args, **(kwargs or {}))


def watch(env, reads: HostReads) -> None:
    sim = env.sim
    step, check = sim.step, sim.check

    def queued_step(*args, **kwargs):
        step(*args, **kwargs)
        reads.in_window = not kwargs.get("check", True)

    def checked():
        reads.in_window = False
        check()

    sim.step, sim.check = queued_step, checked


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_task_waits_for_the_physics_once(backend):
    env = make_env(num_envs=8, seed=0, backend=backend, device="cpu")
    actions = torch.zeros(8, 12)
    env.step(actions)
    reads = HostReads()
    watch(env, reads)
    with reads:
        for _ in range(3):
            out = env.step(actions)
    assert not (out.terminated | out.truncated).any()
    assert reads.window == {}, f"host reads while the physics runs: {dict(reads.window)}"
    # per step: the action check before the physics, the divergence check, the finished envs
    assert sum(reads.total.values()) <= 3 * 3, dict(reads.total)


@pytest.mark.parametrize("backend", BACKENDS[1:])  # the CPU simulator reads host arrays by nature
def test_queued_restarts_read_nothing_while_the_physics_runs(backend):
    """The GPU's way (sim.queue_resets, on by default on CUDA devices): finished envs restart
    with a mask before the synchronisation, so a step with a time-out reads no more."""
    env = make_env(num_envs=8, seed=0, backend=backend, device="cpu", overrides={"sim.queue_resets": True})
    actions = torch.zeros(8, 12)
    env.step(actions)
    reads = HostReads()
    watch(env, reads)
    outs = []
    with reads:
        for i in range(3):
            if i == 1:
                env.episode_length_buf[3] = env.max_episode_length - 1
            outs.append(env.step(actions))
    assert [bool(out.truncated[3]) for out in outs] == [False, True, False]
    assert ["log" in out.extras for out in outs] == [False, True, False]
    assert env.episode_length_buf[3] == 1
    assert reads.window == {}, f"host reads while the physics runs: {dict(reads.window)}"
    # per step: the action check, the divergence check, the episode log's one copy
    assert sum(reads.total.values()) <= 3 * 3, dict(reads.total)


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_steps_between_check_ins_read_nothing_from_the_device(backend):
    """sim.check_every (CUDA's default is CUDA_CHECK_EVERY): only every k-th step asks the
    device anything, and an episode that ends in between is reported at the next check-in."""
    env = make_env(num_envs=8, seed=0, backend=backend, device="cpu",
                   overrides={"sim.queue_resets": True, "sim.check_every": 4})
    actions = torch.zeros(8, 12)
    env.step(actions)  # the first step checks in
    per_step = []
    outs = []
    for i in range(8):
        if i == 1:
            env.episode_length_buf[3] = env.max_episode_length - 1
        reads = HostReads()
        with reads:
            outs.append(env.step(actions))
        per_step.append(sum(reads.total.values()))
    check_ins = [i for i, n in enumerate(per_step) if n]
    assert check_ins == [3, 7], per_step  # steps 4 and 8 after the first
    assert max(per_step) <= 3, per_step
    assert bool(outs[1].truncated[3]) and env.episode_length_buf[3] == 6
    assert ["log" in out.extras for out in outs] == [False, False, False, True, False, False, False, False]
    assert outs[3].extras["log"]["Episode/length_s"] == pytest.approx(env.max_episode_length * env.step_dt)
    assert outs[3].extras["log"]["Episode_Termination/base_tilted"] == 0.0
