"""The env configurations `bench_gpu.py --variants` measures against raw MuJoCo Warp stepping.

Each variant is a set of task-config overrides (VARIANTS) and, for a few, a change made around
building and measuring its env (variant_setup). DESCRIPTIONS says what each one asks:
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

NO_RESETS = {"terminations.max_base_tilt": 1e9, "terminations.max_deck_tilt": 1e9,
             "terminations.max_yaw_difference": 1e9, "terminations.max_attachment_error": 1e9,
             "sim.episode_length_s": 1e6}
# the CUDA defaults for queueing and checking in, on any device
CUDA_STEP_PATH = {"sim.queue_resets": True, "sim.check_every": 10}

VARIANTS: dict[str, dict] = {
    "env": {},
    "eager": {"sim.compile": False},
    "checked": {"sim.check_every": 1},
    "noreset": NO_RESETS,
    "asking": {"sim.queue_resets": False},
    "forward": {"sim.reset_refresh": "forward"},
    "before": {"sim.queue_resets": False, "sim.reset_refresh": "forward", "sim.check_every": 1},
    "sparse": {"sim.check_every": 50},
    "gpu": CUDA_STEP_PATH,
    "compiled": {"sim.compile": True},
    "gpu_compiled": {**CUDA_STEP_PATH, "sim.compile": True},
    "compiled_plain": {"sim.compile": True},
    "compiled_no_imu": {"sim.compile": True},
    "fresh": {"sim.fresh_constraint_velocities": True},
}
DESCRIPTIONS = {
    "env": "as configured: resets queued, refreshing poses only, a host check-in every sim.check_every "
           "steps, compiled on CUDA",
    "eager": "sim.compile off: the default on CUDA before 2026-11-27's ninth run",
    "checked": "a check-in every step, as before 2026-11-27's second run",
    "noreset": "terminations and time-outs off: what resets cost at all",
    "asking": "sim.queue_resets=False: the step asks which envs finished",
    "forward": "sim.reset_refresh=forward: a reset runs Warp's all-worlds forward",
    "before": "asking and forward, and a check-in every step: as measured in 2026-11-27's first run",
    "sparse": "a check-in every 50 steps",
    "gpu": "the CUDA step path on any device: with --device cpu --profile-steps, what a GPU step "
           "launches, counted on the CPU",
    "compiled": "sim.compile on any device; about 20 s of compiling on a cold machine, again for every "
                "size (each is compiled for its own static shapes, as a training process would be)",
    "gpu_compiled": "gpu and compiled",
    "compiled_plain": "sim.compile without the inductor options it gets on CUDA "
                      "(compilation.CUDA_INDUCTOR_OPTIONS, combo kernels): what they add; called "
                      "'compiled' in results before the ninth run, whose 'compiled_combo' is today's 'compiled'",
    "compiled_no_imu": "sim.compile, and the update after a step leaves out the Go1's position and "
                       "velocity sensors, which the task does not read (an experiment)",
    "fresh": "sim.fresh_constraint_velocities: what following MuJoCo C's constraint velocities costs",
}
__doc__ += "".join(f"\n* {name}: {text}" for name, text in DESCRIPTIONS.items()) + "\n"

# compiled without the inductor options sim.compile adds on CUDA
PLAIN_INDUCTOR = {"compiled_plain"}
# The derived update after a step leaves out the position and velocity sensors: 12 Warp kernels
# instead of 20 and a memset. The com quantities stay: MuJoCo Warp's equality-constraint rows read
# cvel and cdof_dot before the next step recomputes them, so leaving those out would change the
# physics.
NO_SENSOR_OBSERVE = {"compiled_no_imu"}


@contextlib.contextmanager
def variant_setup(variant: str) -> Iterator[None]:
    """What a variant changes besides its config, from building its env to the end of its
    measurement: inductor options (compiled afresh: dynamo's cache of the functions' code would
    otherwise serve another variant's graphs) and the derived update (captured at build)."""
    import torch

    from dhal.envs import compilation
    from dhal.envs.backends import warp_programs

    with contextlib.ExitStack() as stack:
        if variant in PLAIN_INDUCTOR:
            torch._dynamo.reset()
            stack.callback(torch._dynamo.reset)
            stack.enter_context(mock.patch.dict(compilation.CUDA_INDUCTOR_OPTIONS, clear=True))
        if variant in NO_SENSOR_OBSERVE:
            def without_sensors(programs: warp_programs.WarpPrograms) -> None:
                mjw, m, d = warp_programs.mjw, programs.model, programs.data
                mjw.kinematics(m, d)
                mjw.com_pos(m, d)
                mjw.com_vel(m, d)

            stack.enter_context(mock.patch.object(warp_programs.WarpPrograms, "_observe", without_sensors))
        yield


def env_overrides(variant: str, buffers: dict) -> dict:
    """The variant's task-config overrides plus --njmax/--nconmax, so the env's simulator has the
    buffers the raw stepping it is compared with has."""
    return {**VARIANTS[variant], **{f"sim.{name}": value for name, value in buffers.items()}}
