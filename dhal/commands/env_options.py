"""Which env a command builds: task, backend, device, seed and config overrides."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import tyro

from dhal.commands.errors import CommandError

if TYPE_CHECKING:
    from dhal.envs.api import BatchedEnv


@dataclass
class EnvOptions:
    task: str = "dhal-skateboard"
    """Registered task name (see dhal.envs.registry.task_names)."""
    backend: str = "mujoco_batch"
    """Simulator backend."""
    device: str = "cpu"
    """Torch device of the env's tensors."""
    seed: int = 0
    """Seed of the env's randomness."""
    override: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Config override KEY=VALUE with a dotted key, e.g. --override sim.decimation=4; repeatable."""


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """{"a.b": value} from ["a.b=value", ...]; values are Python literals where they parse (and
    true/false/none in any case), else strings."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CommandError(f"--override expects KEY=VALUE with a dotted KEY, got {item!r}")
        overrides[key] = _parse_value(text.strip())
    return overrides


_WORDS = {"true": True, "false": False, "none": None, "null": None}


def _parse_value(text: str) -> Any:
    # Lower-case words as in YAML/JSON and most CLIs: `sim.compile=true` must not become a string.
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as a scene name


def checked_backend(name: str) -> str:
    """The registered backend name for `name` (aliases such as "mjwarp" allowed), or a `CommandError`
    listing the choices."""
    from dhal.envs.backends import canonical_backend

    try:
        return canonical_backend(name)
    except ValueError as error:
        raise CommandError(str(error)) from None


def open_env(options: EnvOptions, num_envs: int) -> BatchedEnv:
    """Build the env, turning an unknown task or a bad override into a `CommandError`."""
    # Imported here so that `dhal --help` does not load the simulator.
    from dhal.envs import registry
    from dhal.envs.backends import SimulatorCapacityError
    from dhal.envs.overrides import ConfigError

    tasks = registry.task_names()
    if options.task not in tasks:
        raise CommandError(f"unknown task {options.task!r}; available tasks: {', '.join(tasks)}")
    backend = checked_backend(options.backend)
    try:
        return registry.make_env(
            task=options.task,
            num_envs=num_envs,
            backend=backend,
            device=options.device,
            seed=options.seed,
            overrides=parse_overrides(options.override),
        )
    except (ConfigError, SimulatorCapacityError) as error:
        raise CommandError(str(error)) from error
