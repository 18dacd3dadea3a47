"""Views of a `BatchedEnv` through the interfaces that learners and tools expect.

- `RslRlVecEnv`: rsl-rl 5.x `VecEnv` (TensorDict observations, dones, extras["time_outs"]).
- `GymnasiumVectorEnv`: gymnasium 1.x `VectorEnv` with same-step autoreset, torch tensors.

Each is imported on first use, so a trainer never needs gymnasium and a gymnasium user never
needs rsl-rl.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dhal.envs.adapters.gymnasium import GymnasiumVectorEnv
    from dhal.envs.adapters.rsl_rl import RslRlVecEnv

__all__ = ["GymnasiumVectorEnv", "RslRlVecEnv"]
_MODULES = {"GymnasiumVectorEnv": ".gymnasium", "RslRlVecEnv": ".rsl_rl"}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULES[name], __name__), name)
