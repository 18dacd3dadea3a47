"""Views of a `BatchedEnv` through the interfaces that learners and tools expect.

- `RslRlVecEnv`: rsl-rl 5.x `VecEnv` (TensorDict observations, dones, extras["time_outs"]).
- `GymnasiumVectorEnv`: gymnasium 1.x `VectorEnv` with same-step autoreset, torch tensors.
"""

from dhal.envs.adapters.gymnasium import GymnasiumVectorEnv
from dhal.envs.adapters.rsl_rl import RslRlVecEnv

__all__ = ["GymnasiumVectorEnv", "RslRlVecEnv"]
