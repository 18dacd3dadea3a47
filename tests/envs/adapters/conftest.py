"""Fixtures: the counter env (tests/envs/adapters/counter_env.py) and the guard for the real env."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from dhal.envs.api import BatchedEnv


def load_counter_env_module() -> ModuleType:
    name = "dhal_tests_counter_env"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("counter_env.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


CounterEnv = load_counter_env_module().CounterEnv


@pytest.fixture
def make_counter_env() -> Callable[..., CounterEnv]:
    return CounterEnv


@pytest.fixture
def counter_env() -> CounterEnv:
    env = CounterEnv()
    assert isinstance(env, BatchedEnv)
    return env


@pytest.fixture
def real_make_env() -> Callable[..., BatchedEnv]:
    """`dhal.envs.registry.make_env`, skipping with a visible reason while it does not exist.

    Only a missing module skips: an import error inside an existing registry fails the test.
    """
    if importlib.util.find_spec("dhal.envs.registry") is None:
        pytest.skip("real-env check waits for dhal.envs.registry (envs/registry.py), not written yet")
    registry = importlib.import_module("dhal.envs.registry")
    make_env: Callable[..., BatchedEnv] = registry.make_env
    return make_env
