"""Simulator backends and the registry that builds them by name.

`make_simulator("mujoco_batch", xml_path, num_envs, device)` returns a `Simulator`. Backends are
registered as "module:attribute" strings and imported only when built, so importing this package
never imports mujoco (or warp). Add a backend with `register_backend(name, "module:Class")` or a
callable factory; the factory is called as `factory(xml_path, num_envs, device=device, **kw)`.
Short names (`BACKEND_ALIASES`, e.g. "mjwarp") resolve to the registered ones everywhere a name is
taken; `canonical_backend` gives the name to record.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from .base import ModelInfo, SimState, SimulationDiverged, Simulator, SimulatorCapacityError

__all__ = [
    "ModelInfo",
    "SimState",
    "SimulationDiverged",
    "Simulator",
    "SimulatorCapacityError",
    "BACKEND_ALIASES",
    "available_backends",
    "canonical_backend",
    "make_simulator",
    "raw_step_throughput",
    "register_backend",
]

# name -> factory, or "module:attribute" (module relative to this package if it starts with ".")
_BACKENDS: dict[str, str | Callable[..., Simulator]] = {
    "mujoco_batch": ".mujoco_batch:MujocoBatchSimulator",
    "mujoco_warp": ".mujoco_warp:MujocoWarpSimulator",
}


# short name -> registered name
BACKEND_ALIASES: dict[str, str] = {"mjwarp": "mujoco_warp", "mjbatch": "mujoco_batch"}


# name -> bare-physics throughput function of that backend: the denominator of `dhal bench env`.
_RAW_THROUGHPUT: dict[str, str] = {
    "mujoco_batch": ".batch_raw:raw_step_throughput",
    "mujoco_warp": ".warp_raw:raw_step_throughput_warp",
}


def register_backend(
    name: str, factory: str | Callable[..., Simulator], *, overwrite: bool = False
) -> None:
    """Register a backend under `name`: a callable or a lazy "module:attribute" path."""
    if name in _BACKENDS and not overwrite:
        raise ValueError(f"simulator backend {name!r} is already registered")
    if name in BACKEND_ALIASES:
        raise ValueError(f"{name!r} is a short name for the backend {BACKEND_ALIASES[name]!r}")
    _BACKENDS[name] = factory


def available_backends() -> tuple[str, ...]:
    """Names accepted by `make_simulator`, sorted."""
    return tuple(sorted(_BACKENDS))


def canonical_backend(name: str) -> str:
    """The registered name of `name` (itself, or what its alias stands for); ValueError naming the
    choices if it is neither."""
    canonical = BACKEND_ALIASES.get(name, name)
    if canonical not in _BACKENDS:
        aliases = ", ".join(f"{a} = {b}" for a, b in sorted(BACKEND_ALIASES.items()))
        raise ValueError(f"unknown simulator backend {name!r}; choose one of {sorted(_BACKENDS)} (short names: {aliases})")
    return canonical


def _resolve(name: str, table: dict[str, Any] = _BACKENDS, what: str = "simulator") -> Callable[..., Any]:
    name = canonical_backend(name)
    try:
        factory = table[name]
    except KeyError:
        raise ValueError(f"backend {name!r} has no {what}; these do: {sorted(table)}") from None
    if callable(factory):
        return factory
    module_name, _, attr = factory.partition(":")
    module = importlib.import_module(module_name, package=__name__)
    return getattr(module, attr)


def make_simulator(
    name: str,
    xml_path: str | Path,
    num_envs: int,
    device: str | Any = "cpu",
    **kw: Any,
) -> Simulator:
    """Build `num_envs` environments of the MJCF at `xml_path` on the backend `name`."""
    return _resolve(name)(xml_path, num_envs, device=device, **kw)


def raw_step_throughput(
    name: str, xml_path: str | Path, num_envs: int, nsteps_per_call: int, seconds: float,
    device: str | Any = "cpu", noise: float = 0.1,
) -> float:
    """Physics steps/s of the backend's bare stepping of the model, no task layer on top."""
    raw = _resolve(name, _RAW_THROUGHPUT, "bare-physics benchmark")
    kwargs: dict[str, Any] = {"noise": noise}
    if canonical_backend(name) != "mujoco_batch":
        kwargs["device"] = device
    return raw(xml_path, num_envs, nsteps_per_call=nsteps_per_call, seconds=seconds, **kwargs)
