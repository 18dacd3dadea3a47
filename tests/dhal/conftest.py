"""Fixtures: the counter env of the adapter tests and the guard for the real env."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

COUNTER_ENV_FILE = Path(__file__).parents[1] / "envs" / "adapters" / "counter_env.py"


def load_counter_env_module() -> ModuleType:
    name = "dhal_tests_counter_env"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, COUNTER_ENV_FILE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def make_counter_env() -> Callable[..., object]:
    return load_counter_env_module().CounterEnv


@pytest.fixture
def real_env_available() -> None:
    """Skip with a visible reason while dhal.envs.registry does not exist; never hide its errors."""
    if importlib.util.find_spec("dhal.envs.registry") is None:
        pytest.skip("real-env check waits for dhal.envs.registry (envs/registry.py), not written yet")
    importlib.import_module("dhal.envs.registry")
