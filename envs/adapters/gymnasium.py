"""A `BatchedEnv` seen as a gymnasium 1.x `VectorEnv` with same-step autoreset.

Observations, rewards, flags and infos are torch tensors on `env.device`, not NumPy arrays: the
env is batched in torch and a round trip through NumPy would cost a copy per step. For NumPy
tooling wrap it: `gymnasium.wrappers.vector.ArrayConversion(env, env_xp=torch, target_xp=numpy)`
(NumpyToTorch is the opposite direction; both need the `array-api-compat` package).

Infos follow gymnasium's layout: every per-env entry `key` ([N, ...] tensor, or a dict of them)
comes with a bool mask `_key` [N]. Entries that are not per env (`log` scalars, the reward group
names) are not infos; they are on `last_batch_extras` and `reward_group_names`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.logger import warn
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from dhal.envs.api import BatchedEnv

Observations = dict[str, torch.Tensor]

# StepResult.extras key of the observations the done envs had before they were reset.
FINAL_OBSERVATIONS_KEY = "final_observations"


class GymnasiumVectorEnv(VectorEnv[Observations, torch.Tensor, torch.Tensor]):
    """Gymnasium's view of a batched env. `step` resets finished envs in the same call: the
    returned observations already start the next episode and, where the env provides them,
    `infos["final_obs"]` (masked by `infos["_final_obs"]`) holds the last ones."""

    metadata: dict[str, Any] = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": ["rgb_array"],
    }

    def __init__(
        self,
        env: BatchedEnv,
        render_mode: str | None = None,
        render_env_ids: tuple[int, ...] = (0,),
        render_size: tuple[int, int] = (640, 480),
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', not {render_mode!r}")
        self.env = env
        self.num_envs = env.num_envs
        self.device = env.device
        self.render_mode = render_mode
        self.render_env_ids = render_env_ids
        self.render_size = render_size
        self.reward_group_names = env.reward_group_names
        self.last_batch_extras: dict[str, Any] = {}

        self.single_observation_space = spaces.Dict(
            {
                name: spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
                for name, size in env.observation_sizes.items()
            }
        )
        self.single_action_space = spaces.Box(
            env.action_low, env.action_high, shape=(env.num_actions,), dtype=np.float32
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observations, dict[str, Any]]:
        """Reset all envs, or only those where `options["reset_mask"]` ([N] bool) is True.

        The observations of all envs are returned; those outside the mask are unchanged.
        """
        super().reset(seed=seed)
        if seed is not None:
            self._seed_env(seed)
        reset_mask = (options or {}).get("reset_mask")
        if reset_mask is None:
            observations = self.env.reset()
        else:
            mask = torch.as_tensor(reset_mask, device=self.device, dtype=torch.bool)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {tuple(mask.shape)}")
            self.env.reset(mask.nonzero().squeeze(-1))
            observations = self.env.observations()
        return _fresh(observations), {}

    def step(
        self, actions: torch.Tensor | np.ndarray
    ) -> tuple[Observations, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        actions = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        result = self.env.step(actions)
        done = result.terminated | result.truncated
        infos, self.last_batch_extras = self._split_extras(result.extras)
        final_observations = result.extras.get(FINAL_OBSERVATIONS_KEY)
        # Like SyncVectorEnv, "final_obs" appears only on steps where some episode ended.
        if final_observations is not None and bool(done.any()):
            infos["final_obs"] = final_observations
            infos["_final_obs"] = done
        return _fresh(result.observations), result.reward, result.terminated, result.truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None:
            return None
        width, height = self.render_size
        return tuple(self.env.render(env_id, width, height) for env_id in self.render_env_ids)

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()

    def _seed_env(self, seed: int) -> None:
        # BatchedEnv has no seeding in its protocol (make_env takes the seed); honour it when the
        # env offers `seed(int)`, say so otherwise rather than pretend the reset is reproducible.
        seed_env = getattr(self.env, "seed", None)
        if callable(seed_env):
            seed_env(seed)
        else:
            warn(f"{type(self.env).__name__} has no seed(); reset(seed=...) seeds only the spaces' RNG")
        self.single_action_space.seed(seed)
        self.action_space.seed(seed)

    def _split_extras(self, extras: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Per-env extras become masked infos; the rest is batch-level."""
        infos: dict[str, Any] = {}
        batch_level: dict[str, Any] = {}
        every_env = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        for key, value in extras.items():
            if key == FINAL_OBSERVATIONS_KEY:
                continue
            if self._is_per_env(value):
                infos[key] = value
                infos[f"_{key}"] = every_env
            else:
                batch_level[key] = value
        return infos, batch_level

    def _is_per_env(self, value: Any) -> bool:
        if isinstance(value, dict):
            return len(value) > 0 and all(self._is_per_env(v) for v in value.values())
        return isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == self.num_envs


def _fresh(observations: Observations) -> Observations:
    # Callers may keep what reset/step return across steps (replay buffers); never hand out a
    # tensor the env could update in place.
    return {name: value.clone() for name, value in observations.items()}
