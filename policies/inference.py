"""A trained DHAL checkpoint as a deterministic policy: the learner rebuilt exactly as it was trained.

`load_policy(path)` reads the checkpoint (or the newest one of a run folder), takes the run config
and the learner signature saved inside it, rebuilds actor, critics and storage from them (the
observation sizes, groups, critic mode, distribution and K of the run, not of today's defaults),
checks the checkpoint against that learner and loads it. Anything that does not fit is a
`CheckpointError` naming the problem.

The policy acts on the deterministic path: argmax mode, the mean latent of that mode, the mean
of the Beta (or Gaussian). After each call `actor.last_mode` [N] and `actor.last_mode_probs`
[N, K] describe the step.

Envs for a checkpoint: `checkpoint_env_overrides` gives the env overrides the run was trained
with (e.g. observations.critic=lean), which callers apply on top of the play task, then their
own; `check_env_fits` checks the env feeds the actor what it was trained on.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from dhal.policies import presets
from dhal.policies.actor import DHALActor
from dhal.policies.ppo import EnvSpec, build_algorithm
from dhal.policies.training import (
    CheckpointError, check_compatible, find_checkpoint, learner_signature, read_checkpoint,
)

Policy = Callable[[Mapping[str, Tensor]], Tensor]  # observation groups -> actions [N, A]
SPEC_KEYS = ("obs_sizes", "num_actions", "reward_group_names", "history_length", "frame_size", "state_dim",
             "contact_dim")


@dataclass
class LoadedPolicy:
    policy: Policy
    actor: DHALActor
    config: dict[str, Any]  # the run config saved in the checkpoint (preset, train, env, rsl_rl, ...)
    checkpoint: Path
    iteration: int
    signature: dict[str, Any]

    @property
    def num_modes(self) -> int:
        return int(self.actor.modes_cfg.num_modes)

    @property
    def input_group(self) -> str:
        return str(self.actor.obs_groups[0])


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> tuple[Policy, DHALActor, dict[str, Any]]:
    """(deterministic policy obs -> actions, its actor, the run config) of a checkpoint or run folder."""
    loaded = load_checkpoint_policy(path, device)
    return loaded.policy, loaded.actor, loaded.config


def load_checkpoint_policy(path: str | Path, device: str | torch.device = "cpu") -> LoadedPolicy:
    """`load_policy` with the checkpoint's path, iteration and learner signature."""
    device = str(device)
    path = find_checkpoint(path)
    ckpt = read_checkpoint(path, map_location=device)
    infos = ckpt["infos"]
    config = infos.get("config")
    if not isinstance(config, Mapping) or not isinstance(config.get("train"), Mapping) \
            or not isinstance(config.get("env"), Mapping):
        raise CheckpointError(f"{path} carries no run config (train and env); its learner cannot be rebuilt")
    signature = infos.get("signature")
    missing = [key for key in SPEC_KEYS if not isinstance(signature, Mapping) or key not in signature]
    if missing:
        raise CheckpointError(f"{path} lacks the learner signature entries {missing}; it cannot be rebuilt")
    signature = dict(cast(Mapping[str, Any], signature))
    try:
        train_cfg = presets.from_dict(presets.TrainConfig, config["train"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: its saved train config does not fit this code: {error}") from error
    spec = EnvSpec(
        num_envs=1,  # the rollout storage is built but never used
        num_actions=int(signature["num_actions"]),
        obs_sizes={str(k): int(v) for k, v in signature["obs_sizes"].items()},
        action_low=-_action_limit(config),
        action_high=_action_limit(config),
        reward_group_names=tuple(signature["reward_group_names"]),
        history_length=int(signature["history_length"]),
        frame_size=int(signature["frame_size"]),
        state_dim=int(signature["state_dim"]),
        contact_dim=int(signature["contact_dim"]),
    )
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # rsl-rl prints the resolved observation sets
            alg = build_algorithm(spec, presets.rsl_rl_config(train_cfg), device)
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: cannot rebuild its learner: {error}") from error
    check_compatible(ckpt, alg, learner_signature(alg, spec.obs_sizes), None, path)
    try:
        alg.load(ckpt, {"actor": True, "critic": True}, strict=True)
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path} could not be loaded: {str(error).splitlines()[0]}") from error
    alg.eval_mode()
    actor = cast(DHALActor, alg.get_policy())
    group = str(actor.obs_groups[0])

    def policy(obs: Mapping[str, Tensor]) -> Tensor:
        with torch.inference_mode():
            return actor({group: obs[group].to(device)}, stochastic_output=False)

    return LoadedPolicy(policy=policy, actor=actor, config=dict(config), checkpoint=path,
                        iteration=int(ckpt["iter"]), signature=signature)


def _action_limit(config: Mapping[str, Any]) -> float:
    """The Beta policy's support is [-limit, limit] of the run's env (not saved in the weights)."""
    try:
        return float(config["env"]["config"]["action"]["limit"])
    except (KeyError, TypeError, ValueError):
        from dhal.envs.registry import make_config

        env = config["env"]
        return float(make_config(env.get("task", "dhal-skateboard"), env.get("overrides") or {}).action.limit)


# ---- envs for a checkpoint ------------------------------------------------------------------------

def checkpoint_env_overrides(config: Mapping[str, Any]) -> dict[str, Any]:
    """The env overrides the run was trained with (apply them before your own)."""
    env = config.get("env", {})
    overrides = env.get("overrides", {}) if isinstance(env, Mapping) else {}
    return dict(overrides or {})


def fixed_command_overrides(vx: float | None, yaw_rate: float | None) -> dict[str, Any]:
    """Env overrides that hold the command at (vx, 0, yaw rate) in every episode; {} when both are
    None. Giving one fixes the whole command (the other is 0); the dead zones are switched off so
    the command is exactly the one asked for."""
    if vx is None and yaw_rate is None:
        return {}
    vx, yaw_rate = float(vx or 0.0), float(yaw_rate or 0.0)
    return {
        "commands.lin_vel_x": (vx, vx), "commands.lin_vel_deadzone": 0.0,
        "commands.ang_vel_yaw": (yaw_rate, yaw_rate), "commands.ang_vel_deadzone": 0.0,
    }


def check_env_fits(env: Any, loaded: LoadedPolicy) -> None:
    """CheckpointError unless `env` gives the actor's observation group its trained size and takes
    the trained number of actions."""
    group = loaded.input_group
    trained = int(loaded.signature["obs_sizes"].get(group, -1))
    sizes = dict(getattr(env, "observation_sizes", {}))
    problems = []
    if sizes.get(group) != trained:
        problems.append(f"observation group {group!r} has {sizes.get(group, 'no')} values in this env, "
                        f"{trained} in the checkpoint")
    if int(env.num_actions) != int(loaded.signature["num_actions"]):
        problems.append(f"the env takes {env.num_actions} actions, the policy gives {loaded.signature['num_actions']}")
    if problems:
        raise CheckpointError(f"checkpoint {loaded.checkpoint} does not fit this env: " + "; ".join(problems))
