"""Hand-made policies for looking at the env before any learning: zero, random, scripted."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from dhal.envs.api import BatchedEnv
from dhal.envs.robots.go1 import JOINT_NAMES

PolicyName = Literal["zero", "random", "scripted"]
Policy = Callable[[int], torch.Tensor]  # control step index -> actions [N, num_actions]

# The scripted push: the right legs (which reach the ground in the push pose) swing with a period
# equal to DHAL's push/glide cycle. The calf lags the thigh by a quarter period so the foot lifts
# while it swings forward and presses while it sweeps back, the way a push looks.
PUSH_LEGS: tuple[str, ...] = ("FR", "RR")
PUSH_PERIOD_S = 4.0
PUSH_AMPLITUDE: dict[str, float] = {"hip": 0.0, "thigh": 2.0, "calf": 1.5}  # action units
PUSH_PHASE: dict[str, float] = {"hip": 0.0, "thigh": 0.0, "calf": math.pi / 2}


def make_policy(name: PolicyName, env: BatchedEnv, seed: int = 0) -> Policy:
    shape = (env.num_envs, env.num_actions)
    if name == "zero":
        zeros = torch.zeros(shape, device=env.device)
        return lambda step: zeros.clone()
    if name == "random":
        generator = torch.Generator(device=env.device).manual_seed(seed)
        span = env.action_high - env.action_low
        return lambda step: env.action_low + span * torch.rand(shape, generator=generator, device=env.device)
    if name == "scripted":
        return scripted_push(env)
    raise ValueError(f"unknown policy {name!r}")


def scripted_push(env: BatchedEnv) -> Policy:
    """Sinusoidal joint offsets on the right legs; the other joints hold the default pose."""
    if env.num_actions != len(JOINT_NAMES):
        raise ValueError(
            f"the scripted push drives the {len(JOINT_NAMES)} Go1 joints; the env has {env.num_actions} actions"
        )
    amplitude = torch.zeros(env.num_actions, device=env.device)
    phase = torch.zeros(env.num_actions, device=env.device)
    for leg in PUSH_LEGS:
        for kind in PUSH_AMPLITUDE:
            index = JOINT_NAMES.index(f"{leg}_{kind}_joint")
            amplitude[index] = PUSH_AMPLITUDE[kind]
            phase[index] = PUSH_PHASE[kind]

    def policy(step: int) -> torch.Tensor:
        angle = 2 * math.pi * step * env.step_dt / PUSH_PERIOD_S + phase
        actions = (amplitude * torch.sin(angle)).clamp(env.action_low, env.action_high)
        return actions.expand(env.num_envs, -1).clone()

    return policy
